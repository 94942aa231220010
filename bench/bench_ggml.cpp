// bench_ggml: int8-activation GEMV (vec-dot) throughput of llama.cpp's block formats, in GB/s of
// quantized weights read, on 1 and 2 threads, for matrices that fit in L1, L2, L3 and main
// memory; edgeq's fp32-activation GEMV next to it. Built with EDGEQ_BENCH_LLAMA_CPP (CMake option
// EDGEQ_LLAMA_CPP_DIR, never required), llama.cpp's own vec_dot
// (ggml_get_type_traits_cpu(type)->vec_dot) runs on the same bytes in the same run, on the same
// thread pool, row by row, as its matmul does for one token.
//
// The machine this runs on may be shared, so the two sides are timed in alternation: one sample of
// edgeq, one of llama.cpp, again and again, and each side's best sample counts. A drift in the
// load then reaches both sides alike. The read bandwidth (a sum over a buffer far larger than the
// last-level cache, same threads) is measured at the start. --markdown ends with the whole table
// as markdown (docs/bench-ggml.md).
//
//   bench_ggml [--quick] [--type NAME]... [--sizes L1,L2,L3,mem] [--threads 1,2] [--min-time S]
//              [--no-f32] [--markdown]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <edgeq/edgeq.hpp>

#include "../tests/data/ggml/decode_blocks.hpp"

#if EDGEQ_BENCH_LLAMA_CPP
#include <ggml-cpu.h>
#include <ggml.h>
#endif

namespace eq = edgeq;

