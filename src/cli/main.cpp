// ktq - command line front end of libktq.
#include <cstdio>

#include "cli/commands.h"
#include "ktq/ktq.h"

namespace ktq_cli {

int report_error(int status, ktq_error *err) {
    std::fprintf(stderr, "ktq: error: %s\n", err ? ktq_error_message(err) : ktq_status_str(status));
    ktq_error_free(err);
    return 1;
}

int open_model(ktq_model **out, const std::string &path, int threads, const std::string &kt_experts,
               const std::string &gguf_weights) {
    ktq_open_options opts;
    ktq_open_options_init(&opts, KTQ_OPEN_OPTIONS_VERSION);
    opts.threads = threads;
    opts.kt_experts = kt_experts.empty() ? nullptr : kt_experts.c_str();
    opts.gguf_weights = gguf_weights.empty() ? nullptr : gguf_weights.c_str();
    ktq_error *err = nullptr;
    int st = ktq_open_model(out, path.c_str(), &opts, &err);
    if (st != KTQ_OK) report_error(st, err);
    return st;
}

}  // namespace ktq_cli

int main(int argc, char **argv) {
    CLI::App app{"ktq - quantize Hugging Face MoE checkpoints for hybrid CPU/GPU inference"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("ktq ") + ktq_version());
    const ktq_cli::Command commands[] = {ktq_cli::add_inspect_command(app), ktq_cli::add_convert_command(app),
                                         ktq_cli::add_convert_cpu_weights_command(app),
                                         ktq_cli::add_convert_gpu_weights_command(app),
                                         ktq_cli::add_merge_command(app),
                                         ktq_cli::add_compare_command(app),
                                         ktq_cli::add_doctor_command(app),
                                         ktq_cli::add_tokenize_command(app),
                                         ktq_cli::add_eval_ppl_command(app)};
    CLI11_PARSE(app, argc, argv);
    for (const auto &c : commands)
        if (c.app->parsed()) return c.run();
    return 2;
}
