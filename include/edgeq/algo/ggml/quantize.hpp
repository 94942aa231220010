// Reference quantizers for llama.cpp's block types: for the same float32 input they write the
// same bytes as ggml's ggml_quantize_chunk, with and without an importance matrix (tested
// against digests of ggml's own output, tests/data/ggml/quantize_digests.txt).
//
//     ggml::quantize_row<Block>(x, y, n, importance)   // one row of n weights; importance: n
//                                                      // floats (an imatrix's E[x^2]) or null
//     quantize<scheme<q4_k>>(w, opt)                    // a whole matrix; opt.importance per column
//
// Without importance, ggml uses its reference fits for Q4_0 ... Q6_K and the search with
// weights x^2 for IQ4_NL / IQ4_XS; with importance, every type but Q8_0 searches scales
// against the weighted error. This file does what ggml_quantize_chunk does in both cases.
#pragma once
#include <cstddef>
#include <string>

#include "../../core/error.hpp"
#include "../../core/matrix_view.hpp"
#include "../../core/thread_pool.hpp"
#include "../../format/ggml/format.hpp"
#include "../../format/qmatrix.hpp"
#include "../rtn.hpp"
#include "iq4.hpp"
#include "kquants.hpp"
#include "legacy.hpp"

namespace edgeq {
namespace ggml {

// Quantizes one row of n weights (a multiple of Block::weights) into n / Block::weights blocks.
// importance, when given, holds one non-negative weight per column of the row. x must be finite
// (quantize<> checks; this does not, as ggml does not).
template <class Block>
void quantize_row(const float* x, Block* y, std::size_t n, const float* importance = nullptr) {
    if (n % std::size_t(Block::weights))
        throw error(std::string("ggml::quantize_row<") + Block::name() + ">: the row length " + std::to_string(n) +
                    " is not a multiple of the " + std::to_string(Block::weights) + "-weight block");
    detail::quantize_row_impl(x, y, n, importance);
}

}  // namespace ggml

// quantize<scheme<q4_k>>(...) and friends: rows in parallel (each row is independent, as in
// ggml), NaN/Inf refused with its position, shapes checked by qmatrix. opt.fit (the clipping
// search of the grouped formats) does not apply: each ggml type has its own scale search.
template <class Block>
struct format_quantizer<ggml_format<Block>> {
    using format = ggml_format<Block>;
    static qmatrix<format> run(matrix_view<const float> w, const quant_options& opt, thread_pool& pool) {
        check_finite(w);
        qmatrix<format> m(w.rows, w.cols);
        pool.parallel_for(w.rows, 1, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r)
                ggml::detail::quantize_row_impl(w.row(r), reinterpret_cast<Block*>(m.row_codes(r)), w.cols,
                                                opt.importance);
        });
        return m;
    }
};

}  // namespace edgeq