namespace {

#if EDGEQ_BENCH_LLAMA_CPP
constexpr bool with_llama = true;
#else
constexpr bool with_llama = false;
#endif

using clk = std::chrono::steady_clock;

struct level {
    std::string name;
    std::size_t bytes;  // target size of the quantized matrix
};

struct options {
    bool quick = false, f32 = true, markdown = false;
    std::vector<std::string> types;
    std::vector<std::string> sizes = {"L1", "L2", "L3", "mem"};
    std::vector<unsigned> threads = {1, 2};
    double min_time = 0.3;
};

// One line of results: GB/s of quantized weights (0 where not measured).
struct result {
    std::string type, size;
    double bpw = 0, mib = 0;
    unsigned threads = 1;
    double edgeq = 0, llama = 0, f32 = 0;
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t b = 0;
    while (b <= s.size()) {
        const std::size_t e = std::min(s.find(',', b), s.size());
        if (e > b) out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// Calls per sample, so that one sample lasts about 200 us: small matrices take a few us per call,
// too close to the clock's resolution for one call alone.
template <class Fn>
int calls_per_sample(Fn& fn) {
    const auto t0 = clk::now();
    fn();
    return int(std::max(1.0, std::min(1000.0, 200e-6 / std::max(1e-9, seconds_since(t0)))));
}

// Best seconds per call of each function, sampled in alternation (a, b, a, b, ...) for at least
// min_time seconds per function and 5 samples each.
template <class A, class B>
void best_alternating(A&& a, B&& b, double min_time, double& best_a, double& best_b) {
    a(), b();  // warm up: pages touched, caches filled
    const int na = calls_per_sample(a), nb = calls_per_sample(b);
    best_a = best_b = 1e30;
    double ta = 0, tb = 0;
    for (int s = 0; s < 5 || ta < min_time || tb < min_time; ++s) {
        auto t0 = clk::now();
        for (int k = 0; k < na; ++k) a();
        double d = seconds_since(t0);
        ta += d, best_a = std::min(best_a, d / na);
        t0 = clk::now();
        for (int k = 0; k < nb; ++k) b();
        d = seconds_since(t0);
        tb += d, best_b = std::min(best_b, d / nb);
    }
}
template <class A>
double best_seconds(A&& a, double min_time) {
    a();
    const int na = calls_per_sample(a);
    double best = 1e30, total = 0;
    for (int s = 0; s < 5 || total < min_time; ++s) {
        const auto t0 = clk::now();
        for (int k = 0; k < na; ++k) a();
        const double d = seconds_since(t0);
        total += d, best = std::min(best, d / na);
    }
    return best;
}

// Read bandwidth: sum of 32-bit words over a buffer much larger than the last-level cache, split
// over the pool's threads; best of repeated passes, in GB/s.
double read_bandwidth(eq::thread_pool& pool, std::size_t bytes, double min_time) {
    static std::vector<std::uint32_t> buf(bytes / 4, 1u);
    volatile std::uint32_t sink = 0;
    const std::size_t n = buf.size(), tasks = pool.size(), step = (n / tasks + 15) / 16 * 16;
    std::vector<std::uint32_t> part(tasks);
    const auto pass = [&] {
        pool.run(tasks, [&](std::size_t t) {
            const std::uint32_t* p = buf.data() + std::min(n, t * step);
            const std::size_t m = std::min(n, (t + 1) * step) - std::min(n, t * step);
            std::uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (std::size_t i = 0; i + 4 <= m; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
            part[t] = s0 + s1 + s2 + s3;
        });
        sink = sink + part[0];
    };
    return double(bytes) / best_seconds(pass, min_time) / 1e9;
}

#if EDGEQ_BENCH_LLAMA_CPP
template <class B>
ggml_type type_of() {
    return ggml_type(B::type_id);
}
#endif

template <class B>
void bench_type(const options& opt, const std::vector<level>& levels, std::vector<eq::thread_pool*>& pools, std::vector<result>& out) {
    if (!opt.types.empty() && std::find(opt.types.begin(), opt.types.end(), std::string(B::name())) == opt.types.end()) return;
    using F = eq::ggml_format<B>;
    using act = typename eq::activation_of<F>::type;
    constexpr std::size_t act_weights = sizeof(act) == sizeof(eq::q8_block) ? 32 : 256;
    const std::size_t cols = 4096, row_bytes = F::storage_bytes(1, cols);
    for (const level& lv : levels) {
        const std::size_t rows = std::max<std::size_t>(1, lv.bytes / row_bytes);
        std::vector<B> blocks(rows * F::blocks_per_row(cols));
        eq::ggml_test::fill_blocks(blocks.data(), blocks.size(), 42);
        eq::qview<F> w;
        w.rows = rows, w.cols = cols, w.blocks = blocks.data();
        std::vector<float> x(cols), y(rows), y_ll(rows);
        eq::ggml_test::random_floats(x.data(), cols, 7);
        std::vector<act> xq(cols / act_weights);
        eq::quantize_activations(x.data(), cols, xq.data());
        const double gb = double(F::storage_bytes(rows, cols)) / 1e9;
#if EDGEQ_BENCH_LLAMA_CPP
        const ggml_type_traits_cpu* tr = ggml_get_type_traits_cpu(type_of<B>());
        const std::size_t vq_bytes = ggml_row_size(tr->vec_dot_type, std::int64_t(cols));
        std::vector<unsigned char> lq(vq_bytes);
        ggml_get_type_traits_cpu(tr->vec_dot_type)->from_float(x.data(), lq.data(), std::int64_t(cols));
#endif
        for (eq::thread_pool* pp : pools) {
            eq::thread_pool& pool = *pp;
            result r;
            r.type = B::name(), r.size = lv.name, r.bpw = F::bits_per_weight(), r.mib = gb * 1e9 / (1 << 20), r.threads = pool.size();
            const auto edgeq_q8 = [&] { eq::gemv_q8(w, xq.data(), y.data(), pool); };
            double t_eq = 0;
#if EDGEQ_BENCH_LLAMA_CPP
            const auto llama = [&] {
                pool.parallel_for(rows, eq::rows_per_task, [&](std::size_t r0, std::size_t r1) {
                    for (std::size_t i = r0; i < r1; ++i) tr->vec_dot(int(cols), &y_ll[i], 0, w.row_blocks(i), 0, lq.data(), 0, 1);
                });
            };
            double t_ll = 0;
            best_alternating(edgeq_q8, llama, opt.min_time, t_eq, t_ll);
            r.llama = gb / t_ll;
#else
            t_eq = best_seconds(edgeq_q8, opt.min_time);
#endif
            r.edgeq = gb / t_eq;
            if (opt.f32) r.f32 = gb / best_seconds([&] { eq::gemv(w, x.data(), y.data(), pool); }, opt.min_time);
            std::printf("%-7s %6.3f %-4s %9.3f %5zu %3u %10.2f %10.2f", B::name(), r.bpw, lv.name.c_str(), r.mib, rows, r.threads, r.edgeq, r.f32);
#if EDGEQ_BENCH_LLAMA_CPP
            std::printf(" %10.2f %6.2f", r.llama, r.edgeq / r.llama);
#endif
            std::printf("\n");
            std::fflush(stdout);
            out.push_back(r);
        }
    }
}

// The whole table as markdown: one line per type and size, the thread counts side by side.
void print_markdown(const std::vector<result>& rs, const options& opt) {
    std::printf("\n| type | bpw | size | MiB |");
    for (unsigned t : opt.threads) {
#if EDGEQ_BENCH_LLAMA_CPP
        std::printf(" edgeq %ut | llama.cpp %ut | ratio %ut |", t, t, t);
#else
        std::printf(" edgeq %ut |", t);
#endif
    }
    if (opt.f32)
        for (unsigned t : opt.threads) std::printf(" edgeq f32 %ut |", t);
    std::printf("\n|---|---:|---|---:|");
    for (std::size_t k = 0; k < opt.threads.size() * (with_llama ? 3 : 1) + (opt.f32 ? opt.threads.size() : 0); ++k) std::printf("---:|");
    std::printf("\n");
    for (std::size_t i = 0; i < rs.size(); i += opt.threads.size()) {
        const result& a = rs[i];
        std::printf("| %s | %.3f | %s | %.2f |", a.type.c_str(), a.bpw, a.size.c_str(), a.mib);
        for (std::size_t k = 0; k < opt.threads.size(); ++k) {
            const result& r = rs[i + k];
#if EDGEQ_BENCH_LLAMA_CPP
            std::printf(" %.2f | %.2f | %s%.2f%s |", r.edgeq, r.llama, r.edgeq < r.llama ? "**" : "", r.edgeq / r.llama, r.edgeq < r.llama ? "**" : "");
#else
            std::printf(" %.2f |", r.edgeq);
#endif
        }
        if (opt.f32)
            for (std::size_t k = 0; k < opt.threads.size(); ++k) std::printf(" %.2f |", rs[i + k].f32);
        std::printf("\n");
    }
}

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: bench_ggml [options]\n"
                 "  --quick           short runs, a 64 MiB 'mem' matrix instead of 256 MiB\n"
                 "  --type NAME       only this type (Q4_0 ... IQ4_XS); repeatable or a comma list\n"
                 "  --sizes LIST      matrix sizes among L1,L2,L3,mem (default all)\n"
                 "  --threads LIST    thread counts (default 1,2)\n"
                 "  --min-time S      seconds of samples per side and line, at least (default 0.3)\n"
                 "  --no-f32          skip the fp32-activation GEMV column\n"
                 "  --markdown        end with the table in markdown\n");
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--quick") opt.quick = true, opt.min_time = 0.05;
        else if (a == "--no-f32") opt.f32 = false;
        else if (a == "--markdown") opt.markdown = true;
        else if (a == "--type" && has_value) {
            for (const std::string& t : split(argv[++i])) opt.types.push_back(t);
        } else if (a == "--sizes" && has_value) opt.sizes = split(argv[++i]);
        else if (a == "--threads" && has_value) {
            opt.threads.clear();
            for (const std::string& t : split(argv[++i])) opt.threads.push_back(unsigned(std::max(1, std::atoi(t.c_str()))));
        } else if (a == "--min-time" && has_value) opt.min_time = std::atof(argv[++i]);
        else return usage(a == "--help" ? 0 : 2);
    }
#if EDGEQ_BENCH_LLAMA_CPP
    ggml_cpu_init();
#endif
    // Sizes of the quantized matrix: within a 32 KiB L1, a 512 KiB-1 MiB L2, a multi-MiB L3, and
    // well past any last-level cache (the memory size shrinks with --quick).
    const std::vector<level> all = {{"L1", 20u << 10}, {"L2", 320u << 10}, {"L3", 6u << 20}, {"mem", opt.quick ? (64u << 20) : (256u << 20)}};
    std::vector<level> levels;
    for (const level& l : all)
        if (std::find(opt.sizes.begin(), opt.sizes.end(), l.name) != opt.sizes.end()) levels.push_back(l);
    std::vector<std::unique_ptr<eq::thread_pool>> owned;
    std::vector<eq::thread_pool*> pools;
    for (unsigned t : opt.threads) owned.emplace_back(new eq::thread_pool(t)), pools.push_back(owned.back().get());

