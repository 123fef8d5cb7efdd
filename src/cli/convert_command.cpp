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
        if (st == KTQ_ERR_CANCELLED) {
            ktq_error_free(err);
            std::fprintf(stderr, "ktq: interrupted; no output was left behind in %s\n", o.out.c_str());
            return 130;
        }
        return report_error(st, err);
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
    cmd->add_flag("--overwrite", o->overwrite, "Write into a folder that already holds files");
    cmd->add_flag("--no-aux", o->no_aux, "Do not copy tokenizer / generation / template files");
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    return {cmd, [o] { return run(*o); }};
}

}  // namespace ktq_cli
