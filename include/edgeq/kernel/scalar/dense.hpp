// The reference kernels of the dense formats (format/dense.hpp): plain loops, one float
// accumulator per output, columns in order.
#pragma once
#include <cstddef>

#include "../../core/matrix_view.hpp"
#include "../../format/dense.hpp"
#include "../../policy/backend.hpp"

namespace edgeq {
namespace kernel {

template <class E>
void dequantize_row(backend::scalar, const dense_view<E>& w, std::size_t r, float* out) {
    const typename E::storage* p = w.row(r);
    for (std::size_t c = 0; c < w.cols; ++c) out[c] = E::to_float(p[c]);
}

template <class E>
void gemv_rows(backend::scalar, const dense_view<E>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
        const typename E::storage* p = w.row(r);
        float acc = 0.0f;
        for (std::size_t c = 0; c < w.cols; ++c) acc += E::to_float(p[c]) * x[c];
        y[r] = acc;
    }
}

template <class E>
void gemm_rows(backend::scalar, const dense_view<E>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    for (std::size_t t = 0; t < x.rows; ++t) gemv_rows(backend::scalar{}, w, x.row(t), y.row(t), r0, r1);
}

}  // namespace kernel
}  // namespace edgeq
