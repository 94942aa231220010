// bench_cuda: CUDA GEMV (batch 1) GB/s of quantized weights streamed, per format and shape, next
// to cuBLAS's fp16 GEMV (cublasGemmEx with N = 1) and the measured device-to-device copy
// bandwidth, in the same run; then GEMM at batch 16 and 512 against cuBLAS fp16 GEMM.
//
//     bench_cuda [--quick] [--tune] [--half] [--fp32-sums] [--exact-half]
//
// --quick: three shapes and fewer iterations; --tune: also time the GEMV launch shapes
// (warps x rows per block) per format; --half: the GEMV's activations and outputs in fp16, as
// cuBLAS's are (default fp32, as the engine's); --fp32-sums: also every format in fp32 sums
// (edgeq::cuda::fp32_sums: tensor cores on sm_80 and newer with fp32 activations, fp32 FMAs
// otherwise or with EDGEQ_CUDA_MMA=0); --exact-half: also every format in exact half sums
// (edgeq::cuda::exact_half_sums, gemv_exact.cuh: the Jetson Nano's default). Output: markdown
// tables on stdout (docs/cuda.md).
//
// Weights are random bytes with valid scales (the kernels' speed does not depend on the
// values; tests/cuda checks the results). Each matrix is replicated until the copies exceed
// 4x the L2 cache and the timed loop cycles through them, so every call streams from DRAM.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <edgeq/kernel/cuda/ggml.cuh>
#include <edgeq/kernel/cuda/grouped.cuh>
#include <edgeq/kernel/cuda/spqr.cuh>
#include <edgeq/format/spqr.hpp>
#include <edgeq/scheme.hpp>

namespace {

#define CK(call)                                                                                   \
    do {                                                                                           \
        const cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                                   \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)
#define CB(call)                                                                               \
    do {                                                                                       \
        const cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, int(s_)); \
            std::exit(1);                                                                      \
        }                                                                                      \
    } while (0)

using namespace edgeq;
using int2_g128 = format_of<scheme<bits<2>, group<128>>>;
using int3_g128 = format_of<scheme<bits<3>, group<128>>>;
using int3_m = mantissa3<int3_g128>;  // int3 as the GPU engine uploads it (format/mantissa3.hpp)
using int4_g128 = format_of<scheme<bits<4>, group<128>>>;
using int8_g128 = format_of<scheme<bits<8>, group<128>>>;
using int4_g32 = format_of<scheme<bits<4>, group<32>>>;  // Q4_0 as the GPU engine uploads it
using int8_g32 = format_of<scheme<bits<8>, group<32>>>;  // Q8_0 likewise (format/ggml/grouped_twin.hpp)
using nf4_dq = format_of<scheme<nf4, group<64>, double_quant>>;
using g_q4_0 = ggml_format<ggml::block_q4_0>;
using g_q8_0 = ggml_format<ggml::block_q8_0>;
using g_q4_k = ggml_format<ggml::block_q4_K>;
using g_q4_k_paired = ggml_format<ggml::block_q4_K_paired>;  // Q4_K as the GPU engine uploads it
using g_q6_k = ggml_format<ggml::block_q6_K>;
using spqr3 = spqr_format<3>;

struct shape {
    std::size_t rows, cols;
};

bool quick = false;
std::string only;      // --only NAME: just that format (for profilers)
bool profile = false;  // --profile: each timed function runs once, for ncu
bool half_io = false;  // --half: batch-1 GEMV activations and outputs in fp16 (as cuBLAS's), not fp32
bool fp32_rows = false;   // --fp32-sums: also each format through edgeq::cuda::fp32_sums
bool exact_rows = false;  // --exact-half: also each format through edgeq::cuda::exact_half_sums
enum class sums { half, fp32, exact };
int l2_bytes = 0;
double copy_gbs = 0.0;

cudaStream_t stream;

