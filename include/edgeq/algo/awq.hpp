// AWQ (Lin et al., 2023): activation-aware scaling. Input channels that carry large activations
// matter more, so they are scaled up before quantization, W' = W diag(s), and the inverse scale is
// folded into whatever produces the layer's input (an RMSNorm's weight, or the rows of the
// previous linear), which leaves the float model unchanged. The search follows the reference
// (mit-han-lab/llm-awq, auto_scale):
//     s = mean|x|^alpha, normalised by sqrt(max s * min s), clamped below at 1e-4;
//     alpha on a grid of 20 in [0, 1) (0, 0.05, ..., 0.95);
//     keep the alpha with the least ||X W^T - X (Q(W diag(s)) diag(s)^-1)^T||_F^2
// on the calibration tokens X. alpha = 0 is s = 1, plain round-to-nearest, so the result is never
// worse than RTN on X. The final matrix is W diag(s) quantized with the format's RTN, with the
// clip search (AWQ's auto_clip, here group_fit's, weighted by E[(x / s)^2]) when the format has
// one; llama.cpp types take the same weights through their imatrix path.
//
//     auto r = awq_quantize<format_of<S>>(w, x);      // r.q stores W diag(r.scales)
//     fold_awq_into_norm(norm_weight, r.scales);     // or fold_awq_into_rows(prev_linear, ...)
//
// The search quantizes through group_codec<Format> (algo/group_codec.hpp), so it works with every
// grouped format and every llama.cpp type.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "../format/qmatrix.hpp"
#include "ggml/codes.hpp"
#include "ggml/quantize.hpp"
#include "group_codec.hpp"
#include "linalg.hpp"
#include "rtn.hpp"

