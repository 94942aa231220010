// group_codec<Format>: what an algorithm that quantizes one column at a time (GPTQ) needs from a
// storage format. RTN fits a group and encodes it in one go; GPTQ fits a group when it reaches
// the group's first column, then quantizes the group's weights one by one while the weights
// not yet quantized move to absorb the error. So the format is split into three steps:
//
//   using params                                  what one group of one row stores
//   static std::size_t group_size(cols)           columns that share one params
//   static params fit(w, n, importance, opt)      params for the n current weights of a group
//   static float quantize(p, k, w, code)          the value nearest to w that weight k of the
//                                                 group can take (what the kernels will decode),
//                                                 and its code in *code
//   static void store(m, params, codes)           writes rows x groups params and rows x cols
//                                                 codes into the qmatrix
//
// This header has the grouped formats (uniform int-N, NF4); algo/ggml/codes.hpp has llama.cpp's
// block types. For a grouped format quantize is group_fit's encode/decode against the scale as
// stored (fp16 or fp32), so a codec-driven RTN gives quantize_format's bytes exactly. Double-
// quantized scales depend on every scale of the matrix, so they are quantized against the float
// scale and the scales double-quantized in store (as RTN, within 1/254 of a block's range).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../format/qmatrix.hpp"
#include "group_fit.hpp"
#include "rtn.hpp"

namespace edgeq {

template <class Format>
struct group_codec;

template <class C, int B, int G, bool A, class S>
struct group_codec<grouped_format<C, B, G, A, S>> {
    using format = grouped_format<C, B, G, A, S>;
    using params = group_params;

    static std::size_t group_size(std::size_t cols) { return format::group_size(cols); }

    static params fit(const float* w, std::size_t n, const float* importance, const quant_options& opt) {
        params p = group_fit<format>::fit(w, importance, n, opt.fit);
        p.scale = stored_scale(p.scale, S{});
        return p;
    }

    static float quantize(const params& p, std::size_t /*k*/, float w, std::uint8_t* code) {
        const int q = group_fit<format>::encode(w, p);
        *code = std::uint8_t(q);
        return group_fit<format>::decode(q, p);
    }

    static void store(qmatrix<format>& m, std::vector<params> ps, const std::uint8_t* codes) {
        detail::store_scales(m, ps, std::integral_constant<bool, format::is_double_quant>{});
        if (format::asymmetric)
            for (std::size_t i = 0; i < ps.size(); ++i) m.zeros()[i] = std::uint8_t(ps[i].zero);
        for (std::size_t r = 0; r < m.rows(); ++r) pack_row(m, r, codes + r * m.cols());
    }

   private:
    // The scale the kernels will see.
    template <class T>
    static float stored_scale(float s, T) {
        const float back = T::from_float(s).to_float();
        if (!std::isfinite(back))
            throw error("a group scale (" + std::to_string(s) + ") overflows its fp16 storage; use fp32_scale");
        return back;
    }
    static float stored_scale(float s, dq8_t) { return s; }
};

}  // namespace edgeq
