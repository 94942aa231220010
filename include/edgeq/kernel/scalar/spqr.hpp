// The reference kernels of SpQR (format/spqr.hpp): plain loops over the dense part, then the
// row's outliers. Every other backend is tested against these.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../../core/bitpack.hpp"
#include "../../core/matrix_view.hpp"
#include "../../format/spqr.hpp"
#include "../../policy/backend.hpp"

namespace edgeq {
namespace kernel {
namespace detail {

// sum over row r's outliers of value * x[col]: the sparse half of y = D x + S x.
template <class F>
inline float spqr_sparse_dot(const spqr_view<F>& w, std::size_t r, const float* x) {
    float s = 0.0f;
    const std::size_t k0 = w.row_ptr[r], k1 = w.row_ptr[r + 1];
    if (w.index16)
        for (std::size_t k = k0; k < k1; ++k) s += half_to_float(w.values[k]) * x[w.index16[k]];
    else
        for (std::size_t k = k0; k < k1; ++k) s += half_to_float(w.values[k]) * x[w.index32[k]];
    return s;
}

// out[col] += value for row r's outliers.
template <class F>
inline void spqr_sparse_add(const spqr_view<F>& w, std::size_t r, float* out) {
    for (std::size_t k = w.row_ptr[r]; k < w.row_ptr[r + 1]; ++k) out[w.outlier_col(k)] += w.outlier_value(k);
}

}  // namespace detail

template <class F>
void dequantize_row(backend::scalar, const spqr_view<F>& w, std::size_t r, float* out) {
    std::uint8_t codes[chunk_weights];
    const std::uint8_t* row = w.row_codes(r);
    for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
        unpack_chunk<F::bits>(row + c / chunk_weights * plane_split<F::bits>::chunk_bytes, codes);
        for (int i = 0; i < chunk_weights; ++i) {
            const std::size_t j = (c + i) / F::group;
            out[c + i] = w.scale(r, j) * (float(codes[i]) - w.zero(r, j));
        }
    }
    detail::spqr_sparse_add(w, r, out);
}

// y[r] = sum_c w[r][c] x[c]: per group d (sum q x - z sum x), then the outliers.
template <class F>
void gemv_rows(backend::scalar, const spqr_view<F>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    std::uint8_t codes[chunk_weights];
    const std::size_t ng = w.groups_per_row();
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* row = w.row_codes(r);
        float acc = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            float s = 0.0f, sx = 0.0f;
            for (std::size_t c = j * F::group; c < (j + 1) * F::group; ++c) {
                if (c % chunk_weights == 0 || c == j * F::group)
                    unpack_chunk<F::bits>(row + c / chunk_weights * plane_split<F::bits>::chunk_bytes, codes);
                s += float(codes[c % chunk_weights]) * x[c], sx += x[c];
            }
            acc += w.scale(r, j) * (s - w.zero(r, j) * sx);
        }
        y[r] = acc + detail::spqr_sparse_dot(w, r, x);
    }
}

template <class F>
void gemm_rows(backend::scalar, const spqr_view<F>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    for (std::size_t t = 0; t < x.rows; ++t) gemv_rows(backend::scalar{}, w, x.row(t), y.row(t), r0, r1);
}

}  // namespace kernel
}  // namespace edgeq
