// A packed, register-blocked GEMM core (the GotoBLAS/BLIS loop nest), float or double, shared by
// the dense prompt path (kernel/simd/dense.hpp), the Hessian accumulator, GPTQ's lazy-batch
// update and the Cholesky factor (algo/linalg.hpp), and the attention of prompt and calibration
// batches (engine/llama.hpp).
//
//   C (M x N) = A (M x K) B (K x N)
//   for k0 in K by kc:            a slice of K: every partial sum below is over kc terms
//     for j0 in N by nc:          pack B's slice, nr columns per strip:  [strip][k][nr]
//       for i0 in M by mc:        pack A's slice, mr rows per strip:     [strip][k][mr]
//         for jr, ir:             micro-kernel: an mr x nr tile in registers over kc
//
// The caller supplies how A and B are read (pack_a / pack_b, so W^T, X^T or an f16 matrix are
// packed in place without a transposed copy) and what happens to each tile's kc-term partial sums
// (merge: store, add, or add into float64), so one kernel serves all three. The micro-kernel keeps
// 6 rows x 2 vectors of accumulators (12 of AVX2's 16 registers, 12 of NEON's 32): per k it loads
// two vectors of B, broadcasts six values of A and issues twelve fmas. Sizes: kc = 256 keeps a
// B micro-panel (kc x nr) in L1 and an A block (mc x kc) in L2.
//
// Determinism: every element of C is the fma chain of its kc terms in k order, then the slices
// added in k order by merge. The tiling over M and N (and so the thread split of whoever calls
// this on parts of C) never changes a result. Results differ from a GEMV's single chain by float
// rounding only (tests/test_kernels.cpp names the budget).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "../policy/backend.hpp"

