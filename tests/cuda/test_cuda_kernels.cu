// The CUDA GEMV and GEMM against the CPU reference decoders, for every kind of grouped format
// (int3 also in half mantissas) and llama.cpp's Q4_0, Q8_0, Q4_K (as stored and paired), Q6_K,
// with fp32 and fp16 activations and outputs. Output buffers are poisoned with NaN first; every
// CUDA call is checked. Without a GPU the binary exits 77 and CTest reports the test as skipped.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <edgeq/kernel/cuda/ggml.cuh>
#include <edgeq/kernel/cuda/grouped.cuh>
#include <edgeq/kernel/cuda/spqr.cuh>

#include "harness.hpp"
#include "reference.hpp"

using namespace edgeq_test;

namespace {

// The kernels multiply in half2 (values exact, activations rounded to half and pre-scaled,
// runs of products summed in half, then fp32; gemv_core.cuh): about 1e-3 of the largest output
// against the fp32/double reference. Half outputs add their own rounding (2^-11 relative).
constexpr double kRelTol = 4e-3;
// edgeq::cuda::fp32_sums: fp32 products and sums of exact decoded values, so only fp32 rounding
// (rows up to 64K long) for integer codes and NF4's code book (hi + lo halves, 22 bits);
// SpQR's fractional zero points are rounded to half first (2^-11 relative per weight).
constexpr double kRelTolFp32 = 2e-5;
constexpr double kRelTolFp32Rounded = 1e-3;
// edgeq::cuda::exact_half_sums (gemv_exact.cuh): half2 FMAs whose products and sums of the
// activations' integer parts are exact; only the run of the remainders rounds (its terms are
// about M_max times smaller than the half2 kernels'). Measured at most 2.9e-5 (H100, 2026-11-24).
constexpr double kRelTolExact = 1e-4;

// Launches in the Jetson Nano's block widths while in scope (blocks of at most 8 warps, what the
// sm_53 code is compiled for: gemv_core.cuh, staged_threads), on whatever GPU runs the tests.
struct nano_blocks {
    int saved = edgeq::kernel::cuda::block_warps_cap();
    nano_blocks() { edgeq::kernel::cuda::block_warps_cap() = 8; }
    ~nano_blocks() { edgeq::kernel::cuda::block_warps_cap() = saved; }
    nano_blocks(const nano_blocks&) = delete;
    nano_blocks& operator=(const nano_blocks&) = delete;
};

// Activations: Gaussian with a few outliers far beyond what a plain half accumulator holds
// (|x| ~ 1000), as LLM activations have.
std::vector<float> activations(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(n);
    for (float& v : x) v = normal(rng);
    for (std::size_t c = 7; c < n; c += 97) x[c] *= 300.0f;
    return x;
}

template <class T>
struct host_type;
template <>
struct host_type<float> {
    static float from(float v) { return v; }
    static float to_float(float v) { return v; }
};
template <>
struct host_type<__half> {
    static __half from(float v) { return __float2half_rn(v); }
    static float to_float(__half v) { return __half2float(v); }
};

// The view type the kernels take: qview, or spqr_view for SpQR.
template <class F, bool = is_spqr_format<F>::value>
struct view_of {
    using type = qview<F>;
};
template <class F>
struct view_of<F, true> {
    using type = spqr_view<F>;
};
template <class F>
using view_t = typename view_of<F>::type;

template <class F>
view_t<F> device_view(const host_matrix& m, const std::uint8_t* dev) {
    return edgeq::cuda::rebase(view_t<F>::from_blob(m.blob.data(), m.rows, m.cols), m.blob.data(), dev);
}

// SpQR: the CPU SpQR GEMV (float) must equal the dequantized weights' GEMV (double) to float
// rounding, so that the device result checked against the latter is checked against the former.
template <class F>
void check_cpu_spqr(const host_matrix& m, const std::vector<float>& x, const std::vector<double>& ref, std::size_t n,
                    std::true_type) {
    std::vector<float> y(m.rows);
    for (std::size_t t = 0; t < n; ++t) {
        cpu_spqr_gemv<F>(m, x.data() + t * m.cols, y.data());
        double max_err = 0.0, max_ref = 0.0;
        for (std::size_t r = 0; r < m.rows; ++r) {
            max_err = std::max(max_err, std::fabs(double(y[r]) - ref[t * m.rows + r]));
            max_ref = std::max(max_ref, std::fabs(ref[t * m.rows + r]));
        }
        REQUIRE_MSG(max_err <= 1e-5 * max_ref, "CPU SpQR GEMV vs the dequantized weights: " << max_err << " of " << max_ref);
    }
}
template <class F>
void check_cpu_spqr(const host_matrix&, const std::vector<float>&, const std::vector<double>&, std::size_t, std::false_type) {}

// Runs `launch(view, x, y)` on n tokens of activations and compares with the reference.
template <class F, class XT, class YT, class Launch>
void check_case(const char* what, std::size_t rows, std::size_t cols, std::size_t n, Launch launch, double tol = kRelTol,
                float x_scale = 1.0f) {
    host_matrix m;
    make_matrix<F>(rows, cols, unsigned(rows * 31 + cols), m);
    std::vector<float> xf = activations(n * cols, unsigned(cols + n));
    for (float& v : xf) v *= x_scale;
    std::vector<XT> xh(xf.size());
    std::vector<float> xr(xf.size());  // what the device sees
    for (std::size_t i = 0; i < xf.size(); ++i) {
        xh[i] = host_type<XT>::from(xf[i]);
        xr[i] = host_type<XT>::to_float(xh[i]);
    }
    std::vector<double> ref(n * rows);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t r = 0; r < rows; ++r) {
            double s = 0.0;
            for (std::size_t c = 0; c < cols; ++c) s += double(m.dense[r * cols + c]) * double(xr[t * cols + c]);
            ref[t * rows + r] = s;
        }
    check_cpu_spqr<F>(m, xr, ref, n, is_spqr_format<F>{});