// Microseconds per call of fn(i), i < iters, timed as one CUDA graph of the iters calls on
// `stream` (after a warm-up), so the host's launch overhead is not measured, for our kernels and
// cuBLAS alike.
double time_us(const std::function<void(int)>& fn, int iters) {
    if (profile) {
        fn(0);
        CK(cudaStreamSynchronize(stream));
        return 1.0;
    }
    for (int i = 0; i < 3; ++i) fn(i);
    CK(cudaStreamSynchronize(stream));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < iters; ++i) fn(i);
    CK(cudaStreamEndCapture(stream, &graph));
#if CUDART_VERSION >= 11040
    CK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
#else
    CK(cudaGraphInstantiate(&exec, graph, nullptr, nullptr, 0));
#endif
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    CK(cudaEventRecord(a, stream));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    CK(cudaGetLastError());
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    return 1000.0 * double(ms) / iters;
}

double measure_copy_bandwidth() {
    const std::size_t n = std::size_t(1) << 30;
    void *a, *b;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    CK(cudaMemset(a, 1, n));
    // Timed with events around plain copies: a graph of memcpy nodes measured slower here.
    for (int i = 0; i < 2; ++i) CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const int iters = quick ? 5 : 20;
    CK(cudaEventRecord(e0, stream));
    for (int i = 0; i < iters; ++i) CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream));
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    const double us = 1000.0 * double(ms) / iters;
    CK(cudaFree(a));
    CK(cudaFree(b));
    return 2.0 * double(n) / us / 1e3;  // read + write
}

// A device buffer holding `copies` replicas of one blob, each at a 256-byte aligned stride.
struct replicas {
    std::uint8_t* base = nullptr;
    std::size_t stride = 0, copies = 0;
    replicas(const std::vector<std::uint8_t>& blob, std::size_t min_total) {
        stride = (blob.size() + 255) / 256 * 256;
        copies = std::max<std::size_t>(2, (min_total + stride - 1) / stride);
        CK(cudaMalloc(&base, stride * copies));
        CK(cudaMemcpy(base, blob.data(), blob.size(), cudaMemcpyHostToDevice));
        for (std::size_t i = 1; i < copies; ++i) CK(cudaMemcpy(base + i * stride, base, blob.size(), cudaMemcpyDeviceToDevice));
    }
    ~replicas() { cudaFree(base); }
    std::uint8_t* at(int i) const { return base + (std::size_t(i) % copies) * stride; }
};

std::size_t rotation_bytes() { return std::max<std::size_t>(std::size_t(4) * std::size_t(l2_bytes), std::size_t(256) << 20); }

void put_half(std::uint8_t* p, float v) {
    const std::uint16_t h = float_to_half(v);
    std::memcpy(p, &h, 2);
}

template <class B>
void set_min(B*) {}
void set_min(ggml::block_q4_K* b) { b->dmin = fp16_t::from_float(0.01f); }
void set_min(ggml::block_q4_K_paired* b) { b->dmin = fp16_t::from_float(0.01f); }

// Random codes, valid scales (so no inf/NaN flows through the arithmetic).
template <class F>
std::vector<std::uint8_t> random_blob(std::size_t rows, std::size_t cols, std::mt19937& rng, std::false_type) {
    std::vector<std::uint8_t> b(F::storage_bytes(rows, cols));
    for (auto& v : b) v = std::uint8_t(rng());
    const std::size_t ns = F::n_scales(rows, cols), so = F::scales_offset(rows, cols);
    for (std::size_t i = 0; i < ns; ++i) {
        if (std::is_same<typename F::scale_type, fp16_t>::value) put_half(&b[so + 2 * i], 0.01f);
        if (std::is_same<typename F::scale_type, fp32_t>::value) {
            const float f = 0.01f;
            std::memcpy(&b[so + 4 * i], &f, 4);
        }
    }
    if (F::asymmetric)
        for (std::size_t i = 0; i < ns; ++i) b[F::zeros_offset(rows, cols) + i] &= std::uint8_t(F::max_code);
    if (F::is_double_quant)
        for (std::size_t i = 0; i <= F::n_dq_blocks(rows, cols); ++i) {
            const float f = 1e-4f;
            std::memcpy(&b[F::dq_offset(rows, cols) + 4 * i], &f, 4);
        }
    return b;
}
template <class F>
std::vector<std::uint8_t> random_blob(std::size_t rows, std::size_t cols, std::mt19937& rng, std::true_type) {
    using block = typename F::block_type;
    std::vector<std::uint8_t> b(F::storage_bytes(rows, cols));
    for (auto& v : b) v = std::uint8_t(rng());
    const std::size_t n = rows * F::blocks_per_row(cols);
    for (std::size_t i = 0; i < n; ++i) {
        block* blk = reinterpret_cast<block*>(b.data()) + i;
        blk->d = fp16_t::from_float(0.01f);
        set_min(blk);
    }
    return b;
}

