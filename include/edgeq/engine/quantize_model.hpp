// A whole model quantized with one scheme, its algorithm deciding what calibration it needs:
//
//   rtn<...>            no calibration; with calibration data, each weight's error is weighted
//                       by E[x^2] of its input column (llama.cpp's importance matrix)
//   gptq<...>           the Hessian of every matrix's inputs (algo/gptq.hpp)
//   awq<...>            a sample of every input, for the per-channel scale search folded into
//                       the norms (algo/awq.hpp), then RTN with the clip search
//   spqr<...>           the Hessian, for SpQR (algo/spqr.hpp): the matrix becomes an
//                       spqr_linear of spqr_format<...> (the scheme is scheme<spqr<...>> alone)
//
//     auto plan = engine::plan_of<scheme<gptq<>, bits<3>, group<64>>>();
//     engine::quantize_calibrated(model, windows, plan.quantize, plan.options);
//
// A scheme composed in user code goes through the same function as the built-in ones; the
// edgeq CLI reaches plan_of through registry::visit. The embedding and the classifier are not
// touched (quantize them with make_linear, or keep them dense).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "../algo/awq.hpp"
#include "../algo/gptq.hpp"
#include "../algo/hessian.hpp"
#include "../algo/spqr.hpp"
#include "../kernel/simd/spqr.hpp"
#include "../linear.hpp"
#include "../scheme.hpp"
#include "calibrate.hpp"

namespace edgeq {
namespace engine {

struct plan_settings {
    double gptq_damp = 0.01;         // fraction of mean(diag H) added to the diagonal
    std::size_t awq_sample_rows = 512;  // calibration rows AWQ's search multiplies
    bool rtn_importance = true;      // rtn with calibration data: weight errors by E[x^2]
    // SpQR (its damp is gptq_damp): tau, relative to mean_c var_rows(W[:, c]) R_cc^2 (the
    // reference's outlier_relative_threshold); or, when spqr_outlier_fraction > 0, the threshold
    // that keeps about that fraction of the weights (spqr_options).
    double spqr_outlier_threshold = 0.2;
    double spqr_outlier_fraction = 0.0;
};

struct calib_plan {
    bool needs_calibration = false;  // false: quantize_calibrated is optional (rtn)
    calib_options options;
    calib_quantizer quantize;
};

namespace detail {

// E[x^2] of the inputs a matrix scaled by s per column sees: E[x^2] / s^2.
inline std::vector<float> scaled_importance(std::vector<float> imp, const std::vector<float>& s) {
    for (std::size_t c = 0; c < imp.size() && !s.empty(); ++c) imp[c] /= s[c] * s[c];
    return imp;
}

// The GPTQ factor of the last statistics seen (see plan_for(gptq<...>)).
class gptq_factor_cache {
   public:
    std::shared_ptr<const gptq_factorization> get(const input_stats& inputs, const gptq_options& opt) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!factor_ || version_ != inputs.version() || damp_ != opt.damp || act_order_ != opt.act_order) {
            factor_.reset();  // the old one's memory first (ffn_down's is 127 MB)
            factor_.reset(new gptq_factorization(gptq_prepare(inputs.hessian(), inputs.cols(), opt)));
            version_ = inputs.version(), damp_ = opt.damp, act_order_ = opt.act_order;
        }
        return factor_;
    }

