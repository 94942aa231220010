// llama.cpp's non-linear 4-bit types: IQ4_NL (blocks of 32, one fp16 scale) and IQ4_XS
// (super-blocks of 256, 6-bit sub-block scales). Codes index the 16-value int8 code-book.
//
// Each block of 32 searches 15 scales around the one that maps the signed extreme to the
// code-book's end and keeps the best by weighted squared error; ggml does this in both cases
// (weights x^2 without importance, importance * sqrt(sigma^2 + x^2) with it).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../format/ggml/blocks.hpp"
#include "common.hpp"

EDGEQ_GGML_EXACT_BEGIN
namespace edgeq {
namespace ggml {
namespace detail {

constexpr int iq4_block = 32;
constexpr int iq4_scale_steps = 7;  // scales tried on each side of the extreme's

struct iq4_codebook {
    float v[16];
    iq4_codebook() {
        for (int i = 0; i < 16; ++i) v[i] = float(kvalues_iq4nl(i));
    }
};
inline const iq4_codebook& iq4_values() {
    static const iq4_codebook cb;
    return cb;
}

// Index of the nearest code-book value (ties to the upper one), by bisection.
inline int nearest_iq4(float x) {
    const float* v = iq4_values().v;
    if (x <= v[0]) return 0;
    if (x >= v[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < v[mid])
            hi = mid;
        else
            lo = mid;
    }
    return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

// Fits one block of 32: returns its float scale (0 for an all-zero block) and leaves codes in L.
inline float fit_iq4_block(const float* x, const float* w, std::uint8_t* L) {
    const float* v = iq4_values().v;
    float amax = 0, max = 0;
    for (int j = 0; j < iq4_block; ++j)
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    if (amax < group_max_eps) return 0.0f;

    float d = -max / v[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < iq4_block; ++j) {
        const int l = nearest_iq4(id * x[j]);
        L[j] = std::uint8_t(l);
        const float q = v[l];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int step = -iq4_scale_steps; step <= iq4_scale_steps; ++step) {
        id = float(step + kvalues_iq4nl(0)) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < iq4_block; ++j) {
            const float q = v[nearest_iq4(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        // Only the scale is kept; codes are re-derived from the stored scale afterwards.
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

// Error weights of n weights: x^2, or importance * sqrt(sigma2 + x^2).
inline void iq4_weights(const float* x, const float* importance, float sigma2, int n, float* w) {
    for (int j = 0; j < n; ++j) w[j] = importance ? importance[j] * std::sqrt(sigma2 + x[j] * x[j]) : x[j] * x[j];
}

// 2 * mean square of n weights, in ggml's order of operations.
inline float iq4_sigma2(const float* x, int n) { return sum_squares(x, std::size_t(n)) * (2.0f / float(n)); }

inline void encode_iq4(const float* x, float inv_scale, int n, std::uint8_t* L) {
    for (int j = 0; j < n; ++j) L[j] = std::uint8_t(nearest_iq4(inv_scale * x[j]));
}

inline void quantize_block_iq4_nl(const float* x, block_iq4_nl& y, const float* importance) {
    float w[iq4_block];
    std::uint8_t L[iq4_block];
    iq4_weights(x, importance, iq4_sigma2(x, iq4_block), iq4_block, w);
    const float d = fit_iq4_block(x, w, L);
    y.d = to_fp16(d);
    // Codes against the float scale (not the fp16 one), as ggml does.
    encode_iq4(x, d ? 1 / d : 0.0f, iq4_block, L);
    pack_nibbles_32(L, y.qs);
}

inline void quantize_block_iq4_xs(const float* x, block_iq4_xs& y, const float* importance) {
    constexpr int nsub = qk_k / iq4_block;
    const float sigma2 = iq4_sigma2(x, qk_k);
    float w[iq4_block], scales[nsub];
    std::uint8_t L[qk_k];
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nsub; ++ib) {
        const float* xb = x + ib * iq4_block;
        iq4_weights(xb, importance ? importance + ib * iq4_block : nullptr, sigma2, iq4_block, w);
        scales[ib] = fit_iq4_block(xb, w, L + ib * iq4_block);
        if (std::fabs(scales[ib]) > amax_scale) {
            amax_scale = std::fabs(scales[ib]);
            max_scale = scales[ib];
        }
    }
    // Sub-block scales on a signed 6-bit grid whose end is the largest scale.
    const float d = -max_scale / 32.0f;
    y.d = to_fp16(d);
    const float id = d ? 1 / d : 0.0f;
    y.scales_h = 0;
    std::memset(y.scales_l, 0, sizeof y.scales_l);
    for (int ib = 0; ib < nsub; ++ib) {
        int l = clamp_int(nearest_int(id * scales[ib]), -32, 31);
        const float dl = d * float(l);
        encode_iq4(x + ib * iq4_block, dl ? 1 / dl : 0.0f, iq4_block, L + ib * iq4_block);
        l += 32;
        y.scales_l[ib / 2] = std::uint8_t(y.scales_l[ib / 2] | ((l & 0x0f) << (4 * (ib % 2))));
        y.scales_h = std::uint16_t(y.scales_h | ((l >> 4) << (2 * ib)));
    }
    for (int i = 0; i < nsub; ++i) pack_nibbles_32(L + iq4_block * i, y.qs + 16 * i);
}

inline void quantize_row_impl(const float* x, block_iq4_nl* y, std::size_t n, const float* importance) {
    for (std::size_t b = 0; b < n / iq4_block; ++b)
        quantize_block_iq4_nl(x + b * iq4_block, y[b], importance ? importance + b * iq4_block : nullptr);
}

inline void quantize_row_impl(const float* x, block_iq4_xs* y, std::size_t n, const float* importance) {
    for (std::size_t b = 0; b < n / qk_k; ++b)
        quantize_block_iq4_xs(x + b * qk_k, y[b], importance ? importance + b * qk_k : nullptr);
}

}  // namespace detail
}  // namespace ggml
}  // namespace edgeq
EDGEQ_GGML_EXACT_END
