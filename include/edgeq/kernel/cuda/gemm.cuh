// Prompt GEMM Y = X W^T (X: n tokens x cols, Y: n x rows) for any adaptor of gemv_core.cuh.
// C++14, nvcc >= 10.2, sm_53 upwards.
//
// launch_gemm: up to 16 tokens the batched GEMV of gemv_core.cuh (it streams the weights once and
// is bound by memory like the GEMV, in its half2 arithmetic). Beyond, a tiled kernel: a block owns
// 64 rows x 64 tokens; per step of 64 columns, half its threads decode the 64 x 64 weight tile
// into shared memory (each weight is decoded once per 64 tokens) while the other half stage the
// activations, then every thread accumulates a 4 x 4 tile in fp32. launch_gemm_fp32 (the
// engine's prompts): the tiled kernel at every n, 64 rows x 16 tokens per block up to 16 tokens,
// so that a short prompt's sums are fp32 too. No tensor cores: sm_53 has none, and this is the
// path that must work there; mma.sync for sm_80+ is future work (docs/cuda.md).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "gemv_mma.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

constexpr int gemm_tile = 64;

// TN tokens per block (64, or 16 for short prompts), TN / 16 per thread.
template <class A, class XT, class YT, int TN>
__global__ void __launch_bounds__(256) gemm_tiled_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y, std::size_t n) {
    constexpr int T = gemm_tile, PT = TN / 16;
    static_assert(TN == 16 || TN == 64, "gemm_tiled_kernel: 16 or 64 tokens per block");
    __shared__ __half2 table[exact_table_storage<A>::size];
    __shared__ float ws[T][T];       // [column in step][row]: rows contiguous for the 4-row reads
    __shared__ float xs[T][TN + 1];  // [column in step][token]; +1 spreads the transposing stores
    if (A::table_size > 0) {
        fill_exact_table<A>(table);
        __syncthreads();
    }
    const std::size_t m0 = std::size_t(blockIdx.x) * T, n0 = std::size_t(blockIdx.y) * TN;
    const int tid = int(threadIdx.x), tm = tid % 16, tn = tid / 16;
    float acc[4][PT] = {};

    for (std::size_t k0 = 0; k0 < a.cols; k0 += T) {
        if (tid < 2 * T) {
            // One unit (32 weights) of one row, decoded to fp32: s * v - m.
            const int ml = tid % T, du = tid / T;
            const std::size_t r = m0 + std::size_t(ml) < a.rows ? m0 + std::size_t(ml) : a.rows - 1;
            const std::size_t u = k0 / 32 + std::size_t(du);
            typename A::raw raw;
            a.load(r, u, raw);
            float2 v[16];
            float s[A::groups], m;
            decode_f32(a, raw, table, v, s, m);
#pragma unroll
            for (int i = 0; i < 16; ++i) {
                const float2 f = v[i];
                const float sc = s[run_scale<A>(i / 4)];
                const int c = 32 * du + 2 * i;
                ws[c][ml] = fmaf(sc, f.x, -m);
                ws[c + 1][ml] = fmaf(sc, f.y, -m);
            }
        } else {
#pragma unroll
            for (int j = 0; j < TN / 8; ++j) {
                const int idx = (tid - 2 * T) + 2 * T * j;  // 16 groups of 4 columns x TN tokens
                const int tok = idx / 16, kq = 4 * (idx % 16);
                float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (n0 + std::size_t(tok) < n) v = load_x4(x + (n0 + std::size_t(tok)) * a.cols + k0 + std::size_t(kq));
                xs[kq][tok] = v.x;
                xs[kq + 1][tok] = v.y;
                xs[kq + 2][tok] = v.z;
                xs[kq + 3][tok] = v.w;
            }
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < T; ++k) {
            const float4 wv = *reinterpret_cast<const float4*>(&ws[k][4 * tm]);
            float xv[PT];
#pragma unroll
            for (int j = 0; j < PT; ++j) xv[j] = xs[k][PT * tn + j];
#pragma unroll
            for (int j = 0; j < PT; ++j) {
                acc[0][j] = fmaf(wv.x, xv[j], acc[0][j]);
                acc[1][j] = fmaf(wv.y, xv[j], acc[1][j]);
                acc[2][j] = fmaf(wv.z, xv[j], acc[2][j]);
                acc[3][j] = fmaf(wv.w, xv[j], acc[3][j]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < PT; ++j) {
        const std::size_t t = n0 + std::size_t(PT * tn + j);
        if (t >= n) continue;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const std::size_t r = m0 + std::size_t(4 * tm + i);
            if (r < a.rows) store_y(y + t * a.rows + r, acc[i][j]);
        }
    }
}

template <class A, class XT, class YT>
void launch_gemm_impl(const A& a, const XT* x, YT* y, std::size_t n, cudaStream_t stream, std::true_type) {
    static_assert(!A::row_extra, "the tiled GEMM has no per-row term (SpQR's outliers): such a format runs its GEMV per batch");
    if (a.cols % gemm_tile) throw error("cuda::gemm: the row length must be a multiple of 64");
    const unsigned row_blocks = unsigned((a.rows + gemm_tile - 1) / gemm_tile);
    if (n <= 16)
        gemm_tiled_kernel<A, XT, YT, 16><<<dim3(row_blocks, 1), 256, 0, stream>>>(a, x, y, n);
    else
        gemm_tiled_kernel<A, XT, YT, 64><<<dim3(row_blocks, unsigned((n + 63) / 64)), 256, 0, stream>>>(a, x, y, n);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::gemm: kernel launch failed: ") + cudaGetErrorString(e));
}
// Formats whose units gather columns from across a block (Q6_K) give the tiled kernel a view
// of the same bytes in units of consecutive columns (A::columns()).
template <class A, class XT, class YT>
void launch_gemm_impl(const A& a, const XT* x, YT* y, std::size_t n, cudaStream_t stream, std::false_type) {
    launch_gemm_impl(a.columns(), x, y, n, stream, std::true_type{});
}

template <class A, class XT, class YT>
void check_gemm_args(const A& a, const XT* x, const YT* y) {
    if (!x || !y) throw error("cuda::gemm: a null activation or output pointer");
    if (reinterpret_cast<std::uintptr_t>(x) % 16 || (a.cols * sizeof(XT)) % 16)
        throw error("cuda::gemm: x must be 16-byte aligned and rows of x a multiple of 16 bytes");
}

template <class A, class XT, class YT>
void launch_gemm(const A& a, const XT* x, YT* y, std::size_t n, cudaStream_t stream) {
    if (a.rows == 0 || n == 0) return;
    check_gemm_args(a, x, y);
    if (n <= 16) return launch_gemv<gemv_config<0>>(a, x, y, n, stream);
    launch_gemm_impl(a, x, y, n, stream, std::integral_constant<bool, A::contiguous>{});
}

// The same in fp32 sums for every n (edgeq::cuda::fp32_sums): the tiled kernel, 16 tokens per
// block up to 16; rows that are not a multiple of 64, a fp32 GEMV per token (gemv_fp32_kernel).
template <class A, class XT, class YT>
void launch_gemm_fp32(const A& a, const XT* x, YT* y, std::size_t n, cudaStream_t stream) {
    if (a.rows == 0 || n == 0) return;
    check_gemm_args(a, x, y);
    if (a.cols % gemm_tile) {
        for (std::size_t t = 0; t < n; ++t) launch_gemv1_accurate(a, x + t * a.cols, y + t * a.rows, stream);
        return;
    }
    launch_gemm_impl(a, x, y, n, stream, std::integral_constant<bool, A::contiguous>{});
}

}  // namespace cuda
}  // namespace kernel
}  // namespace edgeq
