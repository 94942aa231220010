// thread_pool: every task of every job runs exactly once, whatever the workers' timing: jobs
// back to back (workers waking late into a later job), jobs from two caller threads, and jobs
// while other threads keep every core busy (the caller then does most tasks itself).
#include <edgeq/core/thread_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

namespace eq = edgeq;

namespace {
// Runs `jobs` jobs of 1..max_tasks tasks on the pool; returns the number of tasks run more or
// less than once.
std::size_t miscounted(eq::thread_pool& pool, int jobs, std::size_t max_tasks) {
    std::vector<std::atomic<int>> hits(max_tasks);
    std::size_t bad = 0;
    for (int j = 0; j < jobs; ++j) {
        const std::size_t n = 1 + std::size_t(j * 7919) % max_tasks;
        for (std::size_t i = 0; i < n; ++i) hits[i].store(0);
        pool.run(n, [&](std::size_t i) { hits[i].fetch_add(1); });
        for (std::size_t i = 0; i < n; ++i) bad += hits[i].load() != 1;
    }
    return bad;
}
}  // namespace

TEST_CASE("thread_pool runs every task exactly once, job after job", "[thread_pool]") {
    for (unsigned threads : {1u, 2u, 3u, 8u}) {
        eq::thread_pool pool(threads);
        CAPTURE(threads);
        CHECK(miscounted(pool, 20000, 37) == 0);
        CHECK(miscounted(pool, 200, 5000) == 0);
    }
}

TEST_CASE("thread_pool: two callers share one pool", "[thread_pool]") {
    eq::thread_pool pool(3);
    std::size_t bad_a = 0, bad_b = 0;
    std::thread a([&] { bad_a = miscounted(pool, 5000, 50); });
    std::thread b([&] { bad_b = miscounted(pool, 5000, 50); });
    a.join();
    b.join();
    CHECK(bad_a == 0);
    CHECK(bad_b == 0);
}

TEST_CASE("thread_pool: every core busy elsewhere", "[thread_pool]") {
    // Busy threads beside the pool: workers are often descheduled, so the caller must finish
    // jobs without them (correctness here; the speed is bench_kernels'/edgeq run's business).
    std::atomic<bool> stop{false};
    std::vector<std::thread> busy;
    for (unsigned i = 0; i < std::max(2u, std::thread::hardware_concurrency()); ++i)
        busy.emplace_back([&] {
            volatile unsigned x = 0;
            while (!stop.load()) x = x + 1;
        });
    eq::thread_pool pool(4);
    const std::size_t bad = miscounted(pool, 3000, 64);
    std::atomic<std::size_t> sum{0};
    pool.parallel_for(1000, 8, [&](std::size_t b, std::size_t e) { sum.fetch_add(e - b); });
    stop.store(true);
    for (std::thread& t : busy) t.join();
    CHECK(bad == 0);
    CHECK(sum.load() == 1000);
}
