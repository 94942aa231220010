// Shared pieces of the llama.cpp reference quantizers (algo/ggml/*.hpp): rounding, fp16
// storage and the scale searches that several block types use.
//
// Byte-exactness with ggml: every search below performs the same float32 operations, in the
// same order and with the same integer/float conversions, as ggml-quants.c, with fma
// contraction turned off for these headers (EDGEQ_GGML_EXACT_BEGIN below).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../core/half.hpp"

// The searches must not have a * b + c contracted into an fma, which changes the last bit of
// sums and so, now and then, a chosen scale: ggml's own build does not contract (ISO C++ modes
// do not either, but gnu++ modes with -mfma, aarch64 in gnu mode and clang by default do).
// These wrap the quantizer headers so that they give ggml's bytes whatever the caller's flags.
#if defined(__clang__)
#define EDGEQ_GGML_EXACT_BEGIN _Pragma("float_control(push)") _Pragma("clang fp contract(off)")
#define EDGEQ_GGML_EXACT_END _Pragma("float_control(pop)")
#elif defined(__GNUC__)
#define EDGEQ_GGML_EXACT_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define EDGEQ_GGML_EXACT_END _Pragma("GCC pop_options")
#else
#define EDGEQ_GGML_EXACT_BEGIN
#define EDGEQ_GGML_EXACT_END
#endif