   private:
    std::mutex mutex_;
    std::shared_ptr<const gptq_factorization> factor_;
    std::uint64_t version_ = 0;
    double damp_ = 0.0;
    bool act_order_ = false;
};

template <class Scheme, class Backend>
std::unique_ptr<linear> wrap(qmatrix<format_of<Scheme>> q) {
    return std::unique_ptr<linear>(new linear_of<Scheme, Backend>(std::move(q)));
}

// rtn<...>: importance-weighted when the statistics are there.
template <class Scheme, class Backend, class... Os>
calib_plan plan_for(rtn<Os...>, const plan_settings& s) {
    calib_plan p;
    p.options.hessian = false;
    const bool weighted = s.rtn_importance;
    p.quantize = [weighted](const calib_matrix& j) {
        quant_options o = default_options<Scheme>();
        std::vector<float> imp;
        if (weighted && j.inputs.samples()) {
            imp = scaled_importance(j.inputs.importance(), j.scales);
            o.importance = imp.data();
        }
        return wrap<Scheme, Backend>(format_quantizer<format_of<Scheme>>::run(j.weights, o, default_pool()));
    };
    return p;
}

// gptq<...>: the Hessian of each matrix's inputs.
template <class Scheme, class Backend, class... Os>
calib_plan plan_for(gptq<Os...>, const plan_settings& s) {
    calib_plan p;
    p.needs_calibration = true;
    p.options.hessian = true;
    gptq_options g;
    g.damp = s.gptq_damp;
    g.act_order = gptq<Os...>::act_order;
    g.quant = default_options<Scheme>();
    // q, k and v (and gate and up) read one input, so they share H and its factor: the last
    // factor is kept, keyed on the statistics' version (the Cholesky of H is most of GPTQ's
    // time on the small matrices).
    std::shared_ptr<gptq_factor_cache> cache = std::make_shared<gptq_factor_cache>();
    p.quantize = [g, cache](const calib_matrix& j) {
        return wrap<Scheme, Backend>(gptq_quantize<format_of<Scheme>>(j.weights, *cache->get(j.inputs, g), g));
    };
    return p;
}

// awq<...>: one scale per input channel searched over the group of matrices that share the input
// (their rows stacked), then RTN with the clip search weighted by E[(x / s)^2].
template <class Scheme, class Backend, class... Os>
calib_plan plan_for(awq<Os...>, const plan_settings& s) {
    calib_plan p;
    p.needs_calibration = true;
    p.options.hessian = false;
    p.options.sample_rows = s.awq_sample_rows;
    p.options.scale_search = [](const calib_group& g) {
        std::size_t rows = 0;
        for (const matrix_view<const float>& w : g.weights) rows += w.rows;
        const std::size_t cols = g.inputs.cols();
        std::vector<float> stacked;
        stacked.reserve(rows * cols);
        for (const matrix_view<const float>& w : g.weights)
            for (std::size_t r = 0; r < w.rows; ++r) stacked.insert(stacked.end(), w.row(r), w.row(r) + cols);
        awq_options o;
        o.quant = default_options<Scheme>();
        o.quant.fit.clip_search = false;  // the search compares scales by plain rounding, as the reference
        return awq_search<format_of<Scheme>>(matrix_view<const float>(stacked.data(), rows, cols), g.sample,
                                             g.inputs.mean_abs(), o)
            .scales;
    };
    p.quantize = [](const calib_matrix& j) {
        awq_options o;
        o.quant = default_options<Scheme>();
        const std::vector<float> ones(j.weights.cols, 1.0f);
        const std::vector<float> imp = j.inputs.importance();
        // The driver already multiplied the weights by the group's scales (j.scales); the fit is
        // weighted by what the scaled matrix sees, E[x^2] / s^2.
        return wrap<Scheme, Backend>(
            awq_apply<format_of<Scheme>>(j.weights, ones, scaled_importance(imp, j.scales).data(), o, default_pool()));
    };
    return p;
}

// spqr<...>: the Hessian of each matrix's inputs; the result is SpQR's own format.
template <class Scheme, class Backend, int B, int G, int SB, int SG>
calib_plan plan_for(spqr<B, G, SB, SG>, const plan_settings& s) {
    static_assert(std::is_same<Scheme, scheme<spqr<B, G, SB, SG>>>::value,
                  "edgeq::engine::plan_of: spqr<Bits, Group, StatBits, StatGroup> fixes its own storage "
                  "(spqr_format); write scheme<spqr<...>> with no other policy");
    using F = spqr_format<B, G, SB, SG>;
    calib_plan p;
    p.needs_calibration = true;
    p.options.hessian = true;
    spqr_options o;
    o.damp = s.gptq_damp;
    o.outlier_threshold = s.spqr_outlier_threshold;
    o.outlier_fraction = s.spqr_outlier_fraction;
    p.quantize = [o](const calib_matrix& j) {
        return make_spqr_linear<F, Backend>(spqr_quantize<F>(j.weights, j.inputs.hessian(), o));
    };
    return p;
}

}  // namespace detail

// What Scheme's algorithm needs from calibration, and its quantizer of one matrix.
template <class Scheme, class Backend = backend::best>
calib_plan plan_of(const plan_settings& s = plan_settings()) {
    static_assert(is_scheme<Scheme>::value, "edgeq::engine::plan_of<S>: S must be an edgeq::scheme<...>");
    return detail::plan_for<Scheme, Backend>(typename Scheme::algorithm{}, s);
}

}  // namespace engine
}  // namespace edgeq