template <class F>
qview<F> view_at(const std::vector<std::uint8_t>& host, std::size_t rows, std::size_t cols, const std::uint8_t* dev) {
    return edgeq::cuda::rebase(qview<F>::from_blob(host.data(), rows, cols), host.data(), dev);
}

struct fp16_matrix {
    std::vector<std::uint8_t> blob;
    fp16_matrix(std::size_t rows, std::size_t cols, std::mt19937& rng) : blob(rows * cols * 2) {
        std::uniform_real_distribution<float> u(-0.05f, 0.05f);
        for (std::size_t i = 0; i < rows * cols; ++i) put_half(&blob[2 * i], u(rng));
    }
};

cublasHandle_t handle;

// cuBLAS fp16: Y (n x rows) = X (n x cols) W^T with W rows x cols row-major, i.e. column-major
// cols x rows: C = op(A) B with A = W (transposed), B = X^T (cols x n), fp32 accumulation.
void cublas_fp16(const __half* w, const __half* x, __half* y, std::size_t rows, std::size_t cols, std::size_t n) {
    const float alpha = 1.0f, beta = 0.0f;
#if CUDART_VERSION >= 11000
    const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
#else
    const cudaDataType compute = CUDA_R_32F;
#endif
    CB(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(n), int(cols), &alpha, w, CUDA_R_16F, int(cols), x,
                    CUDA_R_16F, int(cols), &beta, y, CUDA_R_16F, int(rows), compute, CUBLAS_GEMM_DEFAULT));
}

struct gemv_row {
    std::string format, shape;
    double bpw, us, gbs, cublas_us;
};
std::vector<gemv_row> gemv_rows;

int iters_for(std::size_t bytes) {
    const int n = int(std::min<std::size_t>(2000, std::max<std::size_t>(50, (std::size_t(2) << 30) / std::max<std::size_t>(bytes, 1))));
    return quick ? std::max(20, n / 5) : n;
}

std::vector<shape> shapes;
std::vector<double> cublas_gemv_us;  // per shape

void bench_cublas_gemv() {
    std::mt19937 rng(7);
    for (const shape& s : shapes) {
        fp16_matrix m(s.rows, s.cols, rng);
        replicas w(m.blob, rotation_bytes());
        __half *x, *y;
        CK(cudaMalloc(&x, s.cols * 2));
        CK(cudaMemset(x, 0, s.cols * 2));
        CK(cudaMalloc(&y, s.rows * 2));
        const double us = time_us(
            [&](int i) { cublas_fp16(reinterpret_cast<const __half*>(w.at(i)), x, y, s.rows, s.cols, 1); },
            iters_for(m.blob.size()));
        cublas_gemv_us.push_back(us);
        gemv_rows.push_back({"cuBLAS fp16 (GemmEx, N=1)", std::to_string(s.rows) + "x" + std::to_string(s.cols), 16.0, us,
                             double(m.blob.size()) / us / 1e3, us});
        CK(cudaFree(x));
        CK(cudaFree(y));
    }
}

