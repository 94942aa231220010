// bench_kernels: how close the host GEMV/GEMM kernels come to the memory bandwidth.
//
// Decode is memory-bound: tokens/s <= bandwidth / bytes of weights per token. So every kernel is
// reported as GB/s of quantized weights streamed, bytes = qmatrix::storage_bytes() (codes,
// scales, zero points, double-quant factors), side by side with
//   - the machine's read bandwidth, measured here with a STREAM-like sum over a buffer much
//     larger than the last-level cache, with the same number of threads ("% BW"), and
//   - a dense fp32 GEMV written here with xsimd, on the same thread pool and split ("x fp32" is
//     its time over the kernel's time; the ideal is 32 / bits-per-weight).
// Weights never sit in the cache between calls: when one matrix is smaller than --rotate-x times
// the LLC, the bench cycles through identical copies whose total is at least that (nothing is
// flushed). Each line: warm-up, then calls until >= --min-time seconds AND >= --min-reps calls,
// each timed alone; the time is the median of the calls that no other work preempted (the
// machine this was written on is shared), else the minimum, flagged. docs/bench-kernels.md
// describes the method and the results.
//
//   bench_kernels [--quick] [--shape RxC]... [--json FILE] [--threads 1,2] [--filter SUBSTR] ...
//   bench_kernels --calib [--threads 2] [--calib-part gemm,hessian,gptq,block] [--calib-windows 32]
//                 [--calib-reps 3] [--calib-clock wall|cpu]
//   bench_kernels --help
//
// --calib times the pieces of calibrated quantization (engine/calibrate.hpp) at TinyLlama-1.1B's
// shapes instead: the dense f16/f32 GEMM of 512 tokens (the band kernel against the packed one),
// the Hessian accumulation X^T X (float64 products against float products summed in float64),
// the GPTQ solver per matrix, and one whole block of quantize_calibrated, whose time times 22 is
// the model's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <xsimd/xsimd.hpp>

#include <edgeq/edgeq.hpp>
#include <edgeq/engine/quantize_model.hpp>
#include <edgeq/kernel/simd/dense.hpp>

namespace {

using clk = std::chrono::steady_clock;
using simd_arch = xsimd::default_arch;
using f32v = xsimd::batch<float, simd_arch>;
using fvec = std::vector<float, xsimd::aligned_allocator<float>>;
using edgeq::backend::best;
using generic = edgeq::backend::simd<simd_arch>;
using edgeq::backend::scalar;

const double nan_v = std::numeric_limits<double>::quiet_NaN();

double seconds(clk::duration d) { return std::chrono::duration<double>(d).count(); }

// ----------------------------------------------------------------------------------------------
// The schemes: edgeq::scheme<...> types, named from their format (no registry needed).

template <class... S>
struct type_list {};

using schemes = type_list<edgeq::scheme<edgeq::bits<2>, edgeq::group<64>, edgeq::asymmetric>,
                          edgeq::scheme<edgeq::bits<3>, edgeq::group<128>, edgeq::asymmetric>,
                          edgeq::scheme<edgeq::bits<4>, edgeq::group<128>, edgeq::symmetric>,
                          edgeq::scheme<edgeq::bits<4>, edgeq::group<128>, edgeq::asymmetric>,
                          edgeq::scheme<edgeq::bits<5>, edgeq::group<128>>,
                          edgeq::scheme<edgeq::bits<6>, edgeq::group<128>>,
                          edgeq::scheme<edgeq::bits<8>, edgeq::group<128>>,
                          edgeq::scheme<edgeq::bits<8>, edgeq::per_row>,
                          edgeq::scheme<edgeq::nf4, edgeq::group<64>>,
                          edgeq::scheme<edgeq::nf4, edgeq::group<64>, edgeq::double_quant>>;

template <class... S, class Fn>
void for_each_type(type_list<S...>, Fn&& fn) {
    const int expand[] = {0, (fn(S{}), 0)...};
    (void)expand;
}

template <class S>
std::string scheme_name() {
    using F = edgeq::format_of<S>;
    const int bits = F::bits, group = F::group;
    std::string n = F::is_uniform ? "int" + std::to_string(bits) : std::string("nf4");
    n += group ? "-g" + std::to_string(group) : std::string("-row");
    if (F::is_uniform) n += F::asymmetric ? "-asym" : "-sym";
    if (F::is_double_quant) n += "-dq";
    if (std::is_same<typename F::scale_type, edgeq::fp32_t>::value) n += "-f32scale";
    return n;
}

// ----------------------------------------------------------------------------------------------
// Options.

struct shape {
    std::size_t rows, cols;
    std::string str() const { return std::to_string(rows) + "x" + std::to_string(cols); }
};

struct options {
    bool quick = false;
    std::vector<shape> shapes;
    std::string json;
    std::string filter;
    std::vector<unsigned> threads;
    double min_time = 0.2;
    int min_reps = 5;
    int max_reps = 100000;
    double rotate_x = 4.0;   // weights in flight >= rotate_x * LLC
    bool rotate_set = false;
    double bw_mib = 0.0;     // 0: max(8 x LLC, 256 MiB)
    bool scalar = true;      // scalar and generic-simd paths, on the first shape only
    bool gemm = true;        // gemm lines, on the first shape only
    bool extra_all = false;  // scalar/generic/gemm on every shape
    bool q8_split = false;   // also time gemv_q8 on pre-quantized x
    bool thp = false;        // madvise(MADV_HUGEPAGE) the bench's large buffers
    bool bw_once = false;    // measure the bandwidth only at the start and the end, not before every shape
};

void usage() {
    std::printf(
        "usage: bench_kernels [options]\n"
        "  --quick             small shapes (512x1024, 1024x512), short runs, no weight rotation: a smoke test\n"
        "  --shape RxC         a shape to run (rows x cols), repeatable; replaces the defaults\n"
        "                      (4096x4096, 11008x4096, 4096x11008)\n"
        "  --threads LIST      thread counts, e.g. 1,2 (default: 1 and all hardware threads)\n"
        "  --filter SUBSTR     only schemes whose name contains SUBSTR (e.g. nf4, int4)\n"
        "  --json FILE         also write every line, with the machine data, as JSON\n"
        "  --min-time S        seconds of timed calls per line, at least (default 0.2)\n"
        "  --min-reps N        timed calls per line, at least (default 5)\n"
        "  --rotate-x K        cycle through copies of the weights totalling >= K x LLC (default 4; 0: one copy)\n"
        "  --bw-mib N          buffer of the bandwidth measurement (default max(8 x LLC, 256 MiB))\n"
        "  --bw-once           measure the bandwidth at the start and the end only (default: also before each\n"
        "                      shape; %%BW refers to the latest measurement)\n"
        "  --no-scalar         skip the scalar and generic-simd paths\n"
        "  --no-gemm           skip the gemm lines\n"
        "  --all-shapes        scalar, generic-simd and gemm lines on every shape, not only the first\n"
        "  --q8-split          also time gemv_q8 with x already quantized (kernel alone)\n"
        "  --thp               madvise(MADV_HUGEPAGE) the weights, their copies and the bandwidth buffer\n"
        "                      (default: plain allocations, 4 KiB pages where THP is 'madvise')\n");
}

bool parse_shape(const std::string& s, shape& out) {
    const std::size_t x = s.find_first_of("xX");
    if (x == std::string::npos) return false;
    char* end = nullptr;
    const unsigned long long r = std::strtoull(s.c_str(), &end, 10);
    if (end != s.c_str() + x) return false;
    const unsigned long long c = std::strtoull(s.c_str() + x + 1, &end, 10);
    if (*end != '\0' || r == 0 || c == 0) return false;
    out = shape{std::size_t(r), std::size_t(c)};
    return true;
}

options parse(int argc, char** argv) {
    options o;
    auto need = [&](int& i) -> std::string {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "bench_kernels: %s needs a value\n", argv[i]);
            std::exit(2);
        }
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage();
            std::exit(0);
        } else if (a == "--quick") {
            o.quick = true;
        } else if (a == "--shape") {
            shape s{};
            const std::string v = need(i);
            if (!parse_shape(v, s)) {
                std::fprintf(stderr, "bench_kernels: bad shape '%s' (want ROWSxCOLS)\n", v.c_str());
                std::exit(2);
            }
            o.shapes.push_back(s);
        } else if (a == "--json") {
            o.json = need(i);
        } else if (a == "--filter") {
            o.filter = need(i);
        } else if (a == "--threads") {
            std::stringstream ss(need(i));
            std::string t;
            while (std::getline(ss, t, ','))
                if (!t.empty()) o.threads.push_back(unsigned(std::max(1, std::atoi(t.c_str()))));
        } else if (a == "--min-time") {
            o.min_time = std::atof(need(i).c_str());
        } else if (a == "--min-reps") {
            o.min_reps = std::max(1, std::atoi(need(i).c_str()));
        } else if (a == "--rotate-x") {
            o.rotate_x = std::max(0.0, std::atof(need(i).c_str()));
            o.rotate_set = true;
        } else if (a == "--bw-mib") {
            o.bw_mib = std::max(1.0, std::atof(need(i).c_str()));
        } else if (a == "--no-scalar") {
            o.scalar = false;
        } else if (a == "--no-gemm") {
            o.gemm = false;
        } else if (a == "--all-shapes") {
            o.extra_all = true;
        } else if (a == "--q8-split") {
            o.q8_split = true;
        } else if (a == "--thp") {
            o.thp = true;
        } else if (a == "--bw-once") {
            o.bw_once = true;
        } else {
            std::fprintf(stderr, "bench_kernels: unknown option '%s' (try --help)\n", a.c_str());
            std::exit(2);
        }
    }
    if (o.quick) {
        if (o.shapes.empty()) o.shapes = {{512, 1024}, {1024, 512}};
        o.min_time = std::min(o.min_time, 0.02);
        o.min_reps = std::min(o.min_reps, 3);
        if (!o.rotate_set) o.rotate_x = 0.0;
        if (o.bw_mib == 0.0) o.bw_mib = 128.0;
    }
    if (o.shapes.empty()) o.shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    if (o.threads.empty()) {
        const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
        o.threads.push_back(1);
        if (hw > 1) o.threads.push_back(hw);
    }
    return o;
}

