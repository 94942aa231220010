// Grouped-format kernels written once over xsimd::batch<float, Arch>: codes are unpacked with
// SWAR, widened to float lanes (kernel::widen, the per-architecture escape) and accumulated
// with fma per group; the zero point is applied once per group through the group's sum of x.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "../../core/matrix_view.hpp"
#include "../../format/qmatrix.hpp"
#include "../../policy/backend.hpp"
#include "../scalar/grouped.hpp"
#include "unpack.hpp"
#include "widen.hpp"

namespace edgeq {
namespace kernel {
namespace detail {

// The float value of every code, built once per kernel call: a code-book's value() is a
// function, not a table, so that device code can use it too.
template <class F>
struct code_table {
    float v[1 << F::bits];
    code_table() {
        for (int q = 0; q < (1 << F::bits); ++q) v[q] = F::code_value(q);
    }
};

// The 32 code values v(q) of chunk c of row r as floats, batch by batch.
template <class A, class F>
struct chunk_values {
    using f32 = xsimd::batch<float, A>;
    static constexpr int lanes = int(f32::size);
    static constexpr int n = chunk_weights / lanes;
    f32 v[n];

    chunk_values(const qview<F>& w, std::size_t r, std::size_t c, const code_table<F>& table) {
        alignas(64) std::uint8_t codes[chunk_weights];
        unpack32<F::bits>(w.row_codes(r) + c / chunk_weights * plane_split<F::bits>::chunk_bytes, codes);
        load(codes, table, std::integral_constant<bool, F::is_uniform>{});
    }

   private:
    void load(const std::uint8_t* codes, const code_table<F>&, std::true_type) {
        for (int k = 0; k < n; ++k) v[k] = widen<A>::u8_to_f32(codes + k * lanes);
    }
    void load(const std::uint8_t* codes, const code_table<F>& table, std::false_type) {  // a code-book
        alignas(64) float vals[chunk_weights];
        for (int i = 0; i < chunk_weights; ++i) vals[i] = table.v[codes[i]];
        for (int k = 0; k < n; ++k) v[k] = f32::load_aligned(vals + k * lanes);
    }
};

// Sum of x over each group of the row.
inline std::vector<float> group_sums(const float* x, std::size_t cols, std::size_t g) {
    std::vector<float> s(cols / g, 0.0f);
    for (std::size_t c = 0; c < cols; ++c) s[c / g] += x[c];
    return s;
}

}  // namespace detail

template <class A, class F>
void dequantize_row(backend::simd<A>, const qview<F>& w, std::size_t r, float* out) {
    using f32 = xsimd::batch<float, A>;
    using vals = detail::chunk_values<A, F>;
    const std::size_t g = w.group_size();
    const detail::code_table<F> table;
    for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
        const vals v(w, r, c, table);
        const f32 d(w.scale(r, c / g)), dz(w.scale(r, c / g) * float(w.zero(r, c / g)));
        for (int k = 0; k < vals::n; ++k) xsimd::fms(d, v.v[k], dz).store_unaligned(out + c + k * vals::lanes);
    }
}

template <class A, class F>
void gemv_rows(backend::simd<A>, const qview<F>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    using vals = detail::chunk_values<A, F>;
    const std::size_t g = w.group_size(), ng = w.groups_per_row();
    const std::vector<float> xs = detail::group_sums(x, w.cols, g);
    const detail::code_table<F> table;
    for (std::size_t r = r0; r < r1; ++r) {
        f32 total(0.0f);
        float correction = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            f32 acc(0.0f);
            for (std::size_t c = j * g; c < (j + 1) * g; c += chunk_weights) {
                const vals v(w, r, c, table);
                for (int k = 0; k < vals::n; ++k) acc = xsimd::fma(v.v[k], f32::load_unaligned(x + c + k * vals::lanes), acc);
            }
            const float d = w.scale(r, j);
            total = xsimd::fma(f32(d), acc, total);
            correction += d * float(w.zero(r, j)) * xs[j];
        }
        y[r] = xsimd::hadd(total) - correction;
    }
}

// Prompt processing: dequantize a tile of rows once, then reuse it for every token, two
// tokens by four rows at a time. The tag is kept whole (B, not simd<A>) so that the tile is
// decoded by the most specific dequantize_row the backend has.
template <class B, class F, class A = typename B::arch>
void gemm_rows(B, const qview<F>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t R = 4, L = f32::size;
    const std::size_t cols = w.cols;
    std::vector<float, xsimd::aligned_allocator<float>> tile(R * cols);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        for (std::size_t i = 0; i < nr; ++i) dequantize_row(B{}, w, rb + i, tile.data() + i * cols);
        for (std::size_t i = nr; i < R; ++i) std::fill(tile.begin() + i * cols, tile.begin() + (i + 1) * cols, 0.0f);
        std::size_t t = 0;
        for (; t + 2 <= x.rows; t += 2) {
            f32 a[2][R];
            for (auto& row : a)
                for (f32& v : row) v = f32(0.0f);
            const float* x0 = x.row(t);
            const float* x1 = x.row(t + 1);
            for (std::size_t c = 0; c < cols; c += L) {
                const f32 u0 = f32::load_unaligned(x0 + c), u1 = f32::load_unaligned(x1 + c);
                for (std::size_t i = 0; i < R; ++i) {
                    const f32 wv = f32::load_aligned(tile.data() + i * cols + c);
                    a[0][i] = xsimd::fma(wv, u0, a[0][i]);
                    a[1][i] = xsimd::fma(wv, u1, a[1][i]);
                }
            }
            for (std::size_t i = 0; i < nr; ++i) {
                y(t, rb + i) = xsimd::hadd(a[0][i]);
                y(t + 1, rb + i) = xsimd::hadd(a[1][i]);
            }
        }
        for (; t < x.rows; ++t) {
            for (std::size_t i = 0; i < nr; ++i) {
                f32 a(0.0f);
                for (std::size_t c = 0; c < cols; c += L)
                    a = xsimd::fma(f32::load_aligned(tile.data() + i * cols + c), f32::load_unaligned(x.row(t) + c), a);
                y(t, rb + i) = xsimd::hadd(a);
            }
        }
    }
}

}  // namespace kernel
}  // namespace edgeq
