// ktq convert MODEL OUT --to bf16 [--threads N] [--max-shard-size SIZE] ...
#include <chrono>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct Options {
    std::string model, out, to = "bf16";
    int threads = 0;
    uint64_t max_shard_bytes = 0;
    bool overwrite = false;
    bool resume = false;
    bool allow_non_finite = false;
    int resume_layer = 0;
    bool no_aux = false;
    bool quiet = false;
};

int run(const Options &o) {
    ktq_error *err = nullptr;
    ktq_model *model = nullptr;
    int st = open_model(&model, o.model, o.threads);
    if (st != KTQ_OK) return 1;

    ktq_writer_options wopts;
    ktq_writer_options_init(&wopts, KTQ_WRITER_OPTIONS_VERSION);
    wopts.max_shard_bytes = o.max_shard_bytes;
    wopts.overwrite = o.overwrite;
    wopts.copy_aux_files = !o.no_aux;
    wopts.resume = o.resume || o.resume_layer > 0;
    wopts.resume_layer = o.resume_layer;
    wopts.keep_partial = 1;  // an interrupted or failed run can be continued with --resume
    ktq_writer *writer = nullptr;
    st = ktq_writer_open(&writer, model, o.out.c_str(), KTQ_FORMAT_HF_BF16, &wopts, &err);
    if (st != KTQ_OK) {
        ktq_model_free(model);
        return report_error(st, err);
    }

    install_interrupt_handler();
    ProgressBar bar(o.quiet);
    ktq_quantize_options qopts;
    ktq_quantize_options_init(&qopts, KTQ_QUANTIZE_OPTIONS_VERSION);
    qopts.threads = o.threads;
    qopts.allow_non_finite = o.allow_non_finite;
    qopts.progress = &ProgressBar::callback;
    qopts.payload = &bar;
    const auto start = std::chrono::steady_clock::now();
    st = ktq_write(model, &qopts, writer, &err);
    bar.done();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t bytes = 0;
    size_t files = 0;
    ktq_writer_plan(&bytes, &files, writer, nullptr);
    ktq_writer_free(writer);  // removes partial output on failure
    ktq_model_free(model);
    if (st != KTQ_OK) {
        const char *hint = "ktq: partial output kept in %s: run the same command with --resume to continue "
                           "(finished layers are not redone), or delete it\n";
        if (st == KTQ_ERR_CANCELLED) {
            ktq_error_free(err);
            std::fprintf(stderr, "ktq: interrupted\n");
            std::fprintf(stderr, hint, o.out.c_str());
            return 130;
        }
        report_error(st, err);
        std::fprintf(stderr, hint, o.out.c_str());
        return 1;
    }
    if (!o.quiet)
        std::fprintf(stderr, "ktq: wrote %s: %zu safetensors file(s), %s in %.2f s\n", o.out.c_str(), files,
                     human_bytes(bytes).c_str(), secs);
    return 0;
}

}  // namespace

Command add_convert_command(CLI::App &app) {
    auto o = std::make_shared<Options>();
    CLI::App *cmd = app.add_subcommand("convert", "Convert a checkpoint into another format");
    cmd->add_option("model", o->model, "Input model folder (or one .safetensors file)")->required();
    cmd->add_option("out", o->out, "Output folder (created; must be empty unless --overwrite)")->required();
    cmd->add_option("--to", o->to, "Target format: bf16 (dequantized Hugging Face checkpoint)")
        ->check(CLI::IsMember({"bf16"}))
        ->capture_default_str();
    cmd->add_option("--threads", o->threads, "Worker threads (default: one per core, from hwloc)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-shard-size", o->max_shard_bytes,
                    "Largest output shard, e.g. 5GB, 500MB, 4GiB (default 5GB)")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_flag("--overwrite", o->overwrite, "Write into a folder that already holds files (starts over)");
    cmd->add_flag("--resume", o->resume,
                  "Continue an interrupted conversion in OUT: layers already on disk are not redone");
    cmd->add_option("--resume-layer", o->resume_layer,
                    "With --resume: treat layers below N as done (as kt-kernel's converter)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--allow-non-finite", o->allow_non_finite, "Convert tensors holding NaN/Inf instead of stopping");
    cmd->add_flag("--no-aux", o->no_aux, "Do not copy tokenizer / generation / template files");
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    return {cmd, [o] { return run(*o); }};
}

}  // namespace ktq_cli
