// ProgressBar - progress of a long job on stderr: a redrawn bar when stderr
// is a terminal, one plain line per finished layer otherwise (logs, CI),
// nothing with --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "ktq/ktq.h"

namespace ktq_cli {

class ProgressBar {
public:
    explicit ProgressBar(bool quiet);
    // The ktq_progress_cb; `payload` is the ProgressBar. Also watches for
    // SIGINT and cancels the job cleanly when one arrived.
    static int callback(const ktq_progress *p, void *payload);
    void done();

private:
    void update(const ktq_progress &p);

    bool quiet_;
    bool tty_;
    int last_layer_ = -2;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

// Installs a SIGINT handler that asks running jobs to cancel.
void install_interrupt_handler();
bool interrupted();

std::string human_bytes(uint64_t bytes);

}  // namespace ktq_cli