EDGEQ_GGML_EXACT_BEGIN
namespace edgeq {
namespace ggml {
namespace detail {

// Below this absolute maximum a group counts as all zero.
constexpr float group_max_eps = 1e-15f;

// Round to nearest, ties to even, by adding 1.5 * 2^23 and reading the mantissa: what ggml's
// nearest_int does (valid for |v| < 2^22; outside that it wraps the same way ggml's does).
inline int nearest_int(float v) {
    const float shifted = v + 12582912.0f;
    std::int32_t bits;
    std::memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

inline float sum_squares(const float* x, std::size_t n) {
    float s = 0;
    for (std::size_t j = 0; j < n; ++j) s += x[j] * x[j];
    return s;
}

// The error weights of an importance matrix: importance * sqrt(sigma2 + x^2), so large weights
// count more than the imatrix alone says, and sigma2 (a mean square) keeps small ones in play.
inline void imatrix_weights(const float* x, const float* importance, float sigma2, int n, float* w) {
    for (int j = 0; j < n; ++j) w[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// fp16 storage and the value the decoder will see.
inline fp16_t to_fp16(float f) { return fp16_t::from_float(f); }
inline float from_fp16(fp16_t h) { return h.to_float(); }

// Packs 32 codes of 4 bits: byte j holds codes j (low nibble) and j + 16 (high nibble).
template <class Code>
inline void pack_nibbles_32(const Code* codes, std::uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = std::uint8_t((codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
}

// The fifth bit of 32 codes as a little-endian u32: bit j for code j.
template <class Code>
inline void pack_high_bits_32(const Code* codes, std::uint8_t* qh) {
    std::uint32_t h = 0;
    for (int j = 0; j < 32; ++j) h |= std::uint32_t((std::uint8_t(codes[j]) & 0x10u) >> 4) << j;
    std::memcpy(qh, &h, sizeof h);
}

// Symmetric scale search (ggml's make_qx_quants with rmse_type 1): codes l in [-nmax, nmax)
// for a scale from the signed maximum, then 18 nearby reciprocal scales; keeps the one with the
// largest (sum w x l)^2 / (sum w l^2), i.e. the least weighted squared error at its optimal
// scale. weights == nullptr means w = x^2. Writes l + nmax into L and returns the scale.
inline float search_symmetric(int n, int nmax, const float* x, std::int8_t* L, const float* weights) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
    auto code = [&](float iscale, int i) { return clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1); };

    float iscale = float(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = code(iscale, i);
        L[i] = std::int8_t(l + nmax);
        const float w = weight(i);
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(float(nmax) + 0.1f * float(step)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = code(iscale, i);
            const float w = weight(i);
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = std::int8_t(code(iscale, i) + nmax);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's symmetric fit (ggml's make_q3_quants with do_rmse): codes from the signed maximum,
// then up to five passes that move single codes while that lowers the x^2-weighted error.
// Writes l + nmax into L and returns the least-squares scale.
inline float refine_symmetric_x2(int n, int nmax, const float* x, std::int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    const float iscale = float(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = std::int8_t(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            if (slx > 0) {
                float sl2 = suml2 - w * float(L[i]) * float(L[i]);
                const int nl = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * float(nl);
                    sl2 += w * float(nl) * float(nl);
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = std::int8_t(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = std::int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The reciprocal scales an affine search tries: (nmax + rmin + rdelta * i) / (max - min) for
// i = 0..count, judged by absolute or squared weighted error. ggml's settings per caller:
struct affine_steps {
    float rmin, rdelta;
    int count;
    bool absolute_error;
};
constexpr affine_steps q2_K_ref_steps{-0.5f, 0.1f, 15, true};
constexpr affine_steps q4_K_ref_steps{-1.0f, 0.1f, 20, false};
constexpr affine_steps q5_K_ref_steps{-0.5f, 0.1f, 15, false};
constexpr affine_steps weighted_steps{-0.9f, 0.05f, 36, false};  // every importance-weighted fit

// Affine fit x ~ scale * l - min_out, l in [0, nmax], with weights (ggml's make_qkx2_quants and
// make_qkx3_quants, which agree when weights are given): the range fit first, then the
// code assignments from nearby reciprocal scales, each with its weighted least-squares scale and
// offset (offset clamped so that zero stays representable); keeps the least weighted error
// (absolute with use_mad, else squared). Returns the scale; *min_out receives -offset >= 0.
inline float search_affine(int n, int nmax, const float* x, const float* weights, std::uint8_t* L, float* min_out,
                           std::uint8_t* Laux, const affine_steps& steps) {
    const float rmin = steps.rmin, rdelta = steps.rdelta;
    const int nstep = steps.count;
    const bool use_mad = steps.absolute_error;
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *min_out = -min;
        return 0.0f;
    }
    auto error_of = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };

    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = std::uint8_t(clamp_int(l, 0, nmax));
        const float diff = scale * float(L[i]) + min - x[i];
        best_error += weights[i] * error_of(diff);
    }
    if (nstep < 1) {
        *min_out = -min;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step) {
        iscale = (rmin + rdelta * float(step) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = std::uint8_t(l);
            const float w = weights[i];
            sum_l += w * float(l);
            sum_l2 += w * float(l) * float(l);
            sum_xl += w * float(l) * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * float(Laux[i]) + this_min - x[i];
                err += weights[i] * error_of(diff);
            }
            if (err < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *min_out = -min;
    return scale;
}

// Quantizes non-negative values (sub-block scales or mins) to [0, nmax] with one super-block
// scale (ggml's make_qp_quants): the best of nine reciprocal scales by weighted squared error,
// then up to five passes of single-code moves. Codes are stored as bytes exactly as ggml does
// (a negative code would wrap), and the returned value is the least-squares super scale.
inline float quantize_positive(int n, int nmax, const float* x, std::uint8_t* L, const float* weights) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
    if (max < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float iscale = float(nmax) / max;
    for (int i = 0; i < n; ++i) L[i] = std::uint8_t(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * float(L[i]);
        best_mse += weights[i] * diff * diff;
    }
    for (int step = -4; step <= 4; ++step) {
        if (step == 0) continue;
        const float iscale_step = (0.1f * float(step) + float(nmax)) / max;
        const float scale_step = 1 / iscale_step;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest_int(iscale_step * x[i]));
            const float diff = x[i] - scale_step * float(l);
            mse += weights[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_step;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = std::uint8_t(l);
        const float w = weights[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = weights[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            float sl2 = suml2 - w * float(L[i]) * float(L[i]);
            if (slx > 0 && sl2 > 0) {
                const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
                if (nl != L[i]) {
                    slx += w * x[i] * float(nl);
                    sl2 += w * float(nl) * float(nl);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = std::uint8_t(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace detail
}  // namespace ggml
}  // namespace edgeq
EDGEQ_GGML_EXACT_END
