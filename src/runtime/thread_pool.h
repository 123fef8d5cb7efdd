// ThreadPool - a fixed set of workers that run parallel_for() jobs.
//
// Several threads may call parallel_for() on the same pool at once (a shared
// ktq_model is read from many threads); each call waits for its own job only.
// The calling thread works on its own job too, so a pool of size 1 has no
// worker threads at all. Results never depend on the thread count: callers
// write each index's output to a fixed place.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ktq {

class ThreadPool {
public:
    static constexpr int kMaxThreads = 4096;
    // `threads` counts the caller: threads - 1 workers are started.
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Calls fn(i) for every i in [0, n), spread over the pool; rethrows the
    // first exception thrown by fn once every started call has returned.
    void parallel_for(size_t n, const std::function<void(size_t)> &fn);

private:
    struct Job;
    void worker_loop();
    static void work_on(Job &job);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::shared_ptr<Job>> queue_;
    bool stopping_ = false;
};

// Physical cores of this machine from hwloc (>= 1).
int hardware_cores();
// Threads to use for a `threads` option: the option if > 0, else the cores.
int resolve_threads(int threads);

}  // namespace ktq