    std::printf("backend %s; GB/s of quantized weights per GEMV (cols 4096), best sample\n", eq::backend::best::name());
    for (eq::thread_pool* p : pools)
        std::printf("read bandwidth, %u thread%s: %.2f GB/s (sum over 256 MiB, best pass)\n", p->size(), p->size() == 1 ? "" : "s",
                    read_bandwidth(*p, std::size_t(256) << 20, opt.quick ? 0.3 : 1.0));
    std::printf("%-7s %6s %-4s %9s %5s %3s %10s %10s", "type", "bpw", "size", "MiB", "rows", "thr", "q8 GB/s", "f32 GB/s");
#if EDGEQ_BENCH_LLAMA_CPP
    std::printf(" %10s %6s", "llama GB/s", "eq/ll");
#endif
    std::printf("\n");
    std::vector<result> rs;
    using namespace eq::ggml;
    bench_type<block_q4_0>(opt, levels, pools, rs);
    bench_type<block_q4_1>(opt, levels, pools, rs);
    bench_type<block_q5_0>(opt, levels, pools, rs);
    bench_type<block_q5_1>(opt, levels, pools, rs);
    bench_type<block_q8_0>(opt, levels, pools, rs);
    bench_type<block_q2_K>(opt, levels, pools, rs);
    bench_type<block_q3_K>(opt, levels, pools, rs);
    bench_type<block_q4_K>(opt, levels, pools, rs);
    bench_type<block_q5_K>(opt, levels, pools, rs);
    bench_type<block_q6_K>(opt, levels, pools, rs);
    bench_type<block_iq4_nl>(opt, levels, pools, rs);
    bench_type<block_iq4_xs>(opt, levels, pools, rs);
    if (opt.markdown) print_markdown(rs, opt);
}