    device_buffer<std::uint8_t> blob(m.blob.size());
    device_buffer<XT> x(xh.size());
    device_buffer<YT> y(n * rows);
    CUDA_CHECK(cudaMemcpy(blob.p, m.blob.data(), m.blob.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(x.p, xh.data(), xh.size() * sizeof(XT), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(y.p, 0xff, n * rows * sizeof(YT)));  // NaN in fp32 and fp16
    launch(device_view<F>(m, blob.p), x.p, y.p);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());

    std::vector<YT> out(n * rows);
    CUDA_CHECK(cudaMemcpy(out.data(), y.p, out.size() * sizeof(YT), cudaMemcpyDeviceToHost));
    double max_err = 0.0, max_ref = 0.0;
    std::size_t worst = 0, non_finite = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const double v = host_type<YT>::to_float(out[i]);
        if (!std::isfinite(v)) ++non_finite;
        const double e = std::fabs(v - ref[i]);
        if (e > max_err) max_err = e, worst = i;
        max_ref = std::max(max_ref, std::fabs(ref[i]));
    }
    const std::string where = std::string(what) + " " + std::to_string(rows) + "x" + std::to_string(cols) + " n=" +
                              std::to_string(n) + ": worst " + std::to_string(worst) + ": " +
                              std::to_string(host_type<YT>::to_float(out[worst])) + " vs " + std::to_string(ref[worst]) +
                              ", rel err " + std::to_string(max_err / max_ref);
    if (std::getenv("EDGEQ_TEST_PRINT")) std::printf("%s\n", where.c_str());
    REQUIRE_MSG(non_finite == 0, where << ", " << non_finite << " outputs not written or not finite");
    REQUIRE_MSG(max_ref > 0.0, where);
    CHECK_MSG(max_err / max_ref <= tol, where);
}

// Row counts that leave partial blocks; columns that give threads one unit (1024), some two
// (1536: 48 units, 256-divisible for the k-quants) and fewer units than threads (256); for the
// tensor-core kernel (gemv_mma.cuh) rows whose units leave a partial step of its 16 warps
// (4352: 136 units) and x beyond 48 KB of shared memory as hi and lo halves (14336).
const std::size_t gemv_shapes[][2] = {{75, 1024}, {129, 1536}, {3, 256}, {21, 4352}, {17, 14336}};

// The error budget of the fp32 kernel for format F.
template <class F>
double fp32_tolerance() {
    return is_spqr_format<F>::value ? kRelTolFp32Rounded : kRelTolFp32;
}
// exact_half_sums: formats without integer values (NF4, SpQR) and Q6_K take the fp32 sums.
template <class F>
double exact_tolerance() {
    using A = decltype(edgeq::kernel::cuda::make_adaptor(std::declval<view_t<F>>()));
    return edgeq::kernel::cuda::takes_exact_sums<A>::value ? kRelTolExact : fp32_tolerance<F>();
}

