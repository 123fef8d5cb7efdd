#include "cli/progress_bar.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace ktq_cli {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }
}  // namespace

void install_interrupt_handler() { std::signal(SIGINT, on_sigint); }
bool interrupted() { return g_interrupted != 0; }

std::string human_bytes(uint64_t bytes) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

ProgressBar::ProgressBar(bool quiet)
    : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

int ProgressBar::callback(const ktq_progress *p, void *payload) {
    auto *self = static_cast<ProgressBar *>(payload);
    if (!self->quiet_) self->update(*p);
    return interrupted() ? 1 : 0;
}

void ProgressBar::update(const ktq_progress &p) {
    using namespace std::chrono;
    const auto now = steady_clock::now();
    const double secs = duration<double>(now - start_).count();
    const double frac = p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
    const double rate = secs > 0 ? static_cast<double>(p.bytes_done) / secs : 0.0;
    char where[48];
    if (p.layer >= 0)
        std::snprintf(where, sizeof where, "layer %d/%d", p.layer + 1, p.layers_total);
    else
        std::snprintf(where, sizeof where, "other tensors");
    if (tty_) {
        if (duration<double>(now - last_draw_).count() < 0.1 && p.bytes_done < p.bytes_total) return;
        last_draw_ = now;
        const int width = 30, filled = static_cast<int>(frac * width);
        std::string bar(static_cast<size_t>(filled), '#');
        bar.resize(width, '.');
        std::fprintf(stderr, "\r[%s] %5.1f%%  %-16s %10s/s ", bar.c_str(), frac * 100.0, where,
                     human_bytes(static_cast<uint64_t>(rate)).c_str());
        std::fflush(stderr);
    } else if (p.layer != last_layer_) {
        // One line when a layer starts: readable in logs.
        std::fprintf(stderr, "ktq: %5.1f%%  %s  (%s read, %s/s)\n", frac * 100.0, where,
                     human_bytes(p.bytes_done).c_str(), human_bytes(static_cast<uint64_t>(rate)).c_str());
    }
    last_layer_ = p.layer;
}

void ProgressBar::done() {
    if (!quiet_ && tty_) std::fprintf(stderr, "\n");
}

}  // namespace ktq_cli
