// GEMV y = W x on a CUDA device for SpQR matrices (format/spqr.hpp): the dense part and the
// sparse outliers in one kernel.
//
//     auto w = edgeq::cuda::rebase(host_view, host_blob, device_blob);   // spqr_view of the copy
//     edgeq::cuda::gemv(w, x_dev, y_dev, stream);                       // x, y: float or __half
//     edgeq::cuda::gemm(w, x_dev, y_dev, n, stream);                    // n tokens (see below)
//
// Dense part: the GEMV skeleton of gemv_core.cuh. A unit is one packed 32-code chunk = two
// groups of 16 columns, each with its own (scale, zero) decoded from the two 20-byte stat
// blocks (3-bit codes over 16 rows, fp16 second level) that the 16 rows of a row block share,
// so those reads mostly hit L1. The zero point is not an integer: codes become exact halves
// (byte permute, as for edgeq's grouped formats) and the zero, rounded to half (within 2^-9 of
// it), is subtracted in half2; the scale multiplies each group's fp32 sum (combine, groups = 2).
//
// Sparse part: each row's CSR range is read by the threads that own the row in the dense
// kernel (a warp or a team of warps), added to their partial sums before the reduction
// (A::row_extra): no atomics, no second launch, and y is written once, so the result does
// not depend on timing. Outliers are ~1% of the weights; an atomicAdd kernel over nnz would
// add a launch and an fp32 read-modify-write of y, and could not write __half outputs.
//
// Only the registry's layouts: groups of 16, statistics of 3 bits over 16 rows; dense codes of
// 2, 3, 4 bits (5, 6, 8 compile too). GEMM: the batched GEMV of gemv_core.cuh up to 16 tokens
// at a time (each launch streams the weights once); the tiled GEMM is not written for SpQR.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../format/spqr.hpp"
#include "../../policy/backend.hpp"
#include "gemv_core.cuh"
#include "unpack.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

template <class F>
struct spqr_adaptor {
    static_assert(F::group == 16, "cuda SpQR: groups of 16 columns (the registry's spqr-*bit-g16)");
    static_assert(F::stat_bits == 3 && F::stat_group == 16, "cuda SpQR: statistics of 3 bits over 16 rows");
    static constexpr int bits = F::bits;
    static constexpr int chunk_bytes = plane_split<bits>::chunk_bytes;
    // |q - z| <= 15 up to 4-bit codes: as grouped 4-bit, x / 16 and runs of 16 products in half.
    static constexpr int x_shift = bits <= 4 ? 4 : 8;
    static constexpr bool fp32_runs = bits > 4;
    static constexpr bool needs_xsum = false, contiguous = true;
    static constexpr x_order staged_order = x_order::columns;
    static constexpr bool auto_rows = true;
    static constexpr bool row_extra = true;  // the outliers
    static constexpr int team_mode = 0;      // launch_spqr1 picks its own launch
    static constexpr bool wide_rows = false;
    static constexpr int groups = 2;         // a scale per 16 weights
    static constexpr int table_size = 0;
    static constexpr int code_max = 0;       // fractional zero points: no exact half sums

    struct raw {
        std::uint32_t words[bits];
        uint2 st[5];  // the unit's two stat blocks, 40 bytes
        unsigned i;   // the row's place in its block of 16
    };

    spqr_view<F> w;
    std::size_t rows, cols, units;

    __device__ static __half2 table_entry(int) { return __half2(); }
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }

    __device__ const std::uint8_t* unit_bytes(std::size_t r, std::size_t u) const { return w.row_codes(r) + u * chunk_bytes; }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        load_chunk<bits>(w.row_codes(r) + u * chunk_bytes, out.words);
        // Blocks (r / 16, 2u) and (r / 16, 2u + 1): 40 bytes at a multiple of 40 from a 64-byte
        // aligned section (cols / 16 is even), so 8-byte aligned.
        const uint2* p = reinterpret_cast<const uint2*>(w.stats + r / 16 * (cols / 16) + 2 * u);