// Batch-1 GEMV of shape si through the views (one per replica, cycled so that every call streams
// from HBM); a row of the table, GB/s counting blob_bytes once per call.
template <class T, class View>
double time_gemv_io(const shape& s, std::size_t blob_bytes, const std::vector<View>& views, sums mode) {
    T *x, *y;
    CK(cudaMalloc(&x, s.cols * sizeof(T)));
    CK(cudaMemset(x, 0, s.cols * sizeof(T)));
    CK(cudaMalloc(&y, s.rows * sizeof(T)));
    const double us = time_us(
        [&](int i) {
            if (mode == sums::fp32)
                edgeq::cuda::gemv(edgeq::cuda::fp32_sums, views[std::size_t(i) % views.size()], x, y, stream);
            else if (mode == sums::exact)
                edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, views[std::size_t(i) % views.size()], x, y, stream);
            else
                edgeq::cuda::gemv(views[std::size_t(i) % views.size()], x, y, stream);
        },
        iters_for(blob_bytes));
    CK(cudaFree(x));
    CK(cudaFree(y));
    return us;
}
template <class View>
void time_gemv_row(const char* name, std::size_t si, std::size_t blob_bytes, const std::vector<View>& views) {
    const shape& s = shapes[si];
    for (const sums mode : {sums::half, sums::exact, sums::fp32}) {
        if ((mode == sums::fp32 && !fp32_rows) || (mode == sums::exact && !exact_rows)) continue;
        const double us = half_io ? time_gemv_io<__half>(s, blob_bytes, views, mode) : time_gemv_io<float>(s, blob_bytes, views, mode);
        const char* tag = mode == sums::fp32 ? " (fp32 sums)" : mode == sums::exact ? " (exact half sums)" : "";
        gemv_rows.push_back({std::string(name) + tag, std::to_string(s.rows) + "x" + std::to_string(s.cols),
                             8.0 * double(blob_bytes) / double(s.rows * s.cols), us, double(blob_bytes) / us / 1e3,
                             cublas_gemv_us[si]});
    }
}

template <class F>
void bench_gemv(const char* name) {
    if (!only.empty() && only != name) return;
    std::mt19937 rng(11);
    for (std::size_t si = 0; si < shapes.size(); ++si) {
        const shape& s = shapes[si];
        const auto blob = random_blob<F>(s.rows, s.cols, rng, is_ggml_format<F>{});
        replicas w(blob, rotation_bytes());
        std::vector<qview<F>> views;
        for (std::size_t i = 0; i < w.copies; ++i) views.push_back(view_at<F>(blob, s.rows, s.cols, w.at(int(i))));
        time_gemv_row(name, si, blob.size(), views);
    }
}

// SpQR: random codes, valid statistics, outliers on 1% of the weights at random columns.
std::vector<std::uint8_t> random_spqr(std::size_t rows, std::size_t cols, std::mt19937& rng) {
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<std::uint32_t> row_ptr(rows + 1, 0), where;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c)
            if (uni(rng) < 0.01f) where.push_back(std::uint32_t(c));
        row_ptr[r + 1] = std::uint32_t(where.size());
    }
    spqr_matrix<spqr3> q(rows, cols, where.size());
    for (std::size_t i = 0; i < rows * spqr3::row_code_bytes(cols); ++i) q.row_codes(0)[i] = std::uint8_t(rng());
    for (std::size_t b = 0; b < spqr3::n_stat_blocks(rows, cols); ++b) {
        spqr3::stat_block& s = q.stats()[b];
        for (std::uint8_t& c : s.codes) c = std::uint8_t(rng());
        s.d_min = fp16_t::from_float(0.01f), s.d_step = fp16_t::from_float(0.002f);
        s.z_min = fp16_t::from_float(0.5f), s.z_step = fp16_t::from_float(0.75f);
    }
    std::memcpy(q.row_ptr(), row_ptr.data(), 4 * (rows + 1));
    for (std::size_t k = 0; k < where.size(); ++k) {
        q.set_outlier_col(k, where[k]);
        q.values()[k] = float_to_half(0.1f);
    }
    return std::vector<std::uint8_t>(q.blob().data(), q.blob().data() + q.blob().size());
}

