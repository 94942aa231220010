// The kernel front: dequantize a row, GEMV (fp32 or int8 activations) and GEMM, for any format
// and any host backend, split over rows on a thread pool. Each call resolves to the most
// specific overload for the backend tag (policy/backend.hpp), once per call, never per element.
#pragma once
#include <cstddef>
#include <vector>

#include "core/error.hpp"
#include "core/matrix_view.hpp"
#include "core/thread_pool.hpp"
#include "kernel/activation.hpp"
#include "kernel/backends.hpp"
#include "kernel/scalar/grouped.hpp"
#include "kernel/simd/grouped.hpp"
#include "kernel/x86/grouped_q8.hpp"
#include "kernel/neon/grouped_q8.hpp"
#include "kernel/scalar/ggml.hpp"
#include "kernel/simd/ggml.hpp"
#include "kernel/x86/ggml.hpp"
#include "kernel/neon/ggml.hpp"

namespace edgeq {

constexpr std::size_t rows_per_task = 16;

template <class Backend = backend::best, class F>
void dequantize_row(const qview<F>& w, std::size_t r, float* out) {
    kernel::dequantize_row(Backend{}, w, r, out);
}

// y = W x, x of length cols, y of length rows.
template <class Backend = backend::best, class F>
void gemv(const qview<F>& w, const float* x, float* y, thread_pool& pool = default_pool()) {
    pool.parallel_for(w.rows, rows_per_task, [&](std::size_t r0, std::size_t r1) { kernel::gemv_rows(Backend{}, w, x, y, r0, r1); });
}

// y = W x with x already quantized to int8 blocks by quantize_activations: activation_of<F>::type
// is q8_block (cols / 32 of them) except for llama.cpp's k-quants and IQ4_XS, which take
// ggml::block_q8_K (cols / 256).
template <class Backend = backend::best, class F>
void gemv_q8(const qview<F>& w, const typename activation_of<F>::type* x, float* y, thread_pool& pool = default_pool()) {
    pool.parallel_for(w.rows, rows_per_task, [&](std::size_t r0, std::size_t r1) { kernel::gemv_q8_rows(Backend{}, w, x, y, r0, r1); });
}

// Y = X W^T with the tokens rows of X quantized by quantize_activations, one row after another
// (cols / activation_block_weights<F>() blocks each); Y is tokens x rows. Each task takes a band
// of rows and runs every token over it while the band's weights are still in cache.
template <class Backend = backend::best, class F>
void gemm_q8(const qview<F>& w, const typename activation_of<F>::type* x, std::size_t tokens, matrix_view<float> y,
             thread_pool& pool = default_pool()) {
    if (y.cols != w.rows || y.rows != tokens)
        throw error("gemm_q8: Y is " + std::to_string(y.rows) + " x " + std::to_string(y.cols) + ", not " +
                    std::to_string(tokens) + " x " + std::to_string(w.rows));
    const std::size_t per_row = w.cols / activation_block_weights<F>();
    pool.parallel_for(w.rows, rows_per_task, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t t = 0; t < tokens; ++t) kernel::gemv_q8_rows(Backend{}, w, x + t * per_row, y.row(t), r0, r1);
    });
}

// Y = X W^T: row t of Y is W times row t of X. X is tokens x cols, Y tokens x rows.
template <class Backend = backend::best, class F>
void gemm(const qview<F>& w, matrix_view<const float> x, matrix_view<float> y, thread_pool& pool = default_pool()) {
    if (x.cols != w.cols || y.cols != w.rows || y.rows != x.rows)
        throw error("gemm: shapes do not match (W is " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ")");
    pool.parallel_for(w.rows, rows_per_task, [&](std::size_t r0, std::size_t r1) { kernel::gemm_rows(Backend{}, w, x, y, r0, r1); });
}

}  // namespace edgeq