template <class F>
void check_gemv_format() {
    for (const auto& s : gemv_shapes) {
        check_case<F, float, float>(
            "gemv fp32 sums", s[0], s[1], 1,
            [](const view_t<F>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); },
            fp32_tolerance<F>());
        check_case<F, __half, __half>("gemv fp32 sums f16", s[0], s[1], 1, [](const view_t<F>& w, const __half* x, __half* y) {
            edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y);
        });
        // On sm_80 and newer "gemv fp32 sums" ran on tensor cores (gemv_mma.cuh); this is the fp32-FMA kernel.
        check_case<F, float, float>(
            "gemv fp32 sums (fp32 FMAs)", s[0], s[1], 1,
            [](const view_t<F>& w, const float* x, float* y) {
                edgeq::kernel::cuda::launch_gemv1_fp32(edgeq::kernel::cuda::make_adaptor(w), x, y, 0);
            },
            fp32_tolerance<F>());
        check_case<F, float, float>("gemv f32", s[0], s[1], 1, [](const view_t<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(w, x, y);
        });
        check_case<F, float, float>(
            "gemv exact half sums", s[0], s[1], 1,
            [](const view_t<F>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y); },
            exact_tolerance<F>());
        check_case<F, __half, float>(
            "gemv exact half sums f16 x", s[0], s[1], 1,
            [](const view_t<F>& w, const __half* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y); },
            exact_tolerance<F>());
        check_case<F, __half, __half>("gemv f16", s[0], s[1], 1, [](const view_t<F>& w, const __half* x, __half* y) {
            edgeq::cuda::gemv(w, x, y);
        });
        check_case<F, __half, float>("gemv sm53", s[0], s[1], 1, [](const view_t<F>& w, const __half* x, float* y) {
            edgeq::cuda::gemv(edgeq::backend::cuda_sm53{}, w, x, y);
        });
        check_case<F, float, float>("gemv sm90", s[0], s[1], 1, [](const view_t<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(edgeq::backend::cuda_sm90{}, w, x, y);
        });
    }
}

template <class F>
void check_gemm_format() {
    // 3 and 16 tokens: the batched GEMV; 23, 77 and 130: the tiled kernel with partial tiles of
    // rows and tokens (Q6_K through its units of consecutive columns, q6_K_columns).
    const std::size_t tokens[] = {3, 16, 23, 77, 130};
    for (const std::size_t n : tokens) {
        check_case<F, float, float>("gemm f32", 75, 512, n, [n](const qview<F>& w, const float* x, float* y) {
            edgeq::cuda::gemm(w, x, y, n);
        });
        check_case<F, __half, __half>("gemm f16", 130, 768, n, [n](const qview<F>& w, const __half* x, __half* y) {
            edgeq::cuda::gemm(w, x, y, n);
        });
        // fp32 sums: the tiled kernel at every n (16 tokens per block up to 16).
        check_case<F, float, float>(
            "gemm fp32 sums", 75, 512, n,
            [n](const qview<F>& w, const float* x, float* y) { edgeq::cuda::gemm(edgeq::cuda::fp32_sums, w, x, y, n); },
            fp32_tolerance<F>());
        check_case<F, __half, __half>("gemm fp32 sums f16", 130, 768, n, [n](const qview<F>& w, const __half* x, __half* y) {
            edgeq::cuda::gemm(edgeq::cuda::fp32_sums, w, x, y, n);
        });
    }
}

}  // namespace

TEST("gemv int2-g128") { check_gemv_format<int2_g128>(); }
TEST("gemv int3-g128") { check_gemv_format<int3_g128>(); }
TEST("gemv int3-g128 in half mantissas (int3 as the engine uploads it)") { check_gemv_format<m3_g128>(); }
TEST("gemv int3-g64-asym in half mantissas") { check_gemv_format<m3_g64_asym>(); }
TEST("gemv int4-g128") { check_gemv_format<int4_g128>(); }
TEST("gemv int8-g128") { check_gemv_format<int8_g128>(); }
TEST("gemv int4-g128-asym") { check_gemv_format<int4_g128_asym>(); }
TEST("gemv int5-g64-asym-f32") { check_gemv_format<int5_g64_asym_fp32>(); }
TEST("gemv int6-row") { check_gemv_format<int6_per_row>(); }
TEST("gemv nf4-g64-dq") { check_gemv_format<nf4_dq>(); }
TEST("gemv Q4_0") { check_gemv_format<g_q4_0>(); }
TEST("gemv Q8_0") { check_gemv_format<g_q8_0>(); }
TEST("gemv int4-g32 (Q4_0 as the engine uploads it)") { check_gemv_format<int4_g32>(); }
TEST("gemv int8-g32 (Q8_0 as the engine uploads it)") { check_gemv_format<int8_g32>(); }
TEST("gemv Q4_K") { check_gemv_format<g_q4_k>(); }
TEST("gemv Q4_K paired (Q4_K as the engine uploads it)") { check_gemv_format<g_q4_k_paired>(); }
TEST("gemv Q6_K") { check_gemv_format<g_q6_k>(); }
TEST("gemv spqr-2bit-g16") { check_gemv_format<spqr2>(); }
TEST("gemv spqr-3bit-g16") { check_gemv_format<spqr3>(); }
TEST("gemv spqr-4bit-g16") { check_gemv_format<spqr4>(); }