// GB/s of SpQR count every byte of its blob: codes, statistics, row_ptr, indices, values.
void bench_spqr_gemv(const char* name) {
    if (!only.empty() && only != name) return;
    std::mt19937 rng(19);
    for (std::size_t si = 0; si < shapes.size(); ++si) {
        const shape& s = shapes[si];
        const auto blob = random_spqr(s.rows, s.cols, rng);
        replicas w(blob, rotation_bytes());
        std::vector<spqr_view<spqr3>> views;
        const auto host = spqr_view<spqr3>::from_blob(blob.data(), s.rows, s.cols);
        for (std::size_t i = 0; i < w.copies; ++i) views.push_back(edgeq::cuda::rebase(host, blob.data(), w.at(int(i))));
        time_gemv_row(name, si, blob.size(), views);
    }
}

// --tune: launch shapes of the batch-1 kernels (gemv_core.cuh): staged (warps own rows, x in
// shared memory), split (a block's warps share rows) and the block kernel of small batches.
template <class F, int W, int R, int U, int MinBlocks = 1, bool Persist = true, class V = qview<F>>
double tune_staged(const std::vector<V>& views, const float* x, float* y, int iters) {
    return time_us(
        [&](int i) {
            kernel::cuda::launch_staged_rows<W, R, U, Persist, MinBlocks>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y,
                                                      stream);
        },
        iters);
}
template <class F, int W, int U = 1>
double tune_auto(const std::vector<qview<F>>& views, const float* x, float* y, int iters) {
    return time_us(
        [&](int i) {
            kernel::cuda::launch_staged_auto<W, U>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y,
                                                   stream);
        },
        iters);
}
template <class F, int W, int R, int U, bool Staged = false>
double tune_split(const std::vector<qview<F>>& views, const float* x, float* y, int iters) {
    return time_us(
        [&](int i) {
            kernel::cuda::launch_split_rows<W, R, U, Staged>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y,
                                                     stream);
        },
        iters);
}
template <class F, int W, int S, int U = 1, class V = qview<F>>
double tune_team(const std::vector<V>& views, const float* x, float* y, int iters) {
    return time_us(
        [&](int i) {
            kernel::cuda::launch_team_auto<W, S, U>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y,
                                                    stream);
        },
        iters);
}
template <int W, int S, int R, class V>
double tune_team_rows(const std::vector<V>& views, const float* x, float* y, int iters) {
    return time_us(
        [&](int i) {
            kernel::cuda::launch_team_rows<W, S, R, 1>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y,
                                                       stream);
        },
        iters);
}
// SpQR's launch shapes: every one but the first takes tiles of 16 rows (a stat row block).
void tune_spqr() {
    using V = spqr_view<spqr3>;
    std::mt19937 rng(23);
    for (const shape& s : shapes) {
        const auto blob = random_spqr(s.rows, s.cols, rng);
        replicas w(blob, rotation_bytes());
        float *x, *y;
        CK(cudaMalloc(&x, s.cols * 4));
        CK(cudaMemset(x, 0, s.cols * 4));
        CK(cudaMalloc(&y, s.rows * 4));
        std::vector<V> views;
        const V host = V::from_blob(blob.data(), s.rows, s.cols);
        for (std::size_t i = 0; i < w.copies; ++i) views.push_back(edgeq::cuda::rebase(host, blob.data(), w.at(int(i))));
        const int it = iters_for(blob.size());
        const double b = double(blob.size()) / 1e3;
        std::printf("| spqr-3bit-g16 | %zux%zu | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", s.rows, s.cols,
                    b / tune_team<spqr3, 16, 2, 1, V>(views, x, y, it), b / tune_staged<spqr3, 16, 1, 1, 1, true, V>(views, x, y, it),
                    b / tune_staged<spqr3, 8, 2, 1, 1, true, V>(views, x, y, it), b / tune_team_rows<16, 4, 4>(views, x, y, it),
                    b / tune_team_rows<16, 2, 2>(views, x, y, it), b / tune_team_rows<8, 2, 4>(views, x, y, it));
        CK(cudaFree(x));
        CK(cudaFree(y));
    }
}