// ----------------------------------------------------------------------------------------------
// The machine.

std::string read_line(const std::string& path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

struct cache_info {
    std::size_t bytes = 0;
    int level = 0;
};

// The last-level cache that holds data, from sysfs (cpu0).
cache_info last_level_cache() {
    cache_info best_c;
    for (int i = 0; i < 16; ++i) {
        const std::string d = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        const std::string lv = read_line(d + "level"), type = read_line(d + "type"), size = read_line(d + "size");
        if (lv.empty() || size.empty() || type == "Instruction") continue;
        char* end = nullptr;
        double v = std::strtod(size.c_str(), &end);
        if (*end == 'K') v *= 1024.0;
        if (*end == 'M') v *= 1024.0 * 1024.0;
        if (*end == 'G') v *= 1024.0 * 1024.0 * 1024.0;
        const int level = std::atoi(lv.c_str());
        if (level > best_c.level) best_c = cache_info{std::size_t(v), level};
    }
    return best_c;
}

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.compare(0, 10, "model name") == 0) {
            const std::size_t c = line.find(':');
            return c == std::string::npos ? line : line.substr(c + 2);
        }
    return "unknown";
}

// ----------------------------------------------------------------------------------------------
// Timing.

struct timing {
    double med_s = 0;      // median of the undisturbed calls when there are >= 3, else the minimum
    double all_med_s = 0;  // median of all timed calls
    double min_s = 0;
    int reps = 0;
    int clean = 0;         // calls during which no thread of the process was preempted
    bool clean_med = false;
};

// Involuntary context switches of the whole process (all threads) so far: a call during which
// this grows was preempted by other work on the machine, and its time says little.
long involuntary_switches() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_nivcsw;
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? nan_v : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// fn(i) is call i; i runs on across warm-up and timed calls, so rotating copies are visited in turn.
// Timed calls go on until >= min_time s and >= min_reps calls, and, while other work preempts
// us, until min_reps undisturbed calls or 5 x min_time (at least 1 s).
template <class Fn>
timing measure(const Fn& fn, const options& o, double min_time, int min_reps) {
    int i = 0;
    const clk::time_point w0 = clk::now();
    do fn(i++);  // warm-up: at least two calls, up to 0.05 s
    while (i < 2 || (i < 64 && seconds(clk::now() - w0) < 0.05));
    std::vector<double> all, clean;
    const double cap = std::max(1.0, 5.0 * min_time);
    const clk::time_point s0 = clk::now();
    for (;;) {
        const long sw0 = involuntary_switches();
        const clk::time_point a = clk::now();
        fn(i++);
        const double t = seconds(clk::now() - a);
        const long sw1 = involuntary_switches();
        all.push_back(t);
        if (sw1 == sw0) clean.push_back(t);
        const double elapsed = seconds(clk::now() - s0);
        const int n = int(all.size());
        if (n >= o.max_reps) break;
        if (n >= min_reps && elapsed >= min_time && (int(clean.size()) >= min_reps || elapsed >= cap)) break;
    }
    timing r;
    r.reps = int(all.size());
    r.clean = int(clean.size());
    r.all_med_s = median_of(all);
    r.min_s = *std::min_element(all.begin(), all.end());
    r.clean_med = r.clean >= std::min(3, min_reps);
    // With (almost) every call preempted, the median measures the other work on the machine and
    // the minimum is the best estimate of the kernel.
    r.med_s = r.clean_med ? median_of(clean) : r.min_s;
    return r;
}

template <class Fn>
timing measure(const Fn& fn, const options& o) {
    return measure(fn, o, o.min_time, o.min_reps);
}

volatile float g_sink = 0.0f;

// The bench's large buffers (weights and their copies, the bandwidth buffer): 2 MiB aligned and,
// with --thp, advised to use transparent huge pages before their first touch. Without it they get
// what the library's own allocations get (4 KiB pages where THP is "madvise", as here).
class big_buffer {
   public:
    big_buffer() = default;
    big_buffer(std::size_t bytes, bool thp) : size_(bytes) {
        const std::size_t huge = std::size_t(2) << 20;
        cap_ = std::max(huge, (bytes + huge - 1) / huge * huge);
        void* p = nullptr;
        if (posix_memalign(&p, huge, cap_) != 0) throw std::bad_alloc();
        p_ = static_cast<std::uint8_t*>(p);
        if (thp) madvise(p_, cap_, MADV_HUGEPAGE);
    }
    big_buffer(big_buffer&& o) noexcept : p_(o.p_), size_(o.size_), cap_(o.cap_) { o.p_ = nullptr; }
    big_buffer& operator=(big_buffer&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(size_, o.size_);
        std::swap(cap_, o.cap_);
        return *this;
    }
    big_buffer(const big_buffer&) = delete;
    big_buffer& operator=(const big_buffer&) = delete;
    ~big_buffer() { std::free(p_); }

    std::uint8_t* data() const { return p_; }
    float* floats() const { return reinterpret_cast<float*>(p_); }
    std::size_t size() const { return size_; }

   private:
    std::uint8_t* p_ = nullptr;
    std::size_t size_ = 0, cap_ = 0;
};

// ----------------------------------------------------------------------------------------------
// The baselines, written here with xsimd: read bandwidth, fp32 GEMV, fp32 GEMM.