#pragma unroll
        for (int k = 0; k < 5; ++k) out.st[k] = __ldg(p + k);
        out.i = unsigned(r % 16);
    }

    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[2], float& m) const {
        // Words of block 0: a0 a1 (2-bit plane), a2 (1-bit plane), a3 (d_min, d_step), a4
        // (z_min, z_step); block 1 follows: b0 .. b4.
        const std::uint32_t a[5] = {in.st[0].x, in.st[0].y, in.st[1].x, in.st[1].y, in.st[2].x};
        const std::uint32_t b[5] = {in.st[2].y, in.st[3].x, in.st[3].y, in.st[4].x, in.st[4].y};
        float z0, z1;
        stats(a, in.i, s[0], z0);
        stats(b, in.i, s[1], z1);
        const __half2 k1024 = __float2half2_rn(1024.0f);
        const __half2 h0 = __float2half2_rn(z0), h1 = __float2half2_rn(z1);
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const std::uint32_t c = codes4<bits>(in.words, t);
            const __half2 z = t < 4 ? h0 : h1;  // codes 4t .. 4t + 3: group t / 4
            v[2 * t] = __hsub2(__hsub2(h2_bytes<0x4140u>(c), k1024), z);
            v[2 * t + 1] = __hsub2(__hsub2(h2_bytes<0x4342u>(c), k1024), z);
        }
        m = 0.0f;
    }

    // The outliers of row r that thread t of nt takes: sum of value * x[col].
    template <class XT>
    __device__ float row_extra_part(std::size_t r, unsigned t, unsigned nt, const XT* x) const {
        const std::uint32_t k0 = __ldg(w.row_ptr + r), k1 = __ldg(w.row_ptr + r + 1);
        float s = 0.0f;
        for (std::uint32_t k = k0 + t; k < k1; k += nt) {
            const std::size_t c = w.index16 ? std::size_t(__ldg(w.index16 + k)) : std::size_t(__ldg(w.index32 + k));
            s = fmaf(__half2float(__ushort_as_half(__ldg(w.values + k))), to_float(x[c]), s);
        }
        return s;
    }

   private:
    __device__ static float to_float(float v) { return v; }
    __device__ static float to_float(__half v) { return __half2float(v); }
    __device__ static float lo_half(std::uint32_t u) { return __half2float(__ushort_as_half((unsigned short)(u & 0xffffu))); }
    __device__ static float hi_half(std::uint32_t u) { return __half2float(__ushort_as_half((unsigned short)(u >> 16))); }

    // Row i's scale and zero from a stat block's words (format/spqr.hpp): 32 3-bit codes, scale
    // codes 0..15 then zero codes 16..31; code c has its 2 low bits in byte c % 8 of the 2-bit
    // plane at bit 2 (c / 8), its high bit in byte c % 4 of the 1-bit plane at bit c / 4.
    __device__ static void stats(const std::uint32_t (&b)[5], unsigned i, float& d, float& z) {
        const unsigned long long low = (static_cast<unsigned long long>(b[1]) << 32) | b[0];
        const unsigned sl = 8 * (i % 8) + 2 * (i / 8), sh = 8 * (i % 4) + i / 4;
        const unsigned qd = (unsigned(low >> sl) & 3u) | (((b[2] >> sh) & 1u) << 2);
        const unsigned qz = (unsigned(low >> (sl + 4)) & 3u) | (((b[2] >> (sh + 4)) & 1u) << 2);
        d = fmaf(hi_half(b[3]), float(qd), lo_half(b[3]));
        z = fmaf(hi_half(b[4]), float(qz), lo_half(b[4]));
    }
};

