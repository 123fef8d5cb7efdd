#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "runtime/thread_pool.h"

using ktq::ThreadPool;

TEST(ThreadPool, RunsEveryIndexOnce) {
    for (int threads : {1, 2, 5}) {
        ThreadPool pool(threads);
        std::vector<std::atomic<int>> hits(1000);
        pool.parallel_for(hits.size(), [&](size_t i) { hits[i]++; });
        for (auto &h : hits) ASSERT_EQ(h.load(), 1);
    }
}

TEST(ThreadPool, RethrowsAndStaysUsable) {
    ThreadPool pool(3);
    EXPECT_THROW(pool.parallel_for(100, [](size_t i) {
        if (i == 17) throw std::runtime_error("boom");
    }), std::runtime_error);
    std::atomic<int> n{0};
    pool.parallel_for(50, [&](size_t) { n++; });
    EXPECT_EQ(n.load(), 50);
}

TEST(ThreadPool, ConcurrentCallersAndNesting) {
    ThreadPool pool(3);
    std::atomic<long> sum{0};
    auto job = [&] {
        pool.parallel_for(20, [&](size_t i) {
            pool.parallel_for(10, [&](size_t j) { sum += static_cast<long>(i * 10 + j); });
        });
    };
    std::thread a(job), b(job);
    a.join();
    b.join();
    EXPECT_EQ(sum.load(), 2 * (199 * 200 / 2));
}