float sum_range(const float* p, std::size_t n) {
    constexpr std::size_t L = f32v::size;
    f32v a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f), a4(0.0f), a5(0.0f), a6(0.0f), a7(0.0f);
    std::size_t i = 0;
    for (; i + 8 * L <= n; i += 8 * L) {
        a0 += f32v::load_aligned(p + i);
        a1 += f32v::load_aligned(p + i + L);
        a2 += f32v::load_aligned(p + i + 2 * L);
        a3 += f32v::load_aligned(p + i + 3 * L);
        a4 += f32v::load_aligned(p + i + 4 * L);
        a5 += f32v::load_aligned(p + i + 5 * L);
        a6 += f32v::load_aligned(p + i + 6 * L);
        a7 += f32v::load_aligned(p + i + 7 * L);
    }
    float s = xsimd::hadd(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)));
    for (; i < n; ++i) s += p[i];
    return s;
}

struct bandwidth {
    double med_gbs = 0, max_gbs = 0;
    int reps = 0, clean = 0;
};

// Read bandwidth: each call sums the next 32 MiB slice of a buffer much larger than the LLC,
// split over the pool in contiguous parts; calls cycle through the slices, so every call reads
// DRAM, and a call is short enough (a few ms) to run between two preemptions on a busy machine.
bandwidth measure_bandwidth(const float* buf, std::size_t n, edgeq::thread_pool& pool, const options& o) {
    const std::size_t slice = std::min(n, std::size_t(8) << 20), n_slices = std::max<std::size_t>(1, n / slice);
    const std::size_t tasks = pool.size() == 1 ? 1 : pool.size() * 4;
    const std::size_t step = (slice / tasks + 63) / 64 * 64;
    std::vector<float> part(tasks, 0.0f);
    auto one = [&](int i) {
        const float* p = buf + (std::size_t(i) % n_slices) * slice;
        pool.run(tasks, [&](std::size_t k) {
            const std::size_t b = std::min(slice, k * step), e = k + 1 == tasks ? slice : std::min(slice, b + step);
            part[k] = sum_range(p + b, e - b);
        });
        g_sink = g_sink + part[0];
    };
    const timing t = measure(one, o, std::max(0.5, o.min_time), std::max(20, o.min_reps));
    bandwidth r;
    r.med_gbs = double(slice) * sizeof(float) / t.med_s * 1e-9;
    r.max_gbs = double(slice) * sizeof(float) / t.min_s * 1e-9;
    r.reps = t.reps;
    r.clean = t.clean;
    return r;
}

// One row at a time, four independent accumulators: well vectorised and bandwidth-bound.
void fp32_gemv_rows(const float* w, std::size_t cols, const float* x, float* y, std::size_t r0, std::size_t r1) {
    constexpr std::size_t L = f32v::size;
    for (std::size_t r = r0; r < r1; ++r) {
        const float* wr = w + r * cols;
        f32v a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
        std::size_t c = 0;
        for (; c + 4 * L <= cols; c += 4 * L) {
            a0 = xsimd::fma(f32v::load_unaligned(wr + c), f32v::load_aligned(x + c), a0);
            a1 = xsimd::fma(f32v::load_unaligned(wr + c + L), f32v::load_aligned(x + c + L), a1);
            a2 = xsimd::fma(f32v::load_unaligned(wr + c + 2 * L), f32v::load_aligned(x + c + 2 * L), a2);
            a3 = xsimd::fma(f32v::load_unaligned(wr + c + 3 * L), f32v::load_aligned(x + c + 3 * L), a3);
        }
        for (; c + L <= cols; c += L) a0 = xsimd::fma(f32v::load_unaligned(wr + c), f32v::load_aligned(x + c), a0);
        float s = xsimd::hadd((a0 + a1) + (a2 + a3));
        for (; c < cols; ++c) s += wr[c] * x[c];
        y[r] = s;
    }
}

void fp32_gemv(const float* w, std::size_t rows, std::size_t cols, const float* x, float* y, edgeq::thread_pool& pool) {
    pool.parallel_for(rows, edgeq::rows_per_task, [&](std::size_t r0, std::size_t r1) { fp32_gemv_rows(w, cols, x, y, r0, r1); });
}

// The library's gemm (kernel/simd/grouped.hpp gemm_rows) with the dequantization replaced by a
// copy: 4 weight rows into an aligned tile, then 2 tokens x 4 rows of fma per step. Its time
// against the quantized gemm is the cost of dequantizing, with everything else equal.
void fp32_gemm_rows(const float* w, std::size_t cols, edgeq::matrix_view<const float> x, edgeq::matrix_view<float> y,
                    std::size_t r0, std::size_t r1) {
    constexpr std::size_t R = 4, L = f32v::size;
    fvec tile(R * cols);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        std::copy(w + rb * cols, w + (rb + nr) * cols, tile.begin());
        std::fill(tile.begin() + nr * cols, tile.end(), 0.0f);
        std::size_t t = 0;
        for (; t + 2 <= x.rows; t += 2) {
            f32v a[2][R];
            for (auto& row : a)
                for (f32v& v : row) v = f32v(0.0f);
            const float* x0 = x.row(t);
            const float* x1 = x.row(t + 1);
            for (std::size_t c = 0; c + L <= cols; c += L) {
                const f32v u0 = f32v::load_unaligned(x0 + c), u1 = f32v::load_unaligned(x1 + c);
                for (std::size_t i = 0; i < R; ++i) {
                    const f32v wv = f32v::load_aligned(tile.data() + i * cols + c);
                    a[0][i] = xsimd::fma(wv, u0, a[0][i]);
                    a[1][i] = xsimd::fma(wv, u1, a[1][i]);
                }
            }
            for (std::size_t i = 0; i < nr; ++i) {
                y(t, rb + i) = xsimd::hadd(a[0][i]);
                y(t + 1, rb + i) = xsimd::hadd(a[1][i]);
            }
        }
        for (; t < x.rows; ++t)
            for (std::size_t i = 0; i < nr; ++i) {
                f32v a(0.0f);
                for (std::size_t c = 0; c + L <= cols; c += L)
                    a = xsimd::fma(f32v::load_aligned(tile.data() + i * cols + c), f32v::load_unaligned(x.row(t) + c), a);
                y(t, rb + i) = xsimd::hadd(a);
            }
    }
}

void fp32_gemm(const float* w, std::size_t rows, std::size_t cols, edgeq::matrix_view<const float> x,
               edgeq::matrix_view<float> y, edgeq::thread_pool& pool) {
    pool.parallel_for(rows, edgeq::rows_per_task, [&](std::size_t r0, std::size_t r1) { fp32_gemm_rows(w, cols, x, y, r0, r1); });
}

// ----------------------------------------------------------------------------------------------
// Results.

struct result {
    std::string scheme, shape, path;
    double bpw = nan_v;
    unsigned threads = 1;
    double med_us = nan_v, min_us = nan_v;
    int reps = 0;
    double bytes = nan_v;    // weight bytes streamed per call
    double gbs = nan_v;      // bytes / median time
    double pct_bw = nan_v;   // gbs / measured read bandwidth with as many threads
    double speedup = nan_v;  // fp32 baseline time / this time (same shape, threads, batch)
    double gflops = nan_v;   // gemm lines
    double rel_err = nan_v;  // ||y - y_ref|| / ||y_ref||, y_ref from the scalar backend
    int copies = 1;          // rotating copies of the weights
    int clean = 0;           // timed calls that no other work preempted
    bool clean_med = false;  // med_us is the median of those (else the minimum, flagged '*')
    double all_med_us = nan_v;
};

