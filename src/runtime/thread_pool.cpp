#include "runtime/thread_pool.h"

#include <atomic>
#include <exception>
#include <system_error>

#include "runtime/error.h"
#include "runtime/topology.h"

namespace ktq {

struct ThreadPool::Job {
    const std::function<void(size_t)> *fn;
    size_t n;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};  // after an error the rest are skipped
    std::mutex mutex;
    std::condition_variable finished;
    size_t done = 0;               // guarded by mutex
    std::exception_ptr error;      // guarded by mutex
};

ThreadPool::ThreadPool(int threads) {
    if (threads > kMaxThreads)
        fail(KTQ_ERR_INVALID_ARGUMENT, "threads = " + std::to_string(threads) + " is more than the " +
                                           std::to_string(kMaxThreads) + " supported");
    try {
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error &e) {
        // Joinable threads must not be destroyed: stop the ones started.
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto &t : workers_) t.join();
        fail(KTQ_ERR_NO_MEMORY, "cannot start " + std::to_string(threads) + " threads: " + e.what());
    }
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
}

void ThreadPool::work_on(Job &job) {
    size_t finished_here = 0;
    std::exception_ptr error;
    for (;;) {
        size_t i = job.next.fetch_add(1);
        if (i >= job.n) break;
        // Every index is claimed and counted, even the ones skipped after a
        // failure, so the caller can simply wait for done == n.
        if (!job.failed.load()) {
            try {
                (*job.fn)(i);
            } catch (...) {
                if (!error) error = std::current_exception();
                job.failed.store(true);
            }
        }
        ++finished_here;
    }
    if (finished_here == 0 && !error) return;
    std::lock_guard<std::mutex> lock(job.mutex);
    job.done += finished_here;
    if (error && !job.error) job.error = error;
    job.finished.notify_all();
}

void ThreadPool::worker_loop() {
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_ && queue_.empty()) return;
            job = queue_.front();
            // Jobs whose indices are all taken leave the queue.
            if (job->next.load() >= job->n) {
                queue_.pop_front();
                continue;
            }
        }
        work_on(*job);
        std::lock_guard<std::mutex> lock(mutex_);
        if (!queue_.empty() && queue_.front() == job) queue_.pop_front();
    }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)> &fn) {
    if (n == 0) return;
    if (workers_.empty() || n == 1) {
        for (size_t i = 0; i < n; ++i) fn(i);
        return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(job);
    }
    wake_.notify_all();
    work_on(*job);
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done == n; });
    if (job->error) std::rethrow_exception(job->error);
}

int hardware_cores() { return Topology::get().cores(); }

int resolve_threads(int threads) { return threads > 0 ? threads : hardware_cores(); }

}  // namespace ktq
