// The reference kernels for the grouped formats: plain loops, the meaning every other backend
// is tested against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../../core/matrix_view.hpp"
#include "../../format/qmatrix.hpp"
#include "../../policy/backend.hpp"
#include "../activation.hpp"

namespace edgeq {
namespace kernel {

template <class F>
void dequantize_row(backend::scalar, const qview<F>& w, std::size_t r, float* out) {
    std::uint8_t codes[chunk_weights];
    const std::size_t g = w.group_size();
    for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
        unpack_codes(w, r, c, chunk_weights, codes);
        const float d = w.scale(r, c / g), z = float(w.zero(r, c / g));
        for (int i = 0; i < chunk_weights; ++i) out[c + i] = d * (F::code_value(codes[i]) - z);
    }
}

// y[r] = sum_c w[r][c] x[c] for r in [r0, r1). Each group sums v(q) * x in float, then scales.
template <class F>
void gemv_rows(backend::scalar, const qview<F>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    std::uint8_t codes[chunk_weights];
    const std::size_t g = w.group_size(), ng = w.groups_per_row();
    for (std::size_t r = r0; r < r1; ++r) {
        float acc = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            float s = 0.0f, sx = 0.0f;
            for (std::size_t c = j * g; c < (j + 1) * g; c += chunk_weights) {
                unpack_codes(w, r, c, chunk_weights, codes);
                for (int i = 0; i < chunk_weights; ++i) s += F::code_value(codes[i]) * x[c + i], sx += x[c + i];
            }
            acc += w.scale(r, j) * (s - float(w.zero(r, j)) * sx);
        }
        y[r] = acc;
    }
}

// The same against int8 activations: integer sums per 32-chunk. NF4 uses its int8 code-book.
template <class F>
void gemv_q8_rows(backend::scalar, const qview<F>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    std::uint8_t codes[chunk_weights];
    const std::size_t g = w.group_size(), ng = w.groups_per_row();
    for (std::size_t r = r0; r < r1; ++r) {
        float acc = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            float s = 0.0f, sx = 0.0f;
            for (std::size_t c = j * g; c < (j + 1) * g; c += chunk_weights) {
                unpack_codes(w, r, c, chunk_weights, codes);
                const q8_block& b = x[c / chunk_weights];
                std::int32_t isum = 0;
                for (int i = 0; i < chunk_weights; ++i)
                    isum += F::codebook::int_value(codes[i]) * int(b.qs[i]);
                s += b.d * float(isum);
                sx += b.s;
            }
            acc += w.scale(r, j) * F::codebook::int_unit * (s - float(w.zero(r, j)) * sx);
        }
        y[r] = acc;
    }
}

// Y[t][r] = sum_c w[r][c] X[t][c] for every row t of X and r in [r0, r1).
template <class F>
void gemm_rows(backend::scalar, const qview<F>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    for (std::size_t t = 0; t < x.rows; ++t) gemv_rows(backend::scalar{}, w, x.row(t), y.row(t), r0, r1);
}

}  // namespace kernel
}  // namespace edgeq