void set_timing(result& r, const timing& tm) {
    r.med_us = tm.med_s * 1e6;
    r.min_us = tm.min_s * 1e6;
    r.all_med_us = tm.all_med_s * 1e6;
    r.reps = tm.reps;
    r.clean = tm.clean;
    r.clean_med = tm.clean_med;
}

double rel_l2(const float* a, const float* ref, std::size_t n) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = double(a[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::string fmt(double v, const char* f) {
    if (std::isnan(v)) return "-";
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

void print_header() {
    std::printf("%-16s %6s %-11s %-27s %3s %10s %10s %7s %6s %7s %8s %6s %8s %5s\n", "scheme", "bpw", "shape", "path", "thr",
                "time us", "min us", "GB/s", "%BW", "x fp32", "GFLOP/s", "calls", "rel.err", "clean");
}

void print_row(const result& r) {
    std::printf("%-16s %6s %-11s %-27s %3u %10s %10s %7s %6s %7s %8s %6d %8s %5d%s\n", r.scheme.c_str(), fmt(r.bpw, "%.3f").c_str(),
                r.shape.c_str(), r.path.c_str(), r.threads, fmt(r.med_us, "%.1f").c_str(), fmt(r.min_us, "%.1f").c_str(),
                fmt(r.gbs, "%.2f").c_str(), fmt(r.pct_bw, "%.1f").c_str(), fmt(r.speedup, "%.2f").c_str(),
                fmt(r.gflops, "%.1f").c_str(), r.reps, fmt(r.rel_err, "%.1e").c_str(), r.clean, r.clean_med ? "" : "*");
    std::fflush(stdout);
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        o += c;
    }
    return o + "\"";
}
std::string json_num(double v) {
    if (std::isnan(v) || std::isinf(v)) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.10g", v);
    return b;
}

// ----------------------------------------------------------------------------------------------
// The run.

struct context {
    options opt;
    cache_info llc;
    std::map<unsigned, std::unique_ptr<edgeq::thread_pool>> pools;
    std::map<unsigned, bandwidth> bw;  // by thread count: the latest measurement, what "% BW" refers to
    struct bw_record {
        std::string when;
        unsigned threads;
        bandwidth b;
    };
    std::vector<bw_record> bw_log;  // every measurement: at the start, before each shape, at the end
    big_buffer bw_buf;
    std::vector<result> results;
    // fp32 baseline time by (shape, path kind, threads), for "x fp32"
    std::map<std::string, double> fp32_time;
    double bw_buffer_bytes = 0;
    std::string loadavg_start, loadavg_end;  // /proc/loadavg: other work on the machine skews timings

    edgeq::thread_pool& pool(unsigned t) { return *pools.at(t); }
    unsigned max_threads() const { return opt.threads.back(); }
    double rotate_bytes() const {
        const double llc_b = llc.bytes ? double(llc.bytes) : 32.0 * 1024 * 1024;
        return opt.rotate_x * llc_b;
    }
    std::size_t copies_for(std::size_t bytes) const {
        const double want = rotate_bytes();
        return std::max<std::size_t>(1, std::size_t(std::ceil(want / double(bytes))));
    }
    void add(result r) {
        auto b = bw.find(r.threads);
        if (b != bw.end() && !std::isnan(r.gbs)) r.pct_bw = 100.0 * r.gbs / b->second.med_gbs;
        print_row(r);
        results.push_back(r);
    }
};

// Per-shape data: the float weights (also the first fp32 copy), x, and the gemm activations.
struct shape_data {
    shape s;
    big_buffer w;  // rows x cols floats
    fvec x;
    fvec xt;  // tokens x cols for gemm (the largest batch)
    std::vector<big_buffer> fp32_copies;
};

const std::size_t gemm_batches[] = {16, 128};

void fill_normal(float* p, std::size_t n, unsigned seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sigma);
    for (std::size_t i = 0; i < n; ++i) p[i] = nd(rng);
}

std::string fp32_key(const shape& s, const std::string& kind, unsigned t) { return s.str() + "|" + kind + "|" + std::to_string(t); }

void bench_fp32(context& c, shape_data& sd, bool extras) {
    const std::size_t rows = sd.s.rows, cols = sd.s.cols, bytes = rows * cols * sizeof(float);
    const std::size_t n = c.copies_for(bytes);
    std::vector<const float*> ws{sd.w.floats()};
    sd.fp32_copies.clear();
    for (std::size_t k = 1; k < n; ++k) {
        sd.fp32_copies.emplace_back(bytes, c.opt.thp);
        std::memcpy(sd.fp32_copies.back().data(), sd.w.data(), bytes);
        ws.push_back(sd.fp32_copies.back().floats());
    }
    std::vector<float> y(rows);
    for (unsigned t : c.opt.threads) {
        edgeq::thread_pool& pool = c.pool(t);
        const timing tm = measure([&](int i) { fp32_gemv(ws[std::size_t(i) % n], rows, cols, sd.x.data(), y.data(), pool); }, c.opt);
        result r;
        r.scheme = "fp32";
        r.bpw = 32.0;
        r.shape = sd.s.str();
        r.path = "fp32 gemv (xsimd)";
        r.threads = t;
        set_timing(r, tm);
        r.bytes = double(bytes);
        r.gbs = r.bytes / tm.med_s * 1e-9;
        r.speedup = 1.0;
        r.copies = int(n);
        c.fp32_time[fp32_key(sd.s, "gemv", t)] = tm.med_s;
        c.add(r);
    }
    // Quantizing the activations for gemv_q8, alone (the gemv_q8 lines include it).
    {
        std::vector<edgeq::q8_block> xq(cols / edgeq::chunk_weights);
        const timing tm = measure([&](int) { edgeq::quantize_activations(sd.x.data(), cols, xq.data()); g_sink = g_sink + xq[0].d; },
                                  c.opt);
        result r;
        r.scheme = "-";
        r.shape = "x[" + std::to_string(cols) + "]";
        r.path = "quantize_activations";
        r.threads = 1;
        set_timing(r, tm);
        c.add(r);
    }
    if (!extras || !c.opt.gemm) return;
    for (std::size_t tokens : gemm_batches) {
        const edgeq::matrix_view<const float> x(sd.xt.data(), tokens, cols);
        std::vector<float> yv(tokens * rows);
        const edgeq::matrix_view<float> yy(yv.data(), tokens, rows);
        for (unsigned t : c.opt.threads) {
            edgeq::thread_pool& pool = c.pool(t);
            const timing tm = measure([&](int) { fp32_gemm(sd.w.floats(), rows, cols, x, yy, pool); }, c.opt);
            result r;
            r.scheme = "fp32";
            r.bpw = 32.0;
            r.shape = sd.s.str();
            r.path = "fp32 gemm" + std::to_string(tokens) + " (lib tile)";
            r.threads = t;
            set_timing(r, tm);
            r.bytes = double(bytes);
            r.gbs = r.bytes / tm.med_s * 1e-9;
            r.gflops = 2.0 * double(tokens) * double(rows) * double(cols) / tm.med_s * 1e-9;
            r.speedup = 1.0;
            c.fp32_time[fp32_key(sd.s, "gemm" + std::to_string(tokens), t)] = tm.med_s;
            c.add(r);
        }
    }
}

template <class S>
struct scheme_bench {
    using F = edgeq::format_of<S>;
    context& c;
    shape_data& sd;
    std::string name;
    double bpw;
    edgeq::qmatrix<F> m;
    std::vector<big_buffer> bufs;  // the copies that kernels stream (m itself is kept for gemm and the references)
    std::vector<edgeq::qview<F>> views;
    std::vector<float> y, y_ref, y_ref_q8;
    std::vector<edgeq::q8_block> xq;

    scheme_bench(context& ctx, shape_data& data) : c(ctx), sd(data), name(scheme_name<S>()) {
        const std::size_t rows = sd.s.rows, cols = sd.s.cols;
        bpw = F::bits_per_weight(long(cols));
        const clk::time_point t0 = clk::now();
        m = edgeq::quantize<S>(edgeq::matrix_view<const float>(sd.w.floats(), rows, cols));
        const double tq = seconds(clk::now() - t0);
        const std::size_t bytes = m.storage_bytes(), n = c.copies_for(bytes);
        for (std::size_t k = 0; k < n; ++k) {
            bufs.emplace_back(bytes, c.opt.thp);
            std::memcpy(bufs.back().data(), m.blob().data(), bytes);
            views.push_back(edgeq::qview<F>::from_blob(bufs.back().data(), rows, cols));
        }
        std::fprintf(stderr, "[%s %s: quantized in %.2f s, %.2f MiB, %zu cop%s]\n", name.c_str(), sd.s.str().c_str(), tq,
                     double(bytes) / (1024.0 * 1024.0), n, n == 1 ? "y" : "ies");
        // References: the scalar backend, the meaning every other backend is tested against.
        y.assign(rows, 0.0f);
        y_ref.assign(rows, 0.0f);
        y_ref_q8.assign(rows, 0.0f);
        xq.resize(cols / edgeq::chunk_weights);
        edgeq::quantize_activations(sd.x.data(), cols, xq.data());
        edgeq::thread_pool& pool = c.pool(c.max_threads());
        edgeq::gemv<scalar>(m.view(), sd.x.data(), y_ref.data(), pool);
        edgeq::gemv_q8<scalar>(m.view(), xq.data(), y_ref_q8.data(), pool);
    }

    result base(const std::string& path, unsigned t, const timing& tm) const {
        result r;
        r.scheme = name;
        r.bpw = bpw;
        r.shape = sd.s.str();
        r.path = path;
        r.threads = t;
        set_timing(r, tm);
        r.bytes = double(m.storage_bytes());
        r.gbs = r.bytes / tm.med_s * 1e-9;
        r.copies = int(views.size());
        const auto f = c.fp32_time.find(fp32_key(sd.s, "gemv", t));
        if (f != c.fp32_time.end()) r.speedup = f->second / tm.med_s;
        return r;
    }

    const edgeq::qview<F>& view(int i) const { return views[std::size_t(i) % views.size()]; }

    template <class B>
    void gemv_path(unsigned t) {
        edgeq::thread_pool& pool = c.pool(t);
        std::fill(y.begin(), y.end(), 0.0f);
        const timing tm = measure([&](int i) { edgeq::gemv<B>(view(i), sd.x.data(), y.data(), pool); }, c.opt);
        result r = base(std::string("gemv/") + path_name<B>(), t, tm);
        r.rel_err = rel_l2(y.data(), y_ref.data(), y.size());
        c.add(r);
    }

    // Includes quantizing x (on the calling thread) in every call, as a decode step would.
    template <class B>
    void gemv_q8_path(unsigned t) {
        edgeq::thread_pool& pool = c.pool(t);
        const std::size_t cols = sd.s.cols;
        std::fill(y.begin(), y.end(), 0.0f);
        const timing tm = measure(
            [&](int i) {
                edgeq::quantize_activations(sd.x.data(), cols, xq.data());
                edgeq::gemv_q8<B>(view(i), xq.data(), y.data(), pool);
            },
            c.opt);
        result r = base(std::string("gemv_q8+qx/") + path_name<B>(), t, tm);
        r.rel_err = rel_l2(y.data(), y_ref_q8.data(), y.size());
        c.add(r);
        if (!c.opt.q8_split) return;
        std::fill(y.begin(), y.end(), 0.0f);
        const timing tk = measure([&](int i) { edgeq::gemv_q8<B>(view(i), xq.data(), y.data(), pool); }, c.opt);
        result rk = base(std::string("gemv_q8/") + path_name<B>(), t, tk);
        rk.rel_err = rel_l2(y.data(), y_ref_q8.data(), y.size());
        c.add(rk);
    }

    void gemm_path(std::size_t tokens, unsigned t) {
        edgeq::thread_pool& pool = c.pool(t);
        const std::size_t rows = sd.s.rows, cols = sd.s.cols;
        const edgeq::matrix_view<const float> x(sd.xt.data(), tokens, cols);
        std::vector<float> yv(tokens * rows, 0.0f);
        const edgeq::matrix_view<float> yy(yv.data(), tokens, rows);
        // gemm reuses each weight tokens times, so it is compute-bound; one copy, no rotation.
        const timing tm = measure([&](int) { edgeq::gemm<best>(m.view(), x, yy, pool); }, c.opt);
        result r = base("gemm" + std::to_string(tokens) + "/" + path_name<best>(), t, tm);
        r.copies = 1;
        r.gflops = 2.0 * double(tokens) * double(rows) * double(cols) / tm.med_s * 1e-9;
        const auto f = c.fp32_time.find(fp32_key(sd.s, "gemm" + std::to_string(tokens), t));
        r.speedup = f != c.fp32_time.end() ? f->second / tm.med_s : nan_v;
        // Check the first and the last token against the scalar gemv.
        double err = 0;
        std::vector<float> ref(rows);
        for (std::size_t tok : {std::size_t(0), tokens - 1}) {
            edgeq::gemv<scalar>(m.view(), x.row(tok), ref.data(), c.pool(c.max_threads()));
            err = std::max(err, rel_l2(yy.row(tok), ref.data(), rows));
        }
        r.rel_err = err;
        c.add(r);
    }

    template <class B>
    static std::string path_name() {
        if (std::is_same<B, generic>::value) return std::string("simd<") + simd_arch::name() + ">";
        return B::name();
    }
};

template <class S>
void bench_scheme(context& c, shape_data& sd, bool extras) {
    if (!c.opt.filter.empty() && scheme_name<S>().find(c.opt.filter) == std::string::npos) return;
    scheme_bench<S> b(c, sd);
    for (unsigned t : c.opt.threads) {
        b.template gemv_path<best>(t);
        b.template gemv_q8_path<best>(t);
        if (extras && c.opt.scalar) {
            if (!std::is_same<best, generic>::value) {
                b.template gemv_path<generic>(t);
                b.template gemv_q8_path<generic>(t);
            }
            b.template gemv_path<scalar>(t);
            b.template gemv_q8_path<scalar>(t);
        }
    }
    if (extras && c.opt.gemm)
        for (std::size_t tokens : gemm_batches)
            for (unsigned t : c.opt.threads) b.gemm_path(tokens, t);
}

void write_json(const context& c, const std::string& cpu) {
    std::ofstream f(c.opt.json);
    if (!f) {
        std::fprintf(stderr, "bench_kernels: cannot write %s\n", c.opt.json.c_str());
        return;
    }
    f << "{\n  \"machine\": {\"cpu\": " << json_str(cpu) << ", \"hardware_threads\": " << std::thread::hardware_concurrency()
      << ", \"llc_bytes\": " << c.llc.bytes << ", \"llc_level\": " << c.llc.level
      << ", \"loadavg_start\": " << json_str(c.loadavg_start) << ", \"loadavg_end\": " << json_str(c.loadavg_end) << "},\n";
    f << "  \"build\": {\"compiler\": " << json_str(__VERSION__) << ", \"cplusplus\": " << __cplusplus
      << ", \"best_backend\": " << json_str(best::name()) << ", \"xsimd_default_arch\": " << json_str(simd_arch::name()) << "},\n";
    f << "  \"settings\": {\"min_time_s\": " << c.opt.min_time << ", \"min_reps\": " << c.opt.min_reps
      << ", \"rotate_bytes\": " << json_num(c.rotate_bytes()) << ", \"bandwidth_buffer_bytes\": " << json_num(c.bw_buffer_bytes)
      << ", \"thp_advised\": " << (c.opt.thp ? "true" : "false")
      << ", \"thp_mode\": " << json_str(read_line("/sys/kernel/mm/transparent_hugepage/enabled"))
      << ", \"time\": \"time_us_est: median over undisturbed calls, else the minimum; gbs, pct_bw and speedup from it\""
      << ", \"gemv_q8\": \"gemv_q8+qx lines include quantize_activations of x on the calling thread in every call\"},\n";
    f << "  \"bandwidth\": [";
    bool first = true;
    for (const auto& b : c.bw_log) {
        f << (first ? "" : ",") << "\n    {\"when\": " << json_str(b.when) << ", \"threads\": " << b.threads
          << ", \"read_gbs\": " << json_num(b.b.med_gbs) << ", \"read_gbs_max\": " << json_num(b.b.max_gbs)
          << ", \"calls\": " << b.b.reps << ", \"clean_calls\": " << b.b.clean << "}";
        first = false;
    }
    f << "\n  ],\n  \"results\": [";
    first = true;
    for (const result& r : c.results) {
        f << (first ? "" : ",") << "\n    {\"scheme\": " << json_str(r.scheme) << ", \"bpw\": " << json_num(r.bpw)
          << ", \"shape\": " << json_str(r.shape) << ", \"path\": " << json_str(r.path) << ", \"threads\": " << r.threads
          << ", \"time_us_est\": " << json_num(r.med_us) << ", \"time_us_min\": " << json_num(r.min_us)
          << ", \"reps\": " << r.reps << ", \"weight_bytes\": " << json_num(r.bytes) << ", \"gbs\": " << json_num(r.gbs)
          << ", \"pct_bw\": " << json_num(r.pct_bw) << ", \"speedup_vs_fp32\": " << json_num(r.speedup)
          << ", \"gflops\": " << json_num(r.gflops) << ", \"rel_err_vs_scalar\": " << json_num(r.rel_err)
          << ", \"weight_copies\": " << r.copies << ", \"undisturbed_calls\": " << r.clean
          << ", \"time_us\": " << json_str(r.clean_med ? "median of undisturbed calls" : "minimum (no undisturbed calls)")
          << ", \"time_us_median_all_calls\": " << json_num(r.all_med_us) << "}";
        first = false;
    }
    f << "\n  ]\n}\n";
    std::fprintf(stderr, "[wrote %s]\n", c.opt.json.c_str());
}

// Measures the read bandwidth with every thread count; "% BW" of the lines that follow refers to it.
void measure_bandwidths(context& c, const std::string& when) {
    const std::size_t n = c.bw_buf.size() / sizeof(float);
    for (unsigned t : c.opt.threads) {
        const bandwidth b = measure_bandwidth(c.bw_buf.floats(), n, c.pool(t), c.opt);
        c.bw[t] = b;
        c.bw_log.push_back(context::bw_record{when, t, b});
        std::printf("read bandwidth %s, %u thread%s: %.2f GB/s%s, %.2f GB/s best (%d calls of 32 MiB over %.0f MiB, %d undisturbed)\n",
                    when.c_str(), t, t == 1 ? "" : "s", b.med_gbs, b.clean >= 3 ? "" : " (*: best, no undisturbed calls)", b.max_gbs,
                    b.reps, double(c.bw_buf.size()) / (1024.0 * 1024.0), b.clean);
    }
    std::fflush(stdout);
}

}  // namespace

