// llama.cpp's k-quants (super-blocks of 256): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
//
// Each super-block is fitted in two levels: every sub-block (16 or 32 weights) gets its own
// float scale (and min), then those are quantized to 4, 6 or 8 bits against one fp16 super
// scale, and finally every weight is re-encoded against the scale the decoder will see.
// Without importance the sub-block fits are ggml's reference ones (quantize_row_<type>_ref);
// with importance the searches weight the error by importance * sqrt(sigma^2 + x^2) (Q6_K: by
// importance alone) and the sub-block scales are quantized by a weighted search as well.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../format/ggml/blocks.hpp"
#include "../../format/ggml/decode.hpp"  // the scale unpacking the decoder sees
#include "common.hpp"

EDGEQ_GGML_EXACT_BEGIN
namespace edgeq {
namespace ggml {
namespace detail {

inline float sum_of(const float* w, int n) {
    float s = 0;
    for (int j = 0; j < n; ++j) s += w[j];
    return s;
}

// Re-encodes affine sub-blocks against the stored scales: l = round((x + m) / d) in [0, nmax].
// A sub-block whose stored scale is zero keeps the codes of its fit.
inline void requantize_affine(const float* x, int n, float d, float m, int nmax, std::uint8_t* L) {
    if (!d) return;
    for (int i = 0; i < n; ++i) L[i] = std::uint8_t(clamp_int(nearest_int((x[i] + m) / d), 0, nmax));
}

// Packs 2-bit codes as Q2_K and Q3_K do: per half of 128, byte l holds codes l, l+32, l+64, l+96.
template <class Code>
inline void pack_2bit_256(const Code* L, std::uint8_t* qs) {
    for (int j = 0; j < qk_k; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = std::uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// ===== Q2_K: 16 x 16, 4-bit scale and min per sub-block ======================================

inline void quantize_block_q2_K(const float* x, block_q2_K& y, const float* importance) {
    constexpr int nsub = 16, sub = 16;
    constexpr float scale_levels = 15.0f;
    std::uint8_t L[qk_k], aux[sub];
    float scales[nsub], mins[nsub], w[sub];

    if (!importance) {
        // Reference: per sub-block a |x|-weighted affine fit (absolute error), then the scales
        // and mins on 4-bit grids reaching the largest of each.
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < nsub; ++j) {
            for (int l = 0; l < sub; ++l) w[l] = std::fabs(x[sub * j + l]);
            scales[j] = search_affine(sub, 3, x + sub * j, w, L + sub * j, &mins[j], aux, q2_K_ref_steps);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = scale_levels / max_scale;
            for (int j = 0; j < nsub; ++j) y.scales[j] = std::uint8_t(nearest_int(iscale * scales[j]));
            y.d = to_fp16(max_scale / scale_levels);
        } else {
            for (int j = 0; j < nsub; ++j) y.scales[j] = 0;
            y.d = to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = scale_levels / max_min;
            for (int j = 0; j < nsub; ++j) y.scales[j] = std::uint8_t(y.scales[j] | (nearest_int(iscale * mins[j]) << 4));
            y.dmin = to_fp16(max_min / scale_levels);
        } else {
            y.dmin = to_fp16(0.0f);
        }
    } else {
        // Weighted: squared-error fits, then scales and mins by the weighted positive search.
        const float sigma2 = sum_squares(x, qk_k) / float(qk_k);
        float sw[nsub];
        std::uint8_t Ls[nsub], Lm[nsub];
        for (int j = 0; j < nsub; ++j) {
            imatrix_weights(x + sub * j, importance + sub * j, sigma2, sub, w);
            sw[j] = sum_of(w, sub);
            scales[j] = search_affine(sub, 3, x + sub * j, w, L + sub * j, &mins[j], aux, weighted_steps);
        }
        y.d = to_fp16(quantize_positive(nsub, 15, scales, Ls, sw));
        y.dmin = to_fp16(quantize_positive(nsub, 15, mins, Lm, sw));
        for (int j = 0; j < nsub; ++j) y.scales[j] = std::uint8_t(Ls[j] | (Lm[j] << 4));
    }

    const float d = from_fp16(y.d), dmin = from_fp16(y.dmin);
    for (int j = 0; j < nsub; ++j)
        requantize_affine(x + sub * j, sub, d * float(y.scales[j] & 0x0f), dmin * float(y.scales[j] >> 4), 3, L + sub * j);
    pack_2bit_256(L, y.qs);
}

// ===== Q3_K: 16 x 16, signed 6-bit scales, codes in [-4, 3] ===================================

// Stores 16 6-bit scale codes (0..63): low nibbles in bytes 0-7, top two bits in bytes 8-11.
inline void pack_q3_K_scales(const int* ls, std::uint8_t* s) {
    std::memset(s, 0, 12);
    for (int j = 0; j < 16; ++j) {
        const int l = ls[j];
        if (j < 8)
            s[j] = std::uint8_t(l & 0x0f);
        else
            s[j - 8] = std::uint8_t(s[j - 8] | ((l & 0x0f) << 4));
        s[j % 4 + 8] = std::uint8_t(s[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
}

inline void quantize_block_q3_K(const float* x, block_q3_K& y, const float* importance) {
    constexpr int nsub = 16, sub = 16;
    std::int8_t L[qk_k];
    float scales[nsub];
    int ls[nsub];

    if (!importance) {
        // Reference: x^2-refined symmetric fits, scales on a signed 6-bit grid.
        float max_scale = 0, amax = 0;
        for (int j = 0; j < nsub; ++j) {
            scales[j] = refine_symmetric_x2(sub, 4, x + sub * j, L + sub * j);
            if (std::fabs(scales[j]) > amax) {
                amax = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < nsub; ++j) {
                const std::int8_t l = std::int8_t(nearest_int(iscale * scales[j]));
                ls[j] = clamp_int(l, -32, 31) + 32;
            }
            pack_q3_K_scales(ls, y.scales);
            y.d = to_fp16(1 / iscale);
        } else {
            std::memset(y.scales, 0, 12);
            y.d = to_fp16(0.0f);
        }
    } else {
        const float sigma2 = 2 * sum_squares(x, qk_k) / float(qk_k);
        float w[sub], sw[nsub];
        std::int8_t Ls[nsub];
        for (int j = 0; j < nsub; ++j) {
            imatrix_weights(x + sub * j, importance + sub * j, sigma2, sub, w);
            sw[j] = sum_of(w, sub);
            scales[j] = search_symmetric(sub, 4, x + sub * j, L + sub * j, w);
        }
        const float d_block = search_symmetric(nsub, 32, scales, Ls, sw);
        for (int j = 0; j < nsub; ++j) ls[j] = Ls[j];
        pack_q3_K_scales(ls, y.scales);
        y.d = to_fp16(d_block);
    }

    const float d_all = from_fp16(y.d);
    for (int j = 0; j < nsub; ++j) {
        const float d = d_all * float(q3k_scale(j, y.scales));
        if (!d) continue;
        for (int i = 0; i < sub; ++i)
            L[sub * j + i] = std::int8_t(clamp_int(nearest_int(x[sub * j + i] / d), -4, 3) + 4);
    }
    // Bit 2 of code i goes to hmask[i % 32], bit i / 32; the low two bits as Q2_K.
    std::memset(y.hmask, 0, sizeof y.hmask);
    for (int i = 0; i < qk_k; ++i)
        if (L[i] > 3) {
            y.hmask[i % 32] = std::uint8_t(y.hmask[i % 32] | (1 << (i / 32)));
            L[i] = std::int8_t(L[i] - 4);
        }
    pack_2bit_256(L, y.qs);
}

// ===== Q4_K / Q5_K: 8 x 32, 6-bit scale and min per sub-block ==================================

inline void pack_k4_scales(const std::uint8_t* ls, const std::uint8_t* lm, std::uint8_t* s) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = std::uint8_t((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            s[j - 4] = std::uint8_t(s[j - 4] | ((ls[j] >> 4) << 6));
            s[j] = std::uint8_t(s[j] | ((lm[j] >> 4) << 6));
        }
    }
}

// The shared fit of Q4_K (nmax 15) and Q5_K (nmax 31); fills L (256 codes), d, dmin, scales.
template <class Block>
inline void fit_k4(const float* x, Block& y, const float* importance, int nmax, std::uint8_t* L) {
    constexpr int nsub = 8, sub = 32;
    std::uint8_t aux[sub], ls[nsub], lm[nsub];
    float scales[nsub], mins[nsub], w[sub];

    if (!importance) {
        // Reference: (rms + |x|)-weighted affine fits, then 6-bit grids up to the largest.
        const bool q4 = nmax == 15;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < nsub; ++j) {
            const float* xs = x + sub * j;
            const float av_x = std::sqrt(sum_squares(xs, sub) / 32.0f);
            for (int l = 0; l < sub; ++l) w[l] = av_x + std::fabs(xs[l]);
            scales[j] = search_affine(sub, nmax, xs, w, L + sub * j, &mins[j], aux, q4 ? q4_K_ref_steps : q5_K_ref_steps);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < nsub; ++j) {
            ls[j] = std::min<std::uint8_t>(63, std::uint8_t(nearest_int(inv_scale * scales[j])));
            lm[j] = std::min<std::uint8_t>(63, std::uint8_t(nearest_int(inv_min * mins[j])));
        }
        pack_k4_scales(ls, lm, y.scales);
        y.d = to_fp16(max_scale / 63.0f);
        y.dmin = to_fp16(max_min / 63.0f);
    } else {
        const float sigma2 = 2 * sum_squares(x, qk_k) / float(qk_k);
        float sw[nsub];
        for (int j = 0; j < nsub; ++j) {
            imatrix_weights(x + sub * j, importance + sub * j, sigma2, sub, w);
            sw[j] = sum_of(w, sub);
            scales[j] = search_affine(sub, nmax, x + sub * j, w, L + sub * j, &mins[j], aux, weighted_steps);
        }
        const float d_block = quantize_positive(nsub, 63, scales, ls, sw);
        const float m_block = quantize_positive(nsub, 63, mins, lm, sw);
        if (nmax == 31)  // ggml's Q5_K clamps the codes here; Q4_K stores them as they are
            for (int j = 0; j < nsub; ++j) {
                ls[j] = std::min<std::uint8_t>(63, ls[j]);
                lm[j] = std::min<std::uint8_t>(63, lm[j]);
            }
        pack_k4_scales(ls, lm, y.scales);
        y.d = to_fp16(d_block);
        y.dmin = to_fp16(m_block);
    }

    const float d = from_fp16(y.d), dmin = from_fp16(y.dmin);
    for (int j = 0; j < nsub; ++j) {
        int sc, m;
        k4_scale_min(j, y.scales, sc, m);
        requantize_affine(x + sub * j, sub, d * float(sc), dmin * float(m), nmax, L + sub * j);
    }
}

inline void quantize_block_q4_K(const float* x, block_q4_K& y, const float* importance) {
    std::uint8_t L[qk_k];
    fit_k4(x, y, importance, 15, L);
    // Per 64 weights: 32 bytes, low nibble from the first 32 codes, high from the next 32.
    for (int j = 0; j < qk_k; j += 64)
        for (int l = 0; l < 32; ++l) y.qs[j / 2 + l] = std::uint8_t(L[j + l] | (L[j + l + 32] << 4));
}

inline void quantize_block_q5_K(const float* x, block_q5_K& y, const float* importance) {
    std::uint8_t L[qk_k];
    fit_k4(x, y, importance, 31, L);
    // As Q4_K for the low nibbles; bit 4 of code 64 k + l goes to qh[l] bit 2k, of 64 k + 32 + l
    // to bit 2k + 1.
    std::memset(y.qh, 0, sizeof y.qh);
    for (int j = 0; j < qk_k; j += 64)
        for (int l = 0; l < 32; ++l) {
            const int lo = L[j + l], hi = L[j + l + 32];
            const int k = j / 64;
            if (lo > 15) y.qh[l] = std::uint8_t(y.qh[l] | (1 << (2 * k)));
            if (hi > 15) y.qh[l] = std::uint8_t(y.qh[l] | (2 << (2 * k)));
            y.qs[j / 2 + l] = std::uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
        }
}

// ===== Q6_K: 16 x 16, int8 scales, codes in [-32, 31] ==========================================

inline void quantize_block_q6_K(const float* x, block_q6_K& y, const float* importance) {
    constexpr int nsub = 16, sub = 16;
    std::int8_t L[qk_k];
    float scales[nsub];
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < nsub; ++j) {
        // Weighted by the importance itself, or x^2 without it.
        scales[j] = search_symmetric(sub, 32, x + sub * j, L + sub * j, importance ? importance + sub * j : nullptr);
        if (std::fabs(scales[j]) > max_abs) {
            max_abs = std::fabs(scales[j]);
            max_scale = scales[j];
        }
    }
    if (max_abs < group_max_eps) {
        std::memset(&y, 0, sizeof y);
        return;
    }
    const float iscale = -128.0f / max_scale;
    y.d = to_fp16(1 / iscale);
    for (int j = 0; j < nsub; ++j) y.scales[j] = std::int8_t(std::min(127, nearest_int(iscale * scales[j])));
    const float d_all = from_fp16(y.d);
    for (int j = 0; j < nsub; ++j) {
        const float d = d_all * float(y.scales[j]);
        if (!d) continue;
        for (int i = 0; i < sub; ++i)
            L[sub * j + i] = std::int8_t(clamp_int(nearest_int(x[sub * j + i] / d), -32, 31) + 32);
    }
    // Per half of 128: ql[l] / ql[l + 32] hold low nibbles of codes l, l+32 (low) and l+64,
    // l+96 (high); qh[l] their two high bits at 0, 2, 4, 6.
    for (int h = 0; h < 2; ++h) {
        const std::int8_t* c = L + 128 * h;
        std::uint8_t* ql = y.ql + 64 * h;
        std::uint8_t* qh = y.qh + 32 * h;
        for (int l = 0; l < 32; ++l) {
            ql[l] = std::uint8_t((c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4));
            ql[l + 32] = std::uint8_t((c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4));
            qh[l] = std::uint8_t((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
        }
    }
}

// ===== rows ======================================================================================

template <class Block, void (*Fit)(const float*, Block&, const float*)>
inline void quantize_kquant_row(const float* x, Block* y, std::size_t n, const float* importance) {
    for (std::size_t b = 0; b < n / qk_k; ++b) Fit(x + b * qk_k, y[b], importance ? importance + b * qk_k : nullptr);
}

inline void quantize_row_impl(const float* x, block_q2_K* y, std::size_t n, const float* imp) {
    quantize_kquant_row<block_q2_K, quantize_block_q2_K>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q3_K* y, std::size_t n, const float* imp) {
    quantize_kquant_row<block_q3_K, quantize_block_q3_K>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q4_K* y, std::size_t n, const float* imp) {
    quantize_kquant_row<block_q4_K, quantize_block_q4_K>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q5_K* y, std::size_t n, const float* imp) {
    quantize_kquant_row<block_q5_K, quantize_block_q5_K>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q6_K* y, std::size_t n, const float* imp) {
    quantize_kquant_row<block_q6_K, quantize_block_q6_K>(x, y, n, imp);
}

}  // namespace detail
}  // namespace ggml
}  // namespace edgeq
EDGEQ_GGML_EXACT_END
