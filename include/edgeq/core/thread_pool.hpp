// A small persistent thread pool: kernels split rows across it. Decode runs many short GEMVs
// per token, so workers spin briefly on an epoch counter before sleeping on a condition
// variable; a job is a plain function over [begin, end) task indices.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edgeq {

class thread_pool {
   public:
    // n_threads counts the calling thread: thread_pool(1) runs everything inline.
    explicit thread_pool(unsigned n_threads = std::max(1u, std::thread::hardware_concurrency())) {
        for (unsigned i = 1; i < std::max(1u, n_threads); ++i) workers_.emplace_back([this] { work(); });
    }
    ~thread_pool() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
            epoch_.fetch_add(1);
        }
        cv_.notify_all();
        for (std::thread& t : workers_) t.join();
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    unsigned size() const { return unsigned(workers_.size()) + 1; }

    // Calls fn(i) for every i in [0, n_tasks), spread over the threads; returns when all are done.
    void run(std::size_t n_tasks, const std::function<void(std::size_t)>& fn) {
        if (workers_.empty() || n_tasks <= 1) {
            for (std::size_t i = 0; i < n_tasks; ++i) fn(i);
            return;
        }
        std::lock_guard<std::mutex> one_job(job_mu_);
        job_ = &fn;
        n_tasks_ = n_tasks;
        next_.store(0);
        pending_.store(workers_.size());
        {
            std::lock_guard<std::mutex> lk(mu_);
            epoch_.fetch_add(1);
        }
        cv_.notify_all();
        drain();
        while (pending_.load() != 0) std::this_thread::yield();
        job_ = nullptr;
    }

    // Calls fn(begin, end) on contiguous slices of [0, n), each a multiple of `align` long.
    void parallel_for(std::size_t n, std::size_t align, const std::function<void(std::size_t, std::size_t)>& fn) {
        const std::size_t parts = std::min<std::size_t>(size() * 4, (n + align - 1) / std::max<std::size_t>(align, 1));
        if (parts <= 1) {
            fn(0, n);
            return;
        }
        const std::size_t step = ((n + parts - 1) / parts + align - 1) / align * align;
        run((n + step - 1) / step, [&](std::size_t i) { fn(i * step, std::min(n, (i + 1) * step)); });
    }

   private:
    void drain() {
        for (std::size_t i; (i = next_.fetch_add(1)) < n_tasks_;) (*job_)(i);
    }
    void work() {
        std::size_t seen = 0;
        for (;;) {
            for (int spin = 0; spin < 20000 && epoch_.load() == seen; ++spin) std::this_thread::yield();
            if (epoch_.load() == seen) {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return epoch_.load() != seen; });
            }
            seen = epoch_.load();
            if (stop_) return;
            drain();
            pending_.fetch_sub(1);
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_, job_mu_;
    std::condition_variable cv_;
    std::atomic<std::size_t> epoch_{0}, next_{0}, pending_{0};
    std::size_t n_tasks_ = 0;
    const std::function<void(std::size_t)>* job_ = nullptr;
    std::atomic<bool> stop_{false};
};

// The pool kernels use when none is given: one thread per hardware thread.
inline thread_pool& default_pool() {
    static thread_pool pool;
    return pool;
}

}  // namespace edgeq