// ---- --calib: calibrated quantization at TinyLlama-1.1B's shapes ---------------------------------
namespace calib {

namespace eq = edgeq;

struct calib_options {
    std::vector<unsigned> threads;
    std::vector<std::string> parts{"gemm", "hessian", "gptq", "block"};
    std::size_t windows = 32, seqlen = 512;
    int reps = 3;
};

bool wants(const calib_options& o, const char* part) { return std::find(o.parts.begin(), o.parts.end(), part) != o.parts.end(); }

// Minimum over reps calls after one warm-up call (the machine is shared: the minimum is the
// least disturbed).
// On a machine shared with other work the wall time says little; --calib-clock cpu measures the
// process's CPU time divided by the thread count instead (what the call would take alone if its
// threads were never idle; idle workers spin on yield, so waiting is partly counted).
bool cpu_clock = false;
unsigned clock_threads = 1;
double now_seconds() {
    if (!cpu_clock) return seconds(clk::now().time_since_epoch());
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec)) / double(clock_threads);
}

template <class F>
double best_seconds(int reps, F&& f) {
    f();
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        const double t0 = now_seconds();
        f();
        best = std::min(best, now_seconds() - t0);
    }
    return best;
}

std::vector<float> normal(std::size_t n, unsigned seed, float sd) {
    std::vector<float> v(n);
    fill_normal(v.data(), n, seed, sd);
    return v;
}