template <class F>
spqr_adaptor<F> make_adaptor(const spqr_view<F>& w) {
    if (!w.codes || !w.stats || !w.row_ptr || (!w.index16 && !w.index32) || (w.nnz > 0 && !w.values))
        throw error("cuda SpQR: a null matrix pointer");
    if (w.cols % 32) throw error("cuda SpQR: the row length is not a multiple of 32");
    // load_chunk() reads whole chunks with 16-, 8- or 4-byte loads; the stat blocks in pairs of
    // 8-byte loads.
    if (reinterpret_cast<std::uintptr_t>(w.codes) % 16 || reinterpret_cast<std::uintptr_t>(w.stats) % 8)
        throw error("cuda SpQR: the codes must be 16-byte aligned and the statistics 8-byte aligned");
    spqr_adaptor<F> a;
    a.w = w;
    a.rows = w.rows;
    a.cols = w.cols;
    a.units = w.cols / chunk_weights;
    return a;
}

// Batch 1: tiles of 16 rows, the rows of one row block, which share the stat blocks, so that
// those reads (40 bytes per unit and row, 3.3 times the codes) hit one SM's L1 instead of
// going to L2 once per row: teams of 2 warps per row, 2 rows per team, blocks of 16 warps
// (bench_cuda --tune, docs/cuda.md: 4 rows of 4 warps, the first choice, ran at 50-80% of
// its speed, tiles of 24 rows lost a fifth at 11008 x 4096). Rows too long to stage x: the
// split kernel.
template <class Config, class A, class XT, class YT>
void launch_spqr1(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (a.rows == 0) return;
    check_activations(a, x, y);
    if (staged_bytes(a) <= staged_limit)
        launch_team_rows<16, 2, 2, 1>(a, x, y, stream);
    else
        launch_split_rows<Config::split_warps, Config::split_rows, Config::split_unroll>(a, x, y, stream);
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {

// y = W x on the device, asynchronously on `stream`: W's pointers, x and y are device pointers.
template <class F, class XT, class YT>
void gemv(const spqr_view<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_spqr1<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
template <int SM, class F, class XT, class YT>
void gemv(backend::cuda<SM>, const spqr_view<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_spqr1<kernel::cuda::gemv_config<SM>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
// In fp32 arithmetic (gemv_core.cuh, gemv_fp32_kernel; the fractional zero points in half).
template <class F, class XT, class YT>
void gemv(fp32_sums_t, const spqr_view<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1_fp32(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
// Exact half sums (gemv_exact.cuh) need integer values: SpQR's fractional zero points take fp32.
template <class F, class XT, class YT>
void gemv(exact_half_sums_t, const spqr_view<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    gemv(fp32_sums, w, x_dev, y_dev, stream);
}
// Y = X W^T for n tokens (x: n x cols, y: n x rows): launches of up to 16 tokens.
template <class F, class XT, class YT>
void gemm(const spqr_view<F>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    kernel::cuda::launch_gemv<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, n, stream);
}

// The same in fp32 sums: a fp32 GEMV per token (the tiled kernel has no outlier term).
template <class F, class XT, class YT>
void gemm(fp32_sums_t, const spqr_view<F>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    const auto a = kernel::cuda::make_adaptor(w);
    for (std::size_t t = 0; t < n; ++t) kernel::cuda::launch_gemv1_fp32(a, x_dev + t * w.cols, y_dev + t * w.rows, stream);
}

// A view of the copy of a blob at `to` (e.g. a device buffer) from a view of the blob at `from`:
// every section keeps its offset; rows, cols and nnz are kept.
template <class F>
spqr_view<F> rebase(spqr_view<F> v, const void* from, const void* to) {
    const auto moved = [&](const void* p) -> const std::uint8_t* {
        return p ? static_cast<const std::uint8_t*>(to) + (static_cast<const std::uint8_t*>(p) - static_cast<const std::uint8_t*>(from))
                 : nullptr;
    };
    v.codes = moved(v.codes);
    v.stats = reinterpret_cast<const typename F::stat_block*>(moved(v.stats));
    v.row_ptr = reinterpret_cast<const std::uint32_t*>(moved(v.row_ptr));
    v.index16 = reinterpret_cast<const std::uint16_t*>(moved(v.index16));
    v.index32 = reinterpret_cast<const std::uint32_t*>(moved(v.index32));
    v.values = reinterpret_cast<const std::uint16_t*>(moved(v.values));
    return v;
}

}  // namespace cuda
}  // namespace edgeq
