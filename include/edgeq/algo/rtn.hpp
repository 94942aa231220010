// Round-to-nearest quantization of a float matrix into any grouped format, with the optional
// clipping search and per-column importance weights (an imatrix's E[x^2], or AWQ's scales).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/thread_pool.hpp"
#include "../core/matrix_view.hpp"
#include "../format/qmatrix.hpp"
#include "../scheme.hpp"
#include "group_fit.hpp"

namespace edgeq {

struct quant_options {
    fit_options fit;
    const float* importance = nullptr;  // per column, length cols; weights the squared error
};

// Throws with the position of the first NaN or Inf.
inline void check_finite(matrix_view<const float> w, const char* what = "weight matrix") {
    for (std::size_t r = 0; r < w.rows; ++r)
        for (std::size_t c = 0; c < w.cols; ++c)
            if (!std::isfinite(w(r, c)))
                throw error(std::string(what) + " has a non-finite value (" + (std::isnan(w(r, c)) ? "NaN" : "Inf") +
                            ") at row " + std::to_string(r) + ", column " + std::to_string(c));
}

namespace detail {

// Stores every scale in its storage type and puts the stored value back into params.
template <class Format>
void store_scales(qmatrix<Format>& m, std::vector<group_params>& params, std::false_type /*plain*/) {
    using S = typename Format::scale_type;
    for (std::size_t i = 0; i < params.size(); ++i) {
        m.scales()[i] = S::from_float(params[i].scale);
        const float back = m.scales()[i].to_float();
        if (!std::isfinite(back))
            throw error("a group scale (" + std::to_string(params[i].scale) + ") overflows its fp16 storage; use fp32_scale");
        params[i].scale = back;
    }
}

// QLoRA's second level: center the scales on their mean, int8 per block of 256.
template <class Format>
void store_scales(qmatrix<Format>& m, std::vector<group_params>& params, std::true_type /*double quant*/) {
    const std::size_t n = params.size();
    double mean = 0.0;
    for (const group_params& p : params) mean += p.scale;
    mean /= double(n ? n : 1);
    m.set_dq_mean(float(mean));
    for (std::size_t b0 = 0; b0 < n; b0 += Format::dq_block) {
        const std::size_t b1 = std::min(n, b0 + Format::dq_block);
        float amax = 0.0f;
        for (std::size_t i = b0; i < b1; ++i) amax = std::max(amax, std::fabs(params[i].scale - float(mean)));
        const float f = amax / 127.0f;
        m.dq_factors()[b0 / Format::dq_block] = f;
        for (std::size_t i = b0; i < b1; ++i) {
            const float c = f > 0.0f ? std::nearbyint((params[i].scale - float(mean)) / f) : 0.0f;
            m.scales()[i].code = static_cast<signed char>(std::min(std::max(c, -127.0f), 127.0f));
            params[i].scale = float(mean) + float(m.scales()[i].code) * f;
        }
    }
}

}  // namespace detail

// Quantizes w into Format: fits every group, stores the scales (rounded to their storage), then
// encodes every weight against the stored scale, so codes are nearest for what the kernels see.
// Rows are independent, so both passes split rows over the pool.
template <class Format>
qmatrix<Format> quantize_format(matrix_view<const float> w, const quant_options& opt = {},
                                thread_pool& pool = default_pool()) {
    check_finite(w);
    qmatrix<Format> m(w.rows, w.cols);
    const std::size_t g = Format::group_size(w.cols), ng = Format::groups_per_row(w.cols);
    std::vector<group_params> params(w.rows * ng);
    pool.parallel_for(w.rows, 1, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t j = 0; j < ng; ++j)
                params[r * ng + j] =
                    group_fit<Format>::fit(w.row(r) + j * g, opt.importance ? opt.importance + j * g : nullptr, g, opt.fit);
    });

    detail::store_scales(m, params, std::integral_constant<bool, Format::is_double_quant>{});
    if (Format::asymmetric)
        for (std::size_t i = 0; i < params.size(); ++i) m.zeros()[i] = std::uint8_t(params[i].zero);

    pool.parallel_for(w.rows, 1, [&](std::size_t r0, std::size_t r1) {
        std::vector<std::uint8_t> codes(w.cols);
        for (std::size_t r = r0; r < r1; ++r) {
            for (std::size_t c = 0; c < w.cols; ++c)
                codes[c] = std::uint8_t(group_fit<Format>::encode(w(r, c), params[r * ng + c / g]));
            pack_row(m, r, codes.data());
        }
    });
    return m;
}

// The scheme's own defaults (rtn<clip_search> turns the search on).
template <class Scheme>
quant_options default_options() {
    quant_options o;
    o.fit.clip_search = Scheme::algorithm::clip;
    return o;
}

// How each storage family is quantized: grouped formats here, llama.cpp's block types in
// algo/ggml/quantize.hpp (include edgeq/edgeq.hpp to have both).
template <class Format>
struct format_quantizer;

template <class C, int B, int G, bool A, class S>
struct format_quantizer<grouped_format<C, B, G, A, S>> {
    using format = grouped_format<C, B, G, A, S>;
    static qmatrix<format> run(matrix_view<const float> w, const quant_options& opt, thread_pool& pool) {
        return quantize_format<format>(w, opt, pool);
    }
};

template <class Scheme>
qmatrix<format_of<Scheme>> quantize(matrix_view<const float> w, const quant_options& opt = default_options<Scheme>(),
                                    thread_pool& pool = default_pool()) {
    static_assert(is_scheme<Scheme>::value, "edgeq::quantize<S>: S must be an edgeq::scheme<...>");
    return format_quantizer<format_of<Scheme>>::run(w, opt, pool);
}

}  // namespace edgeq