double rel_l2(const float* a, const float* b, std::size_t n) {
    double e = 0, r = 0;
    for (std::size_t i = 0; i < n; ++i) e += double(a[i] - b[i]) * double(a[i] - b[i]), r += double(b[i]) * b[i];
    return std::sqrt(e / std::max(r, 1e-300));
}

// Dense GEMM of 512 tokens: the band kernel (gemv's order, 4 rows x 3 tokens) against the packed one.
template <class E>
void dense_gemm(const char* type, std::size_t rows, std::size_t cols, std::size_t tokens, unsigned t, eq::thread_pool& pool,
                int reps) {
    const std::vector<float> wf = normal(rows * cols, 11, 0.02f), xf = normal(tokens * cols, 12, 1.0f);
    const eq::dense_matrix<E> m = eq::dense_matrix<E>::from_float({wf.data(), rows, cols});
    eq::dense_linear<E> lin(eq::dense_matrix<E>::from_float({wf.data(), rows, cols}));
    std::vector<float> y_old(tokens * rows), y_new(tokens * rows);
    const eq::matrix_view<const float> x(xf.data(), tokens, cols);
    const double t_old = best_seconds(reps, [&] {
        pool.parallel_for(rows, eq::rows_per_task, [&](std::size_t r0, std::size_t r1) {
            eq::kernel::gemm_rows_band(best{}, m.view(), x, eq::matrix_view<float>(y_old.data(), tokens, rows), r0, r1);
        });
    });
    const double t_new = best_seconds(reps, [&] { lin.gemm(x, eq::matrix_view<float>(y_new.data(), tokens, rows), pool); });
    const double flop = 2.0 * double(rows) * double(cols) * double(tokens);
    std::printf("gemm  %-4s %5zux%-5zu x %zu tokens, %u thr: band %6.1f GFLOP/s (%7.1f ms), packed %6.1f GFLOP/s (%7.1f ms), "
                "x%.2f, rel.diff %.1e\n",
                type, rows, cols, tokens, t, flop / t_old * 1e-9, t_old * 1e3, flop / t_new * 1e-9, t_new * 1e3, t_old / t_new,
                rel_l2(y_new.data(), y_old.data(), y_new.size()));
    std::fflush(stdout);
}

