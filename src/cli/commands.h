// The ktq subcommands. Each registers its options on the CLI11 app and
// returns the process exit code when run. They use only the public C API.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "ktq/ktq.h"

namespace ktq_cli {

struct Command {
    CLI::App *app;             // the subcommand
    std::function<int()> run;  // runs it once parsed
};

Command add_inspect_command(CLI::App &app);
Command add_convert_command(CLI::App &app);
Command add_convert_cpu_weights_command(CLI::App &app);
Command add_convert_gpu_weights_command(CLI::App &app);
Command add_merge_command(CLI::App &app);
Command add_compare_command(CLI::App &app);
Command add_doctor_command(CLI::App &app);
Command add_tokenize_command(CLI::App &app);
Command add_eval_ppl_command(CLI::App &app);

// --no-sync's help, the same on every command that writes weights (ktq_writer_options.no_sync).
inline constexpr const char *kNoSyncHelp =
    "No fsync of the weight files at all (fastest; complete once ktq returns, but a power loss or OS crash may "
    "leave files that look complete and are not)";

// Prints "ktq: error: <message>" for a failed call and returns exit code 1.
int report_error(int status, ktq_error *err);
// Opens `path` with `threads` workers; on failure reports the error and
// returns its status.
// kt_experts: a kt-kernel output folder whose experts replace the checkpoint's ("" = none).
int open_model(ktq_model **out, const std::string &path, int threads, const std::string &kt_experts = "",
               const std::string &gguf_weights = "");

}  // namespace ktq_cli
