// llama.cpp block formats at the generic SIMD level (xsimd): fp32 GEMV widens each block's integer
// codes to float once and accumulates each sub-block with fma, scaling per sub-block; GEMM decodes a
// tile of four rows once per call and reuses it for every token. The int8 path falls back to
// the scalar reference here; kernel/x86/ggml.hpp and kernel/neon/ggml.hpp escape per type.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "../../core/matrix_view.hpp"
#include "../../format/ggml/decode.hpp"
#include "../../format/ggml/format.hpp"
#include "../../policy/backend.hpp"
#include "../scalar/ggml.hpp"

namespace edgeq {
namespace kernel {
namespace ggml_simd {

// sum_j v[j] * x[j] over n floats (n a multiple of the lane count), v aligned.
template <class A>
xsimd::batch<float, A> dot_acc(const float* v, const float* x, std::size_t n, xsimd::batch<float, A> acc) {
    using f32 = xsimd::batch<float, A>;
    for (std::size_t j = 0; j < n; j += f32::size) acc = xsimd::fma(f32::load_aligned(v + j), f32::load_unaligned(x + j), acc);
    return acc;
}

// fp32 activations: the codes of a block widened to float once (straight from the bytes), each
// sub-block summed against x with fma, then scaled (and its offset applied through the
// sub-block's sum of x, xs). kernel/x86/ggml.hpp has a faster path for the 32-weight blocks.
template <class A, class B>
float vec_dot_f32(const B* w, const float* x, const float* xs, std::size_t nb) {
    using f32 = xsimd::batch<float, A>;
    constexpr int W = B::weights, len = ggml_ref::sub_length<B>::value, ns = W / len, L = int(f32::size);
    alignas(64) float v[W];
    float dsub[16], msub[16];
    f32 acc(0.0f);
    float mins = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        ggml_ref::codes(w[i], v);
        ggml_ref::sub_scales(w[i], dsub, msub);
        const float* xb = x + i * W;
        for (int k = 0; k < ns; ++k) {
            f32 s(0.0f);
            for (int j = k * len; j < (k + 1) * len; j += L) s = xsimd::fma(f32::load_aligned(v + j), f32::load_unaligned(xb + j), s);
            acc = xsimd::fma(f32(dsub[k]), s, acc);
        }
        if (ggml_ref::has_min<B>::value)
            for (int k = 0; k < ns; ++k) mins += msub[k] * xs[i * ns + std::size_t(k)];
    }
    return xsimd::hadd(acc) + mins;
}

// Sums of x over each sub-block of Len weights.
template <int Len>
std::vector<float> sub_sums(const float* x, std::size_t cols) {
    std::vector<float> s(cols / Len, 0.0f);
    for (std::size_t b = 0; b < cols / Len; ++b)
        for (int j = 0; j < Len; ++j) s[b] += x[b * Len + std::size_t(j)];
    return s;
}

}  // namespace ggml_simd

template <class A, class B>
void dequantize_row(backend::simd<A>, const qview<ggml_format<B>>& w, std::size_t r, float* out) {
    ggml::dequantize_row(w.row_blocks(r), out, w.cols);
}

template <class A, class B>
void gemv_rows(backend::simd<A>, const qview<ggml_format<B>>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    const std::vector<float> xs = ggml_simd::sub_sums<ggml_ref::sub_length<B>::value>(x, w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = ggml_simd::vec_dot_f32<A>(w.row_blocks(r), x, xs.data(), nb);
}

template <class A, class B>
void gemv_q8_rows(backend::simd<A>, const qview<ggml_format<B>>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    gemv_q8_rows(backend::scalar{}, w, x, y, r0, r1);
}
template <class A, class B>
void gemv_q8_rows(backend::simd<A>, const qview<ggml_format<B>>& w, const ggml::block_q8_K* x, float* y, std::size_t r0,
                  std::size_t r1) {
    gemv_q8_rows(backend::scalar{}, w, x, y, r0, r1);
}

// Prompt processing. The tag is kept whole (as in simd/grouped.hpp) so that this beats the
// grouped formats' generic gemm_rows for every SIMD backend.
template <class Tag, class B, class A = typename Tag::arch>
void gemm_rows(Tag, const qview<ggml_format<B>>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t R = 4;
    const std::size_t cols = w.cols;
    std::vector<float, xsimd::aligned_allocator<float>> tile(R * cols);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        for (std::size_t i = 0; i < nr; ++i) ggml::dequantize_row(w.row_blocks(rb + i), tile.data() + i * cols, cols);
        for (std::size_t t = 0; t < x.rows; ++t) {
            const float* xt = x.row(t);
            f32 a[R] = {f32(0.0f), f32(0.0f), f32(0.0f), f32(0.0f)};
            for (std::size_t c = 0; c < cols; c += f32::size) {
                const f32 u = f32::load_unaligned(xt + c);
                for (std::size_t i = 0; i < nr; ++i) a[i] = xsimd::fma(f32::load_aligned(tile.data() + i * cols + c), u, a[i]);
            }
            for (std::size_t i = 0; i < nr; ++i) y(t, rb + i) = xsimd::hadd(a[i]);
        }
    }
}

}  // namespace kernel
}  // namespace edgeq