// X^T X of one 512-token window (lower triangle): the previous float64 route against the packed one.
void hessian(std::size_t d, std::size_t tokens, unsigned t, eq::thread_pool& pool, int reps) {
    const std::vector<float> xf = normal(tokens * d, 21, 1.0f);
    std::vector<double> c_old(d * d, 0.0), c_new(d * d, 0.0), xd;
    const double t_old = best_seconds(reps, [&] {
        for (std::size_t t0 = 0; t0 < tokens; t0 += 256) {  // as input_stats::add did: widen 256 rows, rank update
            const std::size_t nt = std::min<std::size_t>(256, tokens - t0);
            xd.assign(xf.begin() + long(t0 * d), xf.begin() + long((t0 + nt) * d));
            eq::linalg::rank_update<double>(d, d, nt, eq::linalg::strided<double>{xd.data(), 1, d}, xd.data(), d, c_old.data(), d,
                                            1.0, true, pool);
        }
    });
    const double t_new =
        best_seconds(reps, [&] { eq::linalg::gram_lower_add(eq::matrix_view<const float>(xf.data(), tokens, d), c_new.data(), d, pool); });
    double e = 0, r = 0;
    for (std::size_t i = 0; i < d; ++i)
        for (std::size_t j = 0; j <= i; ++j) e += (c_new[i * d + j] - c_old[i * d + j]) * (c_new[i * d + j] - c_old[i * d + j]), r += c_old[i * d + j] * c_old[i * d + j];
    const double flop = double(d) * double(d + 1) * double(tokens);  // d(d+1)/2 dot products of `tokens` terms
    std::printf("hessian d=%zu, %zu tokens, %u thr: float64 %6.1f GFLOP/s (%7.1f ms), packed float %6.1f GFLOP/s (%7.1f ms), "
                "x%.2f, rel.diff %.1e\n",
                d, tokens, t, flop / t_old * 1e-9, t_old * 1e3, flop / t_new * 1e-9, t_new * 1e3, t_old / t_new, std::sqrt(e / r));
    std::fflush(stdout);
}

// GPTQ int4-g128 of one matrix with a Hessian of 2048 tokens, and its lazy-batch update alone
// (rows x (cols - 128) x 128) on the previous rank_update and on the packed kernel.
void gptq(const char* name, std::size_t rows, std::size_t cols, unsigned t, eq::thread_pool& pool) {
    using S = eq::scheme<eq::bits<4>, eq::group<128>>;
    const std::vector<float> wf = normal(rows * cols, 31, 0.02f), xf = normal(2048 * cols, 32, 1.0f);
    eq::input_stats st(cols);
    st.add(eq::matrix_view<const float>(xf.data(), 2048, cols), pool);
    const std::vector<double> h = st.hessian();
    eq::gptq_report rep;
    const double t0 = now_seconds();
    eq::gptq_quantize<eq::format_of<S>>(eq::matrix_view<const float>(wf.data(), rows, cols), h, eq::gptq_options{}, pool, &rep);
    const double total = now_seconds() - t0;
    const std::size_t k = 128, n = cols - k;
    const std::vector<float> err = normal(rows * k, 33, 0.01f), sf = normal(k * cols, 34, 0.1f);
    std::vector<float> v(rows * cols, 0.0f);
    const double t_old = best_seconds(1, [&] {
        eq::linalg::rank_update<float>(rows, n, k, eq::linalg::strided<float>{err.data(), k, 1}, sf.data() + k, cols, v.data() + k,
                                       cols, 1.0f, false, pool);
    });
    const double t_new = best_seconds(1, [&] { eq::linalg::gemm_add_f32(rows, n, k, err.data(), k, sf.data() + k, cols, v.data() + k, cols, pool); });
    const double flop = 2.0 * double(rows) * double(n) * double(k);
    std::printf("gptq  %-5s %5zux%-5zu, %u thr: %.2f s (factor %.2f s, sweep %.2f s); lazy update %zux%zux%zu: rank_update %5.1f "
                "GFLOP/s, packed %5.1f GFLOP/s\n",
                name, rows, cols, t, total, rep.factor_seconds, rep.sweep_seconds, rows, n, k, flop / t_old * 1e-9,
                flop / t_new * 1e-9);
    std::fflush(stdout);
}

// One TinyLlama-1.1B block (f16 weights) through quantize_calibrated with GPTQ int4-g128.
void block(const calib_options& o, unsigned t, eq::thread_pool& pool) {
    namespace en = eq::engine;
    en::llama_config c;
    c.dim = 2048, c.hidden_dim = 5632, c.n_layers = 1, c.n_heads = 32, c.n_kv_heads = 4, c.vocab_size = 32000;
    c.seq_len = 2048;
    unsigned seed = 40;
    en::tensor_source src;
    src.matrix = [&](const std::string&, std::size_t r, std::size_t cc) {
        const std::vector<float> w = normal(r * cc, ++seed, 0.02f);
        return eq::make_dense_linear<eq::dense_f16>({w.data(), r, cc});
    };
    src.vector = [](const std::string&, std::size_t n) { return std::vector<float>(n, 1.0f); };
    en::llama_model m = en::model_from_tensors(c, src);
    std::mt19937 g(5);
    std::uniform_int_distribution<int> tok(0, c.vocab_size - 1);
    std::vector<std::vector<int>> windows(o.windows, std::vector<int>(o.seqlen));
    for (auto& w : windows)
        for (int& x : w) x = tok(g);
    en::calib_plan plan = en::plan_of<eq::scheme<eq::gptq<>, eq::bits<4>, eq::group<128>>>();
    double gptq_s = 0;
    auto quantize = [&](const en::calib_matrix& j) {
        const double t0 = now_seconds();
        auto q = plan.quantize(j);
        const double s = now_seconds() - t0;
        gptq_s += s;
        std::printf("  %-18s %5zux%-5zu gptq %.2f s\n", j.name.c_str(), j.weights.rows, j.weights.cols, s);
        return q;
    };
    // Two layers' worth of forward passes: quantize_calibrated skips the second pass on the last
    // block, so a one-layer model is run as block 0 of 1 and the second pass timed by hand.
    const double t0 = now_seconds(), w0 = seconds(clk::now().time_since_epoch());
    const en::calib_report r = en::quantize_calibrated(m, windows, quantize, plan.options, pool);
    const double total = now_seconds() - t0, total_wall = seconds(clk::now().time_since_epoch()) - w0;
    en::llama_session s(m, pool, int(o.seqlen));
    std::vector<float> h(o.seqlen * std::size_t(c.dim));
    auto second_pass = [&](bool decoded) {
        en::llama_layer& L = m.layers[0];
        std::unique_ptr<eq::linear>* slots[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w3, &L.w2};
        const double t1 = now_seconds();
        en::detail::decoded_block swap(slots, decoded);
        for (const auto& w : windows) {
            s.reset();
            s.embed(w.data(), w.size(), h.data());
            s.forward_layers(h.data(), w.size(), 0, 1);
        }
        return now_seconds() - t1;
    };
    const double second_q8 = second_pass(false), second_f32 = second_pass(true);
    // The report's split is wall time: scaled to this clock by the driver's total.
    const double f = total / std::max(total_wall, 1e-9);
    const double first = f * (r.forward_seconds - r.statistics_seconds), stats = f * r.statistics_seconds,
                 quant = f * r.quantize_seconds;
    const double block_s = total + second_f32;
    std::printf("block (%zu x %zu tokens, %u thr): %.1f s = float forward %.1f s + statistics (Hessians) %.1f s + GPTQ %.1f s "
                "+ quantized forward %.1f s (decoded to f32; with int8 activations: %.1f s); x22 layers = %.0f s (%.1f min)\n",
                o.windows, o.seqlen, t, block_s, first, stats, quant, second_f32, second_q8,
                22 * block_s, 22 * block_s / 60);
    std::fflush(stdout);
}