namespace edgeq {

struct awq_options {
    int grid = 20;                  // alphas tried: i / grid for i in [0, grid)
    std::size_t max_tokens = 4096;  // calibration rows used by the search (the first ones)
    bool clip_search = true;        // the final fit searches, weighted by E[(x / s)^2] (grouped
                                    // formats: group_fit's clip search; llama.cpp: imatrix path)
    quant_options quant;            // fit options of the search and the final quantization
};

template <class Format>
struct awq_result {
    std::vector<float> scales;  // s per input column; q holds W diag(s)
    float alpha = 0.0f;
    double error = 0.0;         // ||X (W - Q(W diag s) diag(s)^-1)^T||_F^2 at alpha
    double error_rtn = 0.0;     // the same at alpha = 0 (round to nearest)
    qmatrix<Format> q;
};

// s = m^alpha / sqrt(max * min), clamped below at 1e-4 (m: mean |x| per column).
inline std::vector<float> awq_scales(const std::vector<float>& mean_abs, float alpha) {
    std::vector<float> s(mean_abs.size());
    float hi = 0.0f, lo = std::numeric_limits<float>::max();
    for (std::size_t c = 0; c < s.size(); ++c) {
        s[c] = std::max(std::pow(std::max(mean_abs[c], 0.0f), alpha), 1e-4f);
        hi = std::max(hi, s[c]), lo = std::min(lo, s[c]);
    }
    const float norm = std::sqrt(hi * lo);
    for (float& v : s) v /= norm;
    return s;
}

// W <- W diag(s): the matrix AWQ quantizes.
inline void scale_columns(matrix_view<float> w, const std::vector<float>& s) {
    for (std::size_t r = 0; r < w.rows; ++r)
        for (std::size_t c = 0; c < w.cols; ++c) w(r, c) *= s[c];
}

// The inverse scale into an RMSNorm (or LayerNorm) weight that feeds the layer: g <- g / s.
inline void fold_awq_into_norm(float* norm_weight, const std::vector<float>& s) {
    for (std::size_t c = 0; c < s.size(); ++c) norm_weight[c] /= s[c];
}

// The inverse scale into the previous linear, whose output rows are this layer's inputs
// (v_proj before o_proj): row c <- row c / s_c.
inline void fold_awq_into_rows(matrix_view<float> prev, const std::vector<float>& s) {
    for (std::size_t c = 0; c < prev.rows; ++c)
        for (std::size_t k = 0; k < prev.cols; ++k) prev(c, k) /= s[c];
}

namespace detail {

// Q(W diag s) diag(s)^-1 through the format's codec: what the kernels would decode, unscaled.
template <class Format>
void awq_fake_quant(matrix_view<const float> w, const std::vector<float>& s, const quant_options& opt,
                    std::vector<float>& out, thread_pool& pool) {
    using codec = group_codec<Format>;
    const std::size_t n = w.cols, gs = codec::group_size(n), ng = n / gs;
    std::vector<float> imp;
    if (opt.importance) {  // the scaled weights see inputs x / s
        imp.resize(n);
        for (std::size_t c = 0; c < n; ++c) imp[c] = opt.importance[c] / (s[c] * s[c]);
    }
    out.resize(w.rows * n);
    pool.parallel_for(w.rows, 1, [&](std::size_t r0, std::size_t r1) {
        std::vector<float> ws(n);
        std::uint8_t code;
        for (std::size_t r = r0; r < r1; ++r) {
            for (std::size_t c = 0; c < n; ++c) ws[c] = w(r, c) * s[c];
            for (std::size_t g = 0; g < ng; ++g) {
                const auto p = codec::fit(&ws[g * gs], gs, imp.empty() ? nullptr : &imp[g * gs], opt);
                for (std::size_t k = 0; k < gs; ++k) {
                    const std::size_t c = g * gs + k;
                    out[r * n + c] = codec::quantize(p, k, ws[c], &code) / s[c];
                }
            }
        }
    });
}

// ||X (W - Wq)^T||_F^2 over the first `tokens` rows of X.
inline double awq_output_error(matrix_view<const float> w, const std::vector<float>& wq, matrix_view<const float> x,
                               std::size_t tokens, thread_pool& pool) {
    const std::size_t rows = w.rows, n = w.cols;
    std::vector<float> dt(n * rows);  // (W - Wq)^T
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < n; ++c) dt[c * rows + r] = w(r, c) - wq[r * n + c];
    std::vector<float> y(tokens * rows, 0.0f);
    linalg::rank_update<float>(tokens, rows, n, linalg::strided<float>{x.data, x.stride, 1}, dt.data(), rows, y.data(),
                               rows, 1.0f, false, pool);
    double e = 0.0;
    for (float v : y) e += double(v) * v;
    return e;
}

}  // namespace detail

// The result of the scale search alone.
struct awq_scale_result {
    std::vector<float> scales;  // s per input column
    float alpha = 0.0f;
    double error = 0.0;      // ||X (W - Q(W diag s) diag(s)^-1)^T||_F^2 at alpha
    double error_rtn = 0.0;  // the same at alpha = 0 (round to nearest)
};

namespace detail {
inline void awq_check(matrix_view<const float> w, matrix_view<const float> x, std::vector<float>& mean_abs,
                      const char* shape_problem) {
    check_finite(w);
    check_finite(x, "calibration input");
    if (x.cols != w.cols)
        throw error("awq: the calibration input has " + std::to_string(x.cols) + " columns, the layer " +
                    std::to_string(w.cols));
    if (shape_problem) throw error(std::string("awq: ") + shape_problem);
    if (mean_abs.empty()) {
        mean_abs.assign(w.cols, 0.0f);
        for (std::size_t t = 0; t < x.rows; ++t)
            for (std::size_t c = 0; c < w.cols; ++c) mean_abs[c] += std::fabs(x(t, c)) / float(x.rows);
    }
    if (mean_abs.size() != w.cols) throw error("awq: mean_abs needs one value per input column");
}
}  // namespace detail

