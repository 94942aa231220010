// A small persistent thread pool: kernels split rows across it. Decode runs many short GEMVs
// per token, so workers spin briefly on an epoch counter before sleeping on a condition
// variable; a job is a plain function over [begin, end) task indices.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
    // The caller takes tasks too and waits only for tasks a worker has taken, never for a
    // worker to wake: on a machine whose cores are busy, a descheduled worker would otherwise
    // hold up every small job for a scheduler time slice (decode at 2 threads fell from 2500 to
    // 15 tokens/s on TinyStories-656K with two busy loops beside it).
    void run(std::size_t n_tasks, const std::function<void(std::size_t)>& fn) {
        if (workers_.empty() || n_tasks <= 1) {
            for (std::size_t i = 0; i < n_tasks; ++i) fn(i);
            return;
        }
        if (n_tasks > 0xffffffffu) {  // a ticket holds 32 bits of task index
            for (std::size_t b = 0; b < n_tasks; b += 0x80000000u)
                run(std::min<std::size_t>(0x80000000u, n_tasks - b), [&](std::size_t i) { fn(b + i); });
            return;
        }
        std::lock_guard<std::mutex> one_job(job_mu_);
        const std::uint64_t job = std::uint64_t(++jobs_ & 0xffffffffu) << 32;
        job_.store(&fn);
        done_.store(0);
        desc_.store(job | std::uint64_t(n_tasks));
        ticket_.store(job);
        {
            std::lock_guard<std::mutex> lk(mu_);
            epoch_.fetch_add(1);
        }
        cv_.notify_all();
        drain();
        while (done_.load() < n_tasks) std::this_thread::yield();
        job_.store(nullptr);
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
    // A ticket is (job << 32 | task index). It is valid while the job is the current one
    // (desc_: job << 32 | task count) and the index is below the count: a worker that wakes late
    // finds the job finished or another one current, and takes nothing it could leave undone.
    void drain() {
        for (;;) {
            const std::uint64_t t = ticket_.fetch_add(1), d = desc_.load();
            if ((t >> 32) != (d >> 32) || (t & 0xffffffffu) >= (d & 0xffffffffu)) return;
            (*job_.load())(std::size_t(t & 0xffffffffu));
            done_.fetch_add(1);
        }
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
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_, job_mu_;
    std::condition_variable cv_;
    std::atomic<std::size_t> epoch_{0}, done_{0};
    std::atomic<std::uint64_t> ticket_{0}, desc_{0};
    std::atomic<const std::function<void(std::size_t)>*> job_{nullptr};
    std::uint64_t jobs_ = 0;  // under job_mu_
    std::atomic<bool> stop_{false};
};

// The pool kernels use when none is given: one thread per hardware thread.
inline thread_pool& default_pool() {
    static thread_pool pool;
    return pool;
}

}  // namespace edgeq