int run(int argc, char** argv) {
    calib_options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto need = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_kernels: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--calib") continue;
        if (a == "--threads") {
            std::stringstream ss(need());
            std::string t;
            while (std::getline(ss, t, ','))
                if (!t.empty()) o.threads.push_back(unsigned(std::max(1, std::atoi(t.c_str()))));
        } else if (a == "--calib-part") {
            o.parts.clear();
            std::stringstream ss(need());
            std::string t;
            while (std::getline(ss, t, ',')) o.parts.push_back(t);
        } else if (a == "--calib-windows") {
            o.windows = std::size_t(std::max(1, std::atoi(need().c_str())));
        } else if (a == "--calib-clock") {
            const std::string v = need();
            if (v != "cpu" && v != "wall") {
                std::fprintf(stderr, "bench_kernels: --calib-clock is cpu or wall\n");
                return 2;
            }
            cpu_clock = v == "cpu";
        } else if (a == "--calib-reps") {
            o.reps = std::max(1, std::atoi(need().c_str()));
        } else {
            std::fprintf(stderr, "bench_kernels --calib: unknown option '%s'\n", a.c_str());
            return 2;
        }
    }
    if (o.threads.empty()) o.threads = {1, std::max(1u, std::thread::hardware_concurrency())};
    std::printf("edgeq bench_kernels --calib: %s, backend %s; load average %s\n", cpu_model().c_str(), best::name(),
                read_line("/proc/loadavg").c_str());
    std::printf("clock: %s\n", cpu_clock ? "process CPU time / threads (--calib-clock cpu)" : "wall");
    for (unsigned t : o.threads) {
        eq::thread_pool pool(t);
        clock_threads = t;
        if (wants(o, "gemm")) {
            const std::size_t shapes[][2] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}};
            for (const auto& sh : shapes) dense_gemm<eq::dense_f16>("f16", sh[0], sh[1], o.seqlen, t, pool, o.reps);
            for (const auto& sh : shapes) dense_gemm<eq::dense_f32>("f32", sh[0], sh[1], o.seqlen, t, pool, o.reps);
        }
        if (wants(o, "hessian"))
            for (std::size_t d : {std::size_t(2048), std::size_t(5632)}) hessian(d, o.seqlen, t, pool, o.reps);
        if (wants(o, "gptq")) {
            gptq("q/o", 2048, 2048, t, pool);
            gptq("k/v", 256, 2048, t, pool);
            gptq("gate", 5632, 2048, t, pool);
            gptq("down", 2048, 5632, t, pool);
        }
        if (wants(o, "block")) block(o, t, pool);
    }
    std::printf("load average at end: %s\n", read_line("/proc/loadavg").c_str());
    return 0;
}

}  // namespace calib

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--calib") return calib::run(argc, argv);
    context c;
    c.opt = parse(argc, argv);
    c.llc = last_level_cache();
    for (unsigned t : c.opt.threads)
        if (!c.pools.count(t)) c.pools[t] = std::unique_ptr<edgeq::thread_pool>(new edgeq::thread_pool(t));
    std::sort(c.opt.threads.begin(), c.opt.threads.end());
    c.opt.threads.erase(std::unique(c.opt.threads.begin(), c.opt.threads.end()), c.opt.threads.end());

    const std::string cpu = cpu_model();
    c.loadavg_start = read_line("/proc/loadavg");
    std::printf("edgeq bench_kernels\n");
    std::printf("cpu: %s, %u hardware threads; LLC: L%d %.1f MiB (sysfs%s)\n", cpu.c_str(), std::thread::hardware_concurrency(),
                c.llc.level, double(c.llc.bytes) / (1024.0 * 1024.0), c.llc.bytes ? "" : ": not found, assuming 32 MiB");
    std::printf("build: %s, C++ %ld; backend::best = %s; xsimd default arch = %s%s\n", __VERSION__, long(__cplusplus),
                best::name(), simd_arch::name(),
                std::is_same<generic, best>::value        ? " (best is simd<default arch>)"
                : std::is_base_of<generic, best>::value ? " (best derives from simd<default arch>: same fp32 gemv/gemm overloads)"
                                                        : "");
    std::printf("timing: warm-up, then >= %.2f s and >= %d calls per line (longer while other work preempts us);\n"
                "        time = median over the 'clean' calls (no thread of this process preempted: getrusage\n"
                "        ru_nivcsw unchanged across the call) when there are >= 3, else the minimum, flagged '*';\n"
                "        min = minimum over all calls; the JSON also has the median over all calls;\n"
                "        GB/s = qmatrix::storage_bytes() / time; %%BW vs the latest read bandwidth measurement (at the\n"
                "        start and before each shape) with as many threads;\n"
                "        x fp32 = fp32 GEMV time / this time (gemm: fp32 gemm of the same batch);\n"
                "        gemv_q8+qx includes quantize_activations(x) on the calling thread in each call;\n"
                "        rel.err = ||y - y_scalar|| / ||y_scalar|| (q8 paths against the scalar q8 path).\n",
                c.opt.min_time, c.opt.min_reps);
    if (c.opt.rotate_x > 0)
        std::printf("        gemv weights rotate through copies totalling >= %.0f MiB (%.1f x LLC): every call reads DRAM.\n",
                    c.rotate_bytes() / (1024.0 * 1024.0), c.opt.rotate_x);
    else
        std::printf("        no weight rotation: matrices smaller than the LLC may be read from it (%%BW can pass 100).\n");
    std::printf("memory: THP %s; bench buffers %s\n", read_line("/sys/kernel/mm/transparent_hugepage/enabled").c_str(),
                c.opt.thp ? "madvise(MADV_HUGEPAGE)d (--thp)" : "not advised (4 KiB pages unless THP is 'always')");
    std::printf("load average at start: %s\n", c.loadavg_start.c_str());

    // Read bandwidth: a buffer much larger than the LLC, measured now, before each shape (unless
    // --bw-once) and at the end: on a shared host it drifts by 10-30 % within minutes.
    {
        const double mib = c.opt.bw_mib > 0 ? c.opt.bw_mib : std::max(256.0, 8.0 * double(c.llc.bytes) / (1024.0 * 1024.0));
        const std::size_t n = std::size_t(mib * 1024 * 1024 / sizeof(float));
        c.bw_buf = big_buffer(n * sizeof(float), c.opt.thp);
        float* f = c.bw_buf.floats();
        fill_normal(f, std::min<std::size_t>(n, 1 << 20), 7, 1.0f);
        for (std::size_t i = std::size_t(1) << 20; i < n; ++i) f[i] = f[i & ((std::size_t(1) << 20) - 1)];
        c.bw_buffer_bytes = double(n) * sizeof(float);
        measure_bandwidths(c, "at start");
    }
    std::printf("\n");
    print_header();

    bool first_shape = true;
    for (const shape& s : c.opt.shapes) {
        if (s.cols % 128 != 0) {
            std::fprintf(stderr, "bench_kernels: skipping %s: cols must be a multiple of 128 (the largest group)\n", s.str().c_str());
            continue;
        }
        const bool extras = first_shape || c.opt.extra_all;
        if (!first_shape && !c.opt.bw_once) {
            std::printf("\n");
            measure_bandwidths(c, "before " + s.str());
            std::printf("\n");
        }
        first_shape = false;
        shape_data sd;
        sd.s = s;
        sd.w = big_buffer(s.rows * s.cols * sizeof(float), c.opt.thp);
        fill_normal(sd.w.floats(), s.rows * s.cols, 1, 0.02f);
        sd.x.resize(s.cols);
        fill_normal(sd.x.data(), sd.x.size(), 2, 1.0f);
        if (extras && c.opt.gemm) {
            sd.xt.resize(gemm_batches[1] * s.cols);
            fill_normal(sd.xt.data(), sd.xt.size(), 3, 1.0f);
        }
        bench_fp32(c, sd, extras);
        sd.fp32_copies.clear();
        for_each_type(schemes{}, [&](auto sch) { bench_scheme<decltype(sch)>(c, sd, extras); });
    }

    // The bandwidth again: how much the machine drifted while the bench ran.
    std::printf("\n");
    measure_bandwidths(c, "at end");
    c.loadavg_end = read_line("/proc/loadavg");
    std::printf("load average at end: %s\n", c.loadavg_end.c_str());
    if (!c.opt.json.empty()) write_json(c, cpu);
    return 0;
}
