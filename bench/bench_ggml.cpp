// bench_ggml: int8-activation GEMV (vec-dot) throughput of llama.cpp's block formats, in GB/s of
// quantized weights read, single-threaded and on 2 threads, for matrices that fit in L1, L2, L3
// and main memory; fp32-activation GEMV next to it. Built with EDGEQ_BENCH_LLAMA_CPP (CMake
// option EDGEQ_LLAMA_CPP_DIR, never required), llama.cpp's own vec_dot
// (ggml_get_type_traits_cpu(type)->vec_dot) runs on the same bytes in the same run, on the same
// thread pool, row by row, as its matmul does for one token.
//
//   bench_ggml [--quick] [--type NAME] [--min-time SECONDS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

using clk = std::chrono::steady_clock;

struct options {
    bool quick = false;
    std::string type;
    double min_time = 0.3;
};

struct level {
    const char* name;
    std::size_t bytes;  // target size of the quantized matrix
};

// Best time per call over calls repeated for at least min_time seconds.
template <class Fn>
double best_seconds(Fn&& fn, double min_time) {
    fn();  // warm up: pages touched, caches filled
    double best = 1e30, total = 0;
    int calls = 0;
    while (total < min_time || calls < 5) {
        const auto t0 = clk::now();
        fn();
        const double s = std::chrono::duration<double>(clk::now() - t0).count();
        best = std::min(best, s), total += s, ++calls;
    }
    return best;
}

#if EDGEQ_BENCH_LLAMA_CPP
template <class B>
ggml_type type_of() {
    return ggml_type(B::type_id);
}
#endif

template <class B>
void bench_type(const options& opt, const std::vector<level>& levels) {
    if (!opt.type.empty() && opt.type != B::name()) return;
    using F = eq::ggml_format<B>;
    using act = typename eq::activation_of<F>::type;
    constexpr std::size_t act_weights = sizeof(act) == sizeof(eq::q8_block) ? 32 : 256;
    const std::size_t cols = 4096, row_bytes = F::storage_bytes(1, cols);
    eq::thread_pool one(1), two(2);
    eq::thread_pool* pools[2] = {&one, &two};
    for (const level& lv : levels) {
        const std::size_t rows = std::max<std::size_t>(1, lv.bytes / row_bytes);
        std::vector<B> blocks(rows * F::blocks_per_row(cols));
        eq::ggml_test::fill_blocks(blocks.data(), blocks.size(), 42);
        eq::qview<F> w;
        w.rows = rows, w.cols = cols, w.blocks = blocks.data();
        std::vector<float> x(cols), y(rows);
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
        for (int t = 0; t < 2; ++t) {
            eq::thread_pool& pool = *pools[t];
            const double q8 = best_seconds([&] { eq::gemv_q8(w, xq.data(), y.data(), pool); }, opt.min_time);
            const double f32 = best_seconds([&] { eq::gemv(w, x.data(), y.data(), pool); }, opt.min_time);
            std::printf("%-7s %6.3f %-4s %9zu %5zu %3d %10.2f %10.2f", B::name(), F::bits_per_weight(), lv.name,
                        std::size_t(F::storage_bytes(rows, cols)), rows, t + 1, gb / q8, gb / f32);
#if EDGEQ_BENCH_LLAMA_CPP
            const double ll = best_seconds(
                [&] {
                    pool.parallel_for(rows, eq::rows_per_task, [&](std::size_t r0, std::size_t r1) {
                        for (std::size_t r = r0; r < r1; ++r)
                            tr->vec_dot(int(cols), &y[r], 0, w.row_blocks(r), 0, lq.data(), 0, 1);
                    });
                },
                opt.min_time);
            std::printf(" %10.2f %6.2f", gb / ll, ll / q8);
#endif
            std::printf("\n");
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") opt.quick = true, opt.min_time = 0.05;
        else if (a == "--type" && i + 1 < argc) opt.type = argv[++i];
        else if (a == "--min-time" && i + 1 < argc) opt.min_time = std::atof(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_ggml [--quick] [--type NAME] [--min-time SECONDS]\n");
            return a == "--help" ? 0 : 2;
        }
    }
#if EDGEQ_BENCH_LLAMA_CPP
    ggml_cpu_init();
#endif
    // Sizes of the quantized matrix: within a 32 KiB L1, a 512 KiB-1 MiB L2, a multi-MiB L3, and
    // well past any last-level cache (the memory size shrinks with --quick).
    const std::vector<level> levels = {{"L1", 20u << 10}, {"L2", 320u << 10}, {"L3", 6u << 20}, {"mem", opt.quick ? (64u << 20) : (256u << 20)}};
    std::printf("backend %s; GB/s of quantized weights per GEMV (cols 4096), best of repeated calls\n", eq::backend::best::name());
    std::printf("%-7s %6s %-4s %9s %5s %3s %10s %10s", "type", "bpw", "size", "bytes", "rows", "thr", "q8 GB/s", "f32 GB/s");
#if EDGEQ_BENCH_LLAMA_CPP
    std::printf(" %10s %6s", "llama GB/s", "eq/ll");
#endif
    std::printf("\n");
    using namespace eq::ggml;
    bench_type<block_q4_0>(opt, levels);
    bench_type<block_q4_1>(opt, levels);
    bench_type<block_q5_0>(opt, levels);
    bench_type<block_q5_1>(opt, levels);
    bench_type<block_q8_0>(opt, levels);
    bench_type<block_q2_K>(opt, levels);
    bench_type<block_q3_K>(opt, levels);
    bench_type<block_q4_K>(opt, levels);
    bench_type<block_q5_K>(opt, levels);
    bench_type<block_q6_K>(opt, levels);
    bench_type<block_iq4_nl>(opt, levels);
    bench_type<block_iq4_xs>(opt, levels);
}