namespace edgeq {
namespace kernel {
namespace packed {

constexpr std::size_t mr = 6;     // rows of A per micro-tile
constexpr std::size_t kc = 256;   // K slice: a B micro-panel (kc x nr) fits L1, an A block L2
constexpr std::size_t mc = 96;    // rows of A packed at a time (mc x kc floats: 96 KiB)
constexpr std::size_t nc = 512;   // columns of B packed at a time (kc x nc floats: 512 KiB)

template <class T>
using buffer = std::vector<T, xsimd::aligned_allocator<T>>;

// Columns of B per micro-tile: two vectors (16 floats or 8 doubles on AVX2).
template <class T>
constexpr std::size_t tile_nr(backend::scalar) {
    return 64 / sizeof(T);
}
template <class T, class A>
constexpr std::size_t tile_nr(backend::simd<A>) {
    return 2 * xsimd::batch<T, A>::size;
}

// acc[i * nr + j] = sum_k a[k * mr + i] * b[k * nr + j], k in order.
template <class T>
inline void micro_tile(backend::scalar, std::size_t kn, const T* a, const T* b, T* acc) {
    constexpr std::size_t nr = 64 / sizeof(T);
    T c[mr][nr] = {};
    for (std::size_t k = 0; k < kn; ++k, a += mr, b += nr)
        for (std::size_t i = 0; i < mr; ++i)
            for (std::size_t j = 0; j < nr; ++j) c[i][j] += a[i] * b[j];
    for (std::size_t i = 0; i < mr; ++i)
        for (std::size_t j = 0; j < nr; ++j) acc[i * nr + j] = c[i][j];
}

template <class T, class A>
inline void micro_tile(backend::simd<A>, std::size_t kn, const T* a, const T* b, T* acc) {
    using vec = xsimd::batch<T, A>;
    constexpr std::size_t L = vec::size;
    // Named accumulators: an array of batches may be kept on the stack.
    vec c00(T(0)), c01(T(0)), c10(T(0)), c11(T(0)), c20(T(0)), c21(T(0)), c30(T(0)), c31(T(0)), c40(T(0)), c41(T(0)),
        c50(T(0)), c51(T(0));
    for (std::size_t k = 0; k < kn; ++k, a += mr, b += 2 * L) {
        const vec b0 = vec::load_aligned(b), b1 = vec::load_aligned(b + L);
        vec s(a[0]);
        c00 = xsimd::fma(s, b0, c00), c01 = xsimd::fma(s, b1, c01);
        s = vec(a[1]);
        c10 = xsimd::fma(s, b0, c10), c11 = xsimd::fma(s, b1, c11);
        s = vec(a[2]);
        c20 = xsimd::fma(s, b0, c20), c21 = xsimd::fma(s, b1, c21);
        s = vec(a[3]);
        c30 = xsimd::fma(s, b0, c30), c31 = xsimd::fma(s, b1, c31);
        s = vec(a[4]);
        c40 = xsimd::fma(s, b0, c40), c41 = xsimd::fma(s, b1, c41);
        s = vec(a[5]);
        c50 = xsimd::fma(s, b0, c50), c51 = xsimd::fma(s, b1, c51);
    }
    c00.store_aligned(acc), c01.store_aligned(acc + L);
    c10.store_aligned(acc + 2 * L), c11.store_aligned(acc + 3 * L);
    c20.store_aligned(acc + 4 * L), c21.store_aligned(acc + 5 * L);
    c30.store_aligned(acc + 6 * L), c31.store_aligned(acc + 7 * L);
    c40.store_aligned(acc + 8 * L), c41.store_aligned(acc + 9 * L);
    c50.store_aligned(acc + 10 * L), c51.store_aligned(acc + 11 * L);
}

// The loop nest above, single-threaded (callers split M or N over their pool).
//   pack_a(i0, m, k0, kn, dst): rows i0 .. i0+m of A, columns k0 .. k0+kn, as ceil(m / mr)
//       strips of kn x mr (dst[s * kn * mr + k * mr + i]); rows past m zero.
//   pack_b(j0, n, k0, kn, dst): columns j0 .. j0+n of B, rows k0 .. k0+kn, as ceil(n / nr)
//       strips of kn x nr (dst[s * kn * nr + k * nr + j]); columns past n zero.
//   merge(i, j, m, n, first, tile): the m x n (<= mr x nr) tile at (i, j) summed over one K
//       slice (tile row stride nr); first: the slice is the first, C holds nothing yet.
//   skip(i, j): true for a micro-tile at (i, j) that C does not need (a triangle's far side).
template <class T, class Backend, class PackA, class PackB, class Merge, class Skip>
void gemm(Backend, std::size_t M, std::size_t N, std::size_t K, PackA&& pack_a, PackB&& pack_b, Merge&& merge, Skip&& skip) {
    constexpr std::size_t nr = tile_nr<T>(Backend{});
    if (M == 0 || N == 0 || K == 0) return;
    const std::size_t mcap = std::min(mc, (M + mr - 1) / mr * mr), ncap = std::min(nc, (N + nr - 1) / nr * nr);
    buffer<T> ap(mcap * std::min(kc, K)), bp(ncap * std::min(kc, K));
    alignas(64) T tile[mr * nr];
    for (std::size_t k0 = 0; k0 < K; k0 += kc) {
        const std::size_t kn = std::min(kc, K - k0);
        for (std::size_t j0 = 0; j0 < N; j0 += nc) {
            const std::size_t nn = std::min(nc, N - j0);
            bool packed_b = false;
            for (std::size_t i0 = 0; i0 < M; i0 += mc) {
                const std::size_t mm = std::min(mc, M - i0);
                if (skip(i0 + (mm - 1) / mr * mr, j0)) continue;  // skip is monotone: the block needs nothing here
                if (!packed_b) pack_b(j0, nn, k0, kn, bp.data()), packed_b = true;
                pack_a(i0, mm, k0, kn, ap.data());
                for (std::size_t jr = 0; jr < nn; jr += nr)
                    for (std::size_t ir = 0; ir < mm; ir += mr) {
                        if (skip(i0 + ir, j0 + jr)) continue;
                        micro_tile<T>(Backend{}, kn, ap.data() + ir * kn, bp.data() + jr * kn, tile);
                        merge(i0 + ir, j0 + jr, std::min(mr, mm - ir), std::min(nr, nn - jr), k0 == 0, tile);
                    }
            }
        }
    }
}

template <class T, class Backend, class PackA, class PackB, class Merge>
void gemm(Backend b, std::size_t M, std::size_t N, std::size_t K, PackA&& pack_a, PackB&& pack_b, Merge&& merge) {
    gemm<T>(b, M, N, K, pack_a, pack_b, merge, [](std::size_t, std::size_t) { return false; });
}

// Packing helpers. A row-major block read "as rows" (A's rows are the matrix's rows: X for
// X W^T) or "as columns" (A's rows are the matrix's columns: X^T for X^T X); the same two for B.
// p(r) points at row r of the source matrix.
template <class T, class RowPtr>
void pack_rows_as_strips(std::size_t strip, std::size_t r0, std::size_t m, std::size_t k0, std::size_t kn, RowPtr&& p,
                         T* dst) {
    for (std::size_t s = 0; s < m; s += strip, dst += kn * strip)
        for (std::size_t i = 0; i < strip; ++i) {
            if (s + i < m) {
                const T* src = p(r0 + s + i) + k0;
                for (std::size_t k = 0; k < kn; ++k) dst[k * strip + i] = src[k];
            } else {
                for (std::size_t k = 0; k < kn; ++k) dst[k * strip + i] = T(0);
            }
        }
}
// Element (k, c) of the strip is row k of the source, column c0 + c: a plain copy per row.
template <class T, class RowPtr>
void pack_cols_as_strips(std::size_t strip, std::size_t c0, std::size_t n, std::size_t k0, std::size_t kn, RowPtr&& p,
                         T* dst) {
    for (std::size_t s = 0; s < n; s += strip, dst += kn * strip) {
        const std::size_t w = std::min(strip, n - s);
        for (std::size_t k = 0; k < kn; ++k) {
            const T* src = p(k0 + k) + c0 + s;
            T* d = dst + k * strip;
            for (std::size_t c = 0; c < w; ++c) d[c] = src[c];
            for (std::size_t c = w; c < strip; ++c) d[c] = T(0);
        }
    }
}

}  // namespace packed
}  // namespace kernel
}  // namespace edgeq