// For each shape: random weights of format F in rotating copies, x and y on the device, then
// row(shape, views, x, y, iterations, kB of weights) prints a table row.
template <class F, class Row>
void for_each_shape(unsigned seed, Row row) {
    std::mt19937 rng(seed);
    for (const shape& s : shapes) {
        const auto blob = random_blob<F>(s.rows, s.cols, rng, is_ggml_format<F>{});
        replicas w(blob, rotation_bytes());
        float *x, *y;
        CK(cudaMalloc(&x, s.cols * 4));
        CK(cudaMemset(x, 0, s.cols * 4));
        CK(cudaMalloc(&y, s.rows * 4));
        std::vector<qview<F>> views;
        for (std::size_t i = 0; i < w.copies; ++i) views.push_back(view_at<F>(blob, s.rows, s.cols, w.at(int(i))));
        row(s, views, x, y, iters_for(blob.size()), double(blob.size()) / 1e3);
        CK(cudaFree(x));
        CK(cudaFree(y));
    }
}

// Teams of S warps per row with R rows per team, fixed (launch_team_auto picks R by the wave).
template <class F>
void tune_teams(const char* name) {
    if (!only.empty() && only != name) return;
    for_each_shape<F>(17, [&](const shape& s, const std::vector<qview<F>>& views, const float* x, float* y, int it, double b) {
        std::printf("| %s | %zux%zu | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name, s.rows, s.cols,
                    b / tune_team_rows<16, 4, 1>(views, x, y, it), b / tune_team_rows<16, 4, 2>(views, x, y, it),
                    b / tune_team_rows<16, 4, 4>(views, x, y, it), b / tune_team_rows<16, 2, 2>(views, x, y, it),
                    b / tune_team_rows<16, 2, 4>(views, x, y, it), b / tune_team_rows<8, 4, 2>(views, x, y, it),
                    b / tune_team_rows<32, 4, 2>(views, x, y, it), b / tune_team_rows<32, 8, 1>(views, x, y, it));
    });
}

template <class F>
void tune(const char* name) {
    if (!only.empty() && only != name) return;
    for_each_shape<F>(13, [&](const shape& s, const std::vector<qview<F>>& views, const float* x, float* y, int it, double b) {
        const double old = time_us(
            [&](int i) {
                kernel::cuda::launch_rows<4, 4, 1>(kernel::cuda::make_adaptor(views[std::size_t(i) % views.size()]), x, y, stream);
            },
            it);
        std::printf("| %s | %zux%zu | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name, s.rows, s.cols,
                    b / old, b / tune_staged<F, 16, 2, 1>(views, x, y, it), b / tune_auto<F, 8>(views, x, y, it),
                    b / tune_auto<F, 16>(views, x, y, it), b / tune_team<F, 16, 2>(views, x, y, it),
                    b / tune_team<F, 16, 4>(views, x, y, it), b / tune_team<F, 8, 2>(views, x, y, it),
                    b / tune_team<F, 8, 4>(views, x, y, it), b / tune_team<F, 16, 2, 2>(views, x, y, it),
                    b / tune_auto<F, 32>(views, x, y, it), b / tune_team<F, 32, 2>(views, x, y, it),
                    b / tune_team<F, 32, 4>(views, x, y, it), b / tune_staged<F, 32, 1, 1>(views, x, y, it));
    });
}

// GEMM: fp16 activations and outputs for us and cuBLAS alike.
struct gemm_row {
    std::string format, shape;
    std::size_t n;
    double us, cublas_us;
};
std::vector<gemm_row> gemm_rows;