// SpQR: the other batch-1 paths (one warp per row, several rows per warp, long rows through the
// split kernel with 32-bit column indices past 65536 columns) and small batches.
TEST("spqr-3bit-g16 other launches and batches") {
    using edgeq::kernel::cuda::launch_staged_rows;
    using edgeq::kernel::cuda::launch_team_rows;
    using edgeq::kernel::cuda::make_adaptor;
    using W = spqr_view<spqr3>;
    check_case<spqr3, float, float>("spqr staged R1", 75, 1024, 1, [](const W& w, const float* x, float* y) {
        launch_staged_rows<16, 1, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<spqr3, __half, float>("spqr staged R3 U2", 129, 1536, 1, [](const W& w, const __half* x, float* y) {
        launch_staged_rows<8, 3, 2>(make_adaptor(w), x, y, 0);
    });
    check_case<spqr3, float, __half>("spqr team S4 R2", 131, 2560, 1, [](const W& w, const float* x, __half* y) {
        launch_team_rows<8, 4, 2, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<spqr3, float, float>("spqr long rows", 3, 65568, 1, [](const W& w, const float* x, float* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    check_case<spqr3, float, float>(
        "spqr long rows, fp32 sums", 3, 65568, 1,
        [](const W& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); }, kRelTolFp32Rounded);
    for (const std::size_t n : {std::size_t(3), std::size_t(23)}) {
        check_case<spqr3, __half, __half>("spqr gemm", 75, 512, n, [n](const W& w, const __half* x, __half* y) {
            edgeq::cuda::gemm(w, x, y, n);
        });
        check_case<spqr3, float, float>(
            "spqr gemm fp32 sums", 75, 512, n,
            [n](const W& w, const float* x, float* y) { edgeq::cuda::gemm(edgeq::cuda::fp32_sums, w, x, y, n); }, kRelTolFp32Rounded);
    }
}

// decode_rows (the GPU engine's embedding from a quantized table): rows in any order, repeated,
// the last one, against the CPU reference decoder; NaN-poisoned output.
template <class F>
void check_decode_rows() {
    for (const auto& sh : {std::make_pair(std::size_t(75), std::size_t(1536)), std::make_pair(std::size_t(9), std::size_t(256))}) {
        const std::size_t rows = sh.first, cols = sh.second;
        host_matrix m;
        make_matrix<F>(rows, cols, unsigned(rows * 7 + cols), m);
        const std::vector<int> want = {int(rows) - 1, 0, 5, 5, int(rows) / 2};
        device_buffer<std::uint8_t> blob(m.blob.size());
        device_buffer<int> idx(want.size());
        device_buffer<float> out(want.size() * cols);
        CUDA_CHECK(cudaMemcpy(blob.p, m.blob.data(), m.blob.size(), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(idx.p, want.data(), want.size() * sizeof(int), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemset(out.p, 0xff, want.size() * cols * sizeof(float)));
        edgeq::cuda::decode_rows(device_view<F>(m, blob.p), idx.p, want.size(), out.p);
        CUDA_CHECK(cudaGetLastError());
        CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> got(want.size() * cols);
        CUDA_CHECK(cudaMemcpy(got.data(), out.p, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
        double max_err = 0.0, max_ref = 0.0;
        std::size_t non_finite = 0;
        for (std::size_t t = 0; t < want.size(); ++t)
            for (std::size_t c = 0; c < cols; ++c) {
                const double ref = m.dense[std::size_t(want[t]) * cols + c], v = got[t * cols + c];
                if (!std::isfinite(v)) ++non_finite;
                max_err = std::max(max_err, std::fabs(v - ref));
                max_ref = std::max(max_ref, std::fabs(ref));
            }
        REQUIRE_MSG(non_finite == 0, rows << "x" << cols << ": " << non_finite << " values not written or not finite");
        // scale * value in fp32, as the CPU decodes (k-quants: the minimum's product rounds
        // apart; NF4: its code book as hi + lo halves).
        CHECK_MSG(max_err <= fp32_tolerance<F>() * max_ref, rows << "x" << cols << ": max error " << max_err << " of " << max_ref);
    }
}
TEST("decode_rows (embeddings from a quantized table)") {
    check_decode_rows<int2_g128>();
    check_decode_rows<m3_g128>();
    check_decode_rows<int4_g128>();
    check_decode_rows<int4_g128_asym>();
    check_decode_rows<int8_g128>();
    check_decode_rows<nf4_dq>();
    check_decode_rows<int4_g32>();
    check_decode_rows<int8_g32>();
    check_decode_rows<g_q4_0>();
    check_decode_rows<g_q8_0>();
    check_decode_rows<g_q4_k>();
    check_decode_rows<g_q4_k_paired>();
    check_decode_rows<g_q6_k>();
}

// Programmatic dependent launch (sm_90: launch_kernel): a GEMV may start before the kernel that
// writes its x has finished, and must wait for it before reading x. A chain y1 = W x, y2 = W y1,
// ... of square GEMVs queued back to back on one stream (each reading what the previous wrote,
// its output poisoned first) must equal the same chain with the host waiting after each launch.
template <class F>
void check_dependent_chain(std::size_t n) {
    host_matrix m;
    make_matrix<F>(n, n, unsigned(n), m);
    // The weights are N(0, 1): each link multiplies |y| by about sqrt(n), so three links from
    // |x| ~ 1e-3 stay well inside what the half kernels hold.
    std::vector<float> x0(n);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1e-3f);
    for (float& v : x0) v = normal(rng);
    device_buffer<std::uint8_t> blob(m.blob.size());
    constexpr int links = 3;
    device_buffer<float> ys((links + 1) * n);
    CUDA_CHECK(cudaMemcpy(blob.p, m.blob.data(), m.blob.size(), cudaMemcpyHostToDevice));
    const auto w = device_view<F>(m, blob.p);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    std::vector<std::vector<float>> out(2, std::vector<float>(links * n));
    for (int pass = 0; pass < 2; ++pass) {
        CUDA_CHECK(cudaMemcpy(ys.p, x0.data(), n * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemset(ys.p + n, 0xff, links * n * sizeof(float)));
        CUDA_CHECK(cudaDeviceSynchronize());
        for (int k = 0; k < links; ++k) {
            edgeq::cuda::gemv(w, ys.p + std::size_t(k) * n, ys.p + std::size_t(k + 1) * n, s);
            if (pass == 1) CUDA_CHECK(cudaStreamSynchronize(s));
        }
        CUDA_CHECK(cudaStreamSynchronize(s));
        CUDA_CHECK(cudaMemcpy(out[std::size_t(pass)].data(), ys.p + n, links * n * sizeof(float), cudaMemcpyDeviceToHost));
    }
    CUDA_CHECK(cudaStreamDestroy(s));
    std::size_t differ = 0, nan = 0;
    for (std::size_t i = 0; i < links * n; ++i) {
        if (!std::isfinite(out[1][i])) ++nan;
        if (std::memcmp(&out[0][i], &out[1][i], sizeof(float)) != 0) ++differ;
    }
    REQUIRE_MSG(nan == 0, "dependent chain " << n << "x" << n << ": the synchronized chain has " << nan << " outputs not finite");
    CHECK_MSG(differ == 0, "dependent chain " << n << "x" << n << ": " << differ << " of " << links * n
                                              << " outputs differ from the synchronized chain (a GEMV read x early?)");
}
TEST("back-to-back dependent GEMVs (PDL on sm_90)") {
    check_dependent_chain<int4_g128>(4096);   // one wave, a row per warp
    check_dependent_chain<int4_g128>(12288);  // more rows than a wave: rows per warp chosen
    check_dependent_chain<int3_g128>(4096);   // teams of warps
    check_dependent_chain<m3_g128>(4096);     // teams of 4 warps
    check_dependent_chain<g_q8_0>(4096);
}

// fp32 sums on tensor cores (gemv_mma.cuh), its last step running past the row's units: 18
// units (576 columns, SmolLM2's rows, in int4-g32 as Q4_0 goes up) with a unit per lane and
// step, 132 units (int4-g128 at 4224 columns) with two; enough rows for 8 warps per tile.
// Without tensor cores the fp32-FMA kernel runs these.
TEST("gemv fp32 sums, a partial last step") {
    check_case<int4_g32, float, float>(
        "gemv fp32 sums 18 units", 2200, 576, 1,
        [](const qview<int4_g32>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); }, kRelTolFp32);
    check_case<int4_g128, float, float>(
        "gemv fp32 sums 132 units", 2200, 4224, 1,
        [](const qview<int4_g128>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); }, kRelTolFp32);
}

// Rows too long to stage x in shared memory (> 23.5K columns) take the split kernel.
TEST("gemv long rows (split kernel)") {
    check_case<int4_g128, float, float>("gemv f32", 5, 25600, 1, [](const qview<int4_g128>& w, const float* x, float* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    check_case<g_q4_k, __half, __half>("gemv f16", 9, 25600, 1, [](const qview<g_q4_k>& w, const __half* x, __half* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    check_case<g_q6_k, float, float>(
        "gemv fp32 sums", 9, 25600, 1,
        [](const qview<g_q6_k>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); }, kRelTolFp32);
}

// The batch-1 staged kernel's other row counts per warp (the default launch picks R by the row
// count), U > 1, its grid-stride over row groups (a grid smaller than the row groups), and a
// matrix tall enough for the default launch to stride.
template <class F>
void check_staged_shapes() {
    using edgeq::kernel::cuda::launch_staged_auto;
    using edgeq::kernel::cuda::launch_staged_rows;
    using edgeq::kernel::cuda::make_adaptor;
    check_case<F, __half, __half>("staged R1", 75, 1024, 1, [](const qview<F>& w, const __half* x, __half* y) {
        launch_staged_rows<16, 1, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<F, float, float>("staged R3", 129, 1536, 1, [](const qview<F>& w, const float* x, float* y) {
        launch_staged_rows<8, 3, 1, false>(make_adaptor(w), x, y, 0);
    });
    check_case<F, __half, __half>("staged R4", 75, 1024, 1, [](const qview<F>& w, const __half* x, __half* y) {
        launch_staged_rows<4, 4, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<F, __half, float>("staged R2 U2", 129, 1536, 1, [](const qview<F>& w, const __half* x, float* y) {
        launch_staged_rows<2, 2, 2>(make_adaptor(w), x, y, 0);
    });
    check_case<F, float, float>("staged auto U2", 131, 2560, 1, [](const qview<F>& w, const float* x, float* y) {
        launch_staged_auto<8, 2>(make_adaptor(w), x, y, 0);
    });
    // Teams of warps per row: S = 4 with partial tiles and a grid-stride over tiles; S = 2 picked.
    check_case<F, __half, float>("team W8 S4 R3", 131, 1536, 1, [](const qview<F>& w, const __half* x, float* y) {
        edgeq::kernel::cuda::launch_team_rows<8, 4, 3, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<F, float, __half>("team auto W16 S2 U2", 129, 2560, 1, [](const qview<F>& w, const float* x, __half* y) {
        edgeq::kernel::cuda::launch_team_auto<16, 2, 2>(make_adaptor(w), x, y, 0);
    });
    check_case<F, __half, float>("gemv long rows in one wave", 67, 8192, 1, [](const qview<F>& w, const __half* x, float* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    // Teams of 8 warps (launch_wide_teams): 176 units a row, so 80 of a team's 256 lanes idle;
    // a partial last tile (131 rows in tiles of 6), and the default launch on a few such rows.
    check_case<F, float, float>("team W16 S8 R3", 131, 5632, 1, [](const qview<F>& w, const float* x, float* y) {
        edgeq::kernel::cuda::launch_team_rows<16, 8, 3, 1>(make_adaptor(w), x, y, 0);
    });
    check_case<F, float, float>("gemv rows of 176 units", 300, 5632, 1, [](const qview<F>& w, const float* x, float* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    check_case<F, float, float>("gemv tall", 40000, 256, 1, [](const qview<F>& w, const float* x, float* y) {
        edgeq::cuda::gemv(w, x, y);
    });
    // The Jetson Nano's block widths (8 warps: staged_threads) beyond one wave and in teams.
    {
        const nano_blocks narrow;
        check_case<F, float, float>("gemv 8-warp blocks tall", 40000, 256, 1, [](const qview<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(w, x, y);
        });
        check_case<F, __half, float>("gemv 8-warp blocks long rows", 67, 8192, 1, [](const qview<F>& w, const __half* x, float* y) {
            edgeq::cuda::gemv(w, x, y);
        });
    }
    check_case<F, float, float>(  // more rows than one wave of the fp32 kernel: its grid-stride
        "gemv fp32 sums tall", 40000, 256, 1,
        [](const qview<F>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y); }, fp32_tolerance<F>());
}
TEST("gemv staged shapes int4-g128-asym") { check_staged_shapes<int4_g128_asym>(); }
TEST("gemv staged shapes int3-g128") { check_staged_shapes<int3_g128>(); }
TEST("gemv staged shapes int3-g128 in half mantissas") { check_staged_shapes<m3_g128>(); }
TEST("gemv staged shapes int3-g64-asym in half mantissas") { check_staged_shapes<m3_g64_asym>(); }
TEST("gemv staged shapes Q4_0") { check_staged_shapes<g_q4_0>(); }
TEST("gemv staged shapes int8-g32") { check_staged_shapes<int8_g32>(); }
TEST("gemv staged shapes Q4_K") { check_staged_shapes<g_q4_k>(); }
TEST("gemv staged shapes Q4_K paired") { check_staged_shapes<g_q4_k_paired>(); }
TEST("gemv staged shapes nf4-g64-dq") { check_staged_shapes<nf4_dq>(); }

// Exact half sums through every batch-1 launch of the staged kernels (the split activations in
// each x order; U > 1; teams; a grid-stride), activations from 1e-30 to 1e4 times the usual ones
// (steps far from 1), and x = 0 (a step of 1, outputs exactly 0).
template <class F>
void check_exact_shapes() {
    using edgeq::kernel::cuda::exact_sums;
    using edgeq::kernel::cuda::in_columns;
    using edgeq::kernel::cuda::launch_staged_auto;
    using edgeq::kernel::cuda::launch_staged_rows;
    using edgeq::kernel::cuda::launch_team_rows;
    using edgeq::kernel::cuda::make_adaptor;
    using A = decltype(make_adaptor(std::declval<qview<F>>()));
    const auto exact = [](const qview<F>& w) { return exact_sums<A>(make_adaptor(w)); };
    const auto columns = [](const qview<F>& w) { return in_columns<exact_sums<A>>(exact_sums<A>(make_adaptor(w))); };
    check_case<F, float, float>("exact staged R1", 75, 1024, 1, [&](const qview<F>& w, const float* x, float* y) {
        launch_staged_rows<16, 1, 1>(exact(w), x, y, 0);
    }, kRelTolExact);
    check_case<F, __half, float>("exact staged R3 columns", 129, 1536, 1, [&](const qview<F>& w, const __half* x, float* y) {
        launch_staged_rows<8, 3, 1, false>(columns(w), x, y, 0);
    }, kRelTolExact);
    check_case<F, float, float>("exact staged R2 U2", 129, 1536, 1, [&](const qview<F>& w, const float* x, float* y) {
        launch_staged_rows<2, 2, 2>(exact(w), x, y, 0);
    }, kRelTolExact);
    check_case<F, float, float>("exact staged auto U2 columns", 131, 2560, 1, [&](const qview<F>& w, const float* x, float* y) {
        launch_staged_auto<8, 2>(columns(w), x, y, 0);
    }, kRelTolExact);
    check_case<F, __half, float>("exact team W8 S4 R3", 131, 1536, 1, [&](const qview<F>& w, const __half* x, float* y) {
        launch_team_rows<8, 4, 3, 1>(exact(w), x, y, 0);
    }, kRelTolExact);
    const auto gemv = [](const qview<F>& w, const float* x, float* y) { edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y); };
    check_case<F, float, float>("exact gemv tall", 40000, 256, 1, gemv, kRelTolExact);
    {  // The Jetson Nano's default: exact half sums in blocks of 8 warps.
        const nano_blocks narrow;
        check_case<F, float, float>("exact gemv 8-warp blocks tall", 40000, 256, 1, gemv, kRelTolExact);
        check_case<F, float, float>("exact gemv 8-warp blocks long rows", 67, 8192, 1, gemv, kRelTolExact);
    }
    check_case<F, float, float>("exact gemv x 1e-30", 75, 1024, 1, gemv, kRelTolExact, 1e-30f);
    check_case<F, float, float>("exact gemv x 1e4", 75, 1024, 1, gemv, kRelTolExact, 1e4f);
    check_case<F, float, __half>("exact gemv f16 y", 75, 1024, 1, [](const qview<F>& w, const float* x, __half* y) {
        edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y);
    }, kRelTol);

    host_matrix m;
    make_matrix<F>(64, 1024, 5u, m);
    device_buffer<std::uint8_t> blob(m.blob.size());
    device_buffer<float> x(1024), y(64);
    CUDA_CHECK(cudaMemcpy(blob.p, m.blob.data(), m.blob.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(x.p, 0, 1024 * sizeof(float)));
    CUDA_CHECK(cudaMemset(y.p, 0xff, 64 * sizeof(float)));
    gemv(device_view<F>(m, blob.p), x.p, y.p);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> out(64);
    CUDA_CHECK(cudaMemcpy(out.data(), y.p, 64 * sizeof(float), cudaMemcpyDeviceToHost));
    std::size_t nonzero = 0;
    for (float v : out) nonzero += v != 0.0f;
    CHECK_MSG(nonzero == 0, "exact gemv of x = 0: " << nonzero << " of 64 outputs are not 0");
}
TEST("gemv exact half sums: launches and scales, int4-g128") { check_exact_shapes<int4_g128>(); }
TEST("gemv exact half sums: launches and scales, int2-g128") { check_exact_shapes<int2_g128>(); }
TEST("gemv exact half sums: launches and scales, int3 in half mantissas") { check_exact_shapes<m3_g128>(); }
TEST("gemv exact half sums: launches and scales, int8-g32") { check_exact_shapes<int8_g32>(); }
TEST("gemv exact half sums: launches and scales, Q4_0") { check_exact_shapes<g_q4_0>(); }
TEST("gemv exact half sums: launches and scales, Q4_K paired") { check_exact_shapes<g_q4_k_paired>(); }

// The block widths the launches take: the kernel's own (staged_threads: 8 warps on sm_53 and
// sm_62, Warps elsewhere), within block_warps_cap().
TEST("launch widths: the kernel's own, within the cap") {
    namespace kc = edgeq::kernel::cuda;
    using A = kc::grouped_adaptor<int4_g128>;
    const auto staged = &kc::gemv_staged_kernel<A, float, float, 32, 4, 1, 1>;
    const auto team = &kc::gemv_team_kernel<A, float, float, 16, 4, 2, 1>;
    int dev = 0, regs = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&regs, cudaDevAttrMaxRegistersPerBlock, dev));
    const bool narrow = regs < 65536;  // sm_53, sm_62
    CHECK(kc::launch_warps(staged, 32) == (narrow ? 8 : 32));
    CHECK(kc::launch_warps(team, 16) == (narrow ? 8 : 16));
    {
        const nano_blocks cap;
        CHECK(kc::launch_warps(staged, 32) == 8);
        CHECK(kc::launch_warps(team, 16) == 8);
        kc::block_warps_cap() = 13;  // rounded down to a power of two
        CHECK(kc::launch_warps(staged, 32) == 8);
        kc::block_warps_cap() = 1;  // at least 4: teams of 4 warps tile a block
        CHECK(kc::launch_warps(team, 16) == 4);
    }
    CHECK(kc::launch_warps(staged, 32) == (narrow ? 8 : 32));
}

// NF4's code book in registers (codebook.cuh) against the code book itself, for every byte in
// every position of a word, with both nibbles of each byte, bit 3 set and not.
__global__ void codebook_words(const std::uint32_t* w, int n, __half2* out) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= n) return;
    const auto book = edgeq::kernel::cuda::codebook_regs::of<nf4_dq>();
    edgeq::kernel::cuda::codebook_word(book, w[i], out + 4 * i);
}
TEST("NF4 code book in registers: every byte in every position") {
    std::vector<std::uint32_t> words;
    for (std::uint32_t b = 0; b < 256; ++b) words.push_back(b | ((b ^ 0x5a) << 8) | ((255 - b) << 16) | (((b * 7) & 0xff) << 24));
    std::mt19937 rng(3);
    for (int i = 0; i < 4096; ++i) words.push_back(std::uint32_t(rng()));
    device_buffer<std::uint32_t> w(words.size());
    device_buffer<__half2> out(4 * words.size());
    CUDA_CHECK(cudaMemcpy(w.p, words.data(), words.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(out.p, 0xff, 4 * words.size() * sizeof(__half2)));
    codebook_words<<<unsigned((words.size() + 127) / 128), 128>>>(w.p, int(words.size()), out.p);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<std::uint32_t> got(4 * words.size());
    CUDA_CHECK(cudaMemcpy(got.data(), out.p, got.size() * 4, cudaMemcpyDeviceToHost));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < words.size(); ++i)
        for (int k = 0; k < 4; ++k) {
            const unsigned byte = (words[i] >> (8 * k)) & 0xffu;  // half2 (low nibble's value, high nibble's)
            const std::uint32_t want = edgeq::float_to_half(nf4_dq::code_value(int(byte & 15))) |
                                       std::uint32_t(edgeq::float_to_half(nf4_dq::code_value(int(byte >> 4)))) << 16;
            if (got[4 * i + k] != want) ++wrong;
        }
    REQUIRE_MSG(wrong == 0, wrong << " of " << 4 * words.size() << " pairs differ from the code book");
}

TEST("gemm int4-g128") { check_gemm_format<int4_g128>(); }
TEST("gemm int3-g128") { check_gemm_format<int3_g128>(); }
TEST("gemm int3-g128 in half mantissas") { check_gemm_format<m3_g128>(); }
TEST("gemm nf4-g64-dq") { check_gemm_format<nf4_dq>(); }
TEST("gemm Q4_0") { check_gemm_format<g_q4_0>(); }
TEST("gemm Q4_K") { check_gemm_format<g_q4_k>(); }
TEST("gemm Q4_K paired") { check_gemm_format<g_q4_k_paired>(); }
TEST("gemm Q6_K") { check_gemm_format<g_q6_k>(); }

TEST("an empty matrix launches nothing; misaligned x is refused") {
    qview<int4_g128> w;  // rows == 0
    edgeq::cuda::gemv(w, static_cast<const float*>(nullptr), static_cast<float*>(nullptr));
    edgeq::cuda::gemm(w, static_cast<const float*>(nullptr), static_cast<float*>(nullptr), 4);
    CUDA_CHECK(cudaGetLastError());

    host_matrix m;
    make_matrix<int4_g128>(4, 128, 1, m);
    device_buffer<std::uint8_t> blob(m.blob.size());
    device_buffer<float> x(129), y(4);
    const auto dview = device_view<int4_g128>(m, blob.p);
    REQUIRE_THROWS_WITH_TEXT(edgeq::cuda::gemv(dview, x.p + 1, y.p), "16-byte aligned");

    host_matrix k;
    make_matrix<g_q4_k>(2, 256, 1, k);
    device_buffer<std::uint8_t> kblob(k.blob.size() + 16);
    const auto kview = edgeq::cuda::rebase(qview<g_q4_k>::from_blob(k.blob.data(), 2, 256), k.blob.data(), kblob.p + 2);
    REQUIRE_THROWS_WITH_TEXT(edgeq::cuda::gemv(kview, x.p, y.p), "16-byte aligned");
}