// The scale search: the alpha whose scales give the least output error on x. x: calibration
// inputs, one token per row; mean_abs: E|x| per column (input_stats::mean_abs()), or empty to
// take it from x. The engine searches one scale for all matrices that share an input (their rows
// stacked), because one scale per channel is folded into what produces it.
template <class Format>
awq_scale_result awq_search(matrix_view<const float> w, matrix_view<const float> x, std::vector<float> mean_abs = {},
                            const awq_options& opt = {}, thread_pool& pool = default_pool()) {
    detail::awq_check(w, x, mean_abs, Format::shape_problem(w.cols));
    const std::size_t tokens = std::min(x.rows, opt.max_tokens);
    awq_scale_result res;
    res.error = std::numeric_limits<double>::infinity();
    std::vector<float> wq;
    for (int i = 0; i < std::max(opt.grid, 1); ++i) {
        const float alpha = float(i) / float(std::max(opt.grid, 1));
        const std::vector<float> s = awq_scales(mean_abs, alpha);
        detail::awq_fake_quant<Format>(w, s, opt.quant, wq, pool);
        const double e = detail::awq_output_error(w, wq, x, tokens, pool);
        if (i == 0) res.error_rtn = e;
        if (e < res.error) res.error = e, res.alpha = alpha, res.scales = s;
    }
    return res;
}

// The final quantization of W diag(s): RTN, with the clip search when opt.clip_search. The fit
// weighs each column's error by what the scaled layer sees, E[(x / s)^2] (importance: E[x^2] per
// column, or null for none): an unweighted clip search in the scaled domain would count column
// c's error s_c^2 times, not E[x_c^2] times, and clip the loud channels' weights that the scaling
// meant to protect. Without the clip search and importance it is plain RTN, so s = 1 gives RTN's
// bytes.
template <class Format>
qmatrix<Format> awq_apply(matrix_view<const float> w, const std::vector<float>& s, const float* importance,
                          const awq_options& opt = {}, thread_pool& pool = default_pool()) {
    std::vector<float> ws(w.rows * w.cols);
    for (std::size_t r = 0; r < w.rows; ++r)
        for (std::size_t c = 0; c < w.cols; ++c) ws[r * w.cols + c] = w(r, c) * s[c];
    quant_options fin = opt.quant;
    fin.fit.clip_search = opt.clip_search;
    std::vector<float> imp;
    if (importance) {
        imp.resize(w.cols);  // element by element: gcc 12 sees a null memmove in assign(p, p + n)
        for (std::size_t c = 0; c < w.cols; ++c) imp[c] = importance[c];
        for (std::size_t c = 0; c < imp.size(); ++c) imp[c] /= s[c] * s[c];
    }
    fin.importance = imp.empty() ? nullptr : imp.data();
    return format_quantizer<Format>::run({ws.data(), w.rows, w.cols}, fin, pool);
}

// The scale search and the final quantization of one matrix.
template <class Format>
awq_result<Format> awq_quantize(matrix_view<const float> w, matrix_view<const float> x, std::vector<float> mean_abs = {},
                                const awq_options& opt = {}, thread_pool& pool = default_pool()) {
    detail::awq_check(w, x, mean_abs, Format::shape_problem(w.cols));
    const awq_scale_result found = awq_search<Format>(w, x, mean_abs, opt, pool);
    awq_result<Format> res;
    res.scales = found.scales;
    res.alpha = found.alpha;
    res.error = found.error;
    res.error_rtn = found.error_rtn;
    std::vector<float> imp;
    if (opt.quant.importance) {
        imp.resize(w.cols);
        for (std::size_t c = 0; c < w.cols; ++c) imp[c] = opt.quant.importance[c];
    } else if (opt.clip_search) {
        imp.assign(w.cols, 0.0f);
        for (std::size_t t = 0; t < x.rows; ++t)
            for (std::size_t c = 0; c < w.cols; ++c) imp[c] += x(t, c) * x(t, c) / float(x.rows);
    }
    res.q = awq_apply<Format>(w, res.scales, imp.empty() ? nullptr : imp.data(), opt, pool);
    return res;
}

}  // namespace edgeq