template <class F>
void bench_gemm(const char* name, const std::vector<shape>& gshapes, const std::vector<std::size_t>& batches) {
    std::mt19937 rng(17);
    for (const shape& s : gshapes) {
        const auto blob = random_blob<F>(s.rows, s.cols, rng, is_ggml_format<F>{});
        replicas w(blob, rotation_bytes());
        fp16_matrix m16(s.rows, s.cols, rng);
        replicas w16(m16.blob, rotation_bytes());
        std::vector<qview<F>> views;
        for (std::size_t i = 0; i < w.copies; ++i) views.push_back(view_at<F>(blob, s.rows, s.cols, w.at(int(i))));
        for (const std::size_t n : batches) {
            __half *x, *y;
            CK(cudaMalloc(&x, n * s.cols * 2));
            CK(cudaMemset(x, 0, n * s.cols * 2));
            CK(cudaMalloc(&y, n * s.rows * 2));
            const int it = n > 64 ? (quick ? 5 : 20) : iters_for(blob.size()) / 2;
            const double us =
                time_us([&](int i) { edgeq::cuda::gemm(views[std::size_t(i) % views.size()], x, y, n, stream); }, it);
            const double cu = time_us(
                [&](int i) { cublas_fp16(reinterpret_cast<const __half*>(w16.at(i)), x, y, s.rows, s.cols, n); }, it);
            gemm_rows.push_back({name, std::to_string(s.rows) + "x" + std::to_string(s.cols), n, us, cu});
            CK(cudaFree(x));
            CK(cudaFree(y));
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool do_tune = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        else if (!std::strcmp(argv[i], "--tune")) do_tune = true;
        else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!std::strcmp(argv[i], "--profile")) profile = true;
        else if (!std::strcmp(argv[i], "--half")) half_io = true;
        else if (!std::strcmp(argv[i], "--fp32-sums")) fp32_rows = true;
        else if (!std::strcmp(argv[i], "--exact-half")) exact_rows = true;
        else {
            std::fprintf(stderr, "usage: bench_cuda [--quick] [--tune] [--half] [--fp32-sums] [--exact-half] [--only FORMAT] [--profile]\n");
            return 2;
        }
    }
    int dev_count = 0;
    if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
        std::printf("bench_cuda: no CUDA device\n");
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    l2_bytes = prop.l2CacheSize;
    CB(cublasCreate(&handle));
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CB(cublasSetStream(handle, stream));
    shapes = quick ? std::vector<shape>{{4096, 4096}, {11008, 4096}, {4096, 11008}}
                   : std::vector<shape>{{4096, 4096}, {11008, 4096}, {4096, 11008}, {2048, 5632}, {5632, 2048}};

    copy_gbs = measure_copy_bandwidth();
    std::printf("# bench_cuda%s: %s (sm_%d%d, %d SMs, L2 %d MiB), CUDA runtime %d\n\n", quick ? " --quick" : "", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount, l2_bytes >> 20, CUDART_VERSION);
    std::printf("Device-to-device copy (cudaMemcpy, 1 GiB, read + write counted): **%.0f GB/s**\n\n", copy_gbs);

    if (do_tune) {
        std::printf("## GEMV launch shapes (GB/s; W warps per block, R rows per warp (staged) or per block (split), U units in flight per thread)\n\n");
        std::printf("| format | shape | block 4w x 4r | W16 R2 U1 | auto W8 | auto W16 | team W16 S2 | team W16 S4 | team W8 S2 | team W8 S4 | team W16 S2 U2 | auto W32 | team W32 S2 | team W32 S4 | W32 R1 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        tune<int4_g128>("int4-g128");
        tune<int2_g128>("int2-g128");
        tune<int3_g128>("int3-g128");
        tune<int8_g128>("int8-g128");
        tune<g_q4_0>("Q4_0");
        tune<g_q8_0>("Q8_0");
        tune<int4_g32>("Q4_0 as int4-g32");
        tune<int8_g32>("Q8_0 as int8-g32");
        tune<g_q4_k>("Q4_K");
        tune<g_q4_k_paired>("Q4_K paired");
        tune<g_q6_k>("Q6_K");
        std::printf("\n| format | shape | team W16 S2 auto | W16 R1 | W8 R2 | team W16 S4 R4 | team W16 S2 R2 | team W8 S2 R4 |\n|---|---|---|---|---|---|---|---|\n");
        tune_spqr();
        std::printf("\n| format | shape | team W16 S4 R1 | W16 S4 R2 | W16 S4 R4 | W16 S2 R2 | W16 S2 R4 | W8 S4 R2 | W32 S4 R2 | W32 S8 R1 |\n|---|---|---|---|---|---|---|---|---|---|\n");
        tune_teams<int4_g128>("int4-g128");
        tune_teams<int4_g32>("Q4_0 as int4-g32");
        tune_teams<g_q4_k_paired>("Q4_K paired");
        std::printf("\n");
    }

    bench_cublas_gemv();
    bench_gemv<int2_g128>("int2-g128");
    bench_gemv<int3_g128>("int3-g128");
    bench_gemv<int3_m>("int3-g128 in half mantissas");
    bench_gemv<int4_g128>("int4-g128");
    bench_gemv<int8_g128>("int8-g128");
    bench_gemv<nf4_dq>("nf4-g64-dq");
    bench_gemv<g_q4_0>("Q4_0");
    bench_gemv<g_q8_0>("Q8_0");
    bench_gemv<int4_g32>("Q4_0 as int4-g32");
    bench_gemv<int8_g32>("Q8_0 as int8-g32");
    bench_gemv<g_q4_k>("Q4_K");
    bench_gemv<g_q4_k_paired>("Q4_K paired");
    bench_gemv<g_q6_k>("Q6_K");
    bench_spqr_gemv("spqr-3bit-g16 (1% outliers)");

    std::printf("## GEMV, batch 1 (%s activations and outputs; cuBLAS: fp16)\n\n", half_io ? "fp16" : "fp32");
    std::printf("| format | bits/weight | shape | us | GB/s | %% of copy BW | x cuBLAS fp16 |\n|---|---|---|---|---|---|---|\n");
    for (const std::string& sh : [] {
             std::vector<std::string> v;
             for (const shape& s : shapes) v.push_back(std::to_string(s.rows) + "x" + std::to_string(s.cols));
             return v;
         }()) {
        for (const gemv_row& r : gemv_rows)
            if (r.shape == sh)
                std::printf("| %s | %.3g | %s | %.1f | %.0f | %.0f%% | %.2f |\n", r.format.c_str(), r.bpw, r.shape.c_str(), r.us,
                            r.gbs, 100.0 * r.gbs / copy_gbs, r.cublas_us / r.us);
    }

    const std::vector<shape> gshapes = quick ? std::vector<shape>{{4096, 4096}} : std::vector<shape>{{4096, 4096}, {11008, 4096}};
    const std::vector<std::size_t> batches = {16, 512};
    if (only.empty()) {
        bench_gemm<int4_g128>("int4-g128", gshapes, batches);
        bench_gemm<g_q4_0>("Q4_0", gshapes, batches);
        bench_gemm<g_q4_k>("Q4_K", gshapes, batches);
    }
    std::printf("\n## GEMM (fp16 activations and outputs; cuBLAS fp16 GemmEx with fp32 accumulation)\n\n");
    std::printf("| format | shape | batch | us | TFLOP/s | cuBLAS fp16 us | x cuBLAS fp16 |\n|---|---|---|---|---|---|---|\n");
    for (const gemm_row& r : gemm_rows) {
        std::size_t rows = 0, cols = 0;
        std::sscanf(r.shape.c_str(), "%zux%zu", &rows, &cols);
        std::printf("| %s | %s | %zu | %.1f | %.2f | %.1f | %.2f |\n", r.format.c_str(), r.shape.c_str(), r.n, r.us,
                    2.0 * double(rows * cols * r.n) / r.us / 1e6, r.cublas_us, r.cublas_us / r.us);
    }
    CB(cublasDestroy(handle));
    return 0;
}
