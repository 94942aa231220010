// llama.cpp's legacy block types (32 weights per block): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//
// Without importance weights each block is fitted from its extremes (ggml's
// quantize_row_<type>_ref); with them, as llama-quantize does with an imatrix, the scale (and
// offset) is searched to minimise the error weighted by importance * sqrt(sigma^2 + x^2), where
// sigma^2 is the row's mean square. Q8_0 ignores importance, as ggml does.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../../format/ggml/blocks.hpp"
#include "common.hpp"

EDGEQ_GGML_EXACT_BEGIN
namespace edgeq {
namespace ggml {
namespace detail {

constexpr int legacy_weights = 32;

// Value of largest magnitude, with its sign.
inline float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j)
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    return max;
}

inline void min_max(const float* x, int n, float& min, float& max) {
    min = std::numeric_limits<float>::max();
    max = -std::numeric_limits<float>::max();
    for (int j = 0; j < n; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
}

// The reference types round by truncating x / d + offset + 0.5 through an int8, as ggml does
// (ties go up, where nearest_int would go to even).
inline int truncate_code(float v) { return int(std::int8_t(int(v))); }

// The legacy types take sigma^2 over the whole row.
inline float mean_square(const float* x, std::size_t n) { return sum_squares(x, n) / float(n); }

// --- code storage ---------------------------------------------------------------------------------

inline void store_codes(block_q4_0& b, const std::uint8_t* c) { pack_nibbles_32(c, b.qs); }
inline void store_codes(block_q4_1& b, const std::uint8_t* c) { pack_nibbles_32(c, b.qs); }
inline void store_codes(block_q5_0& b, const std::uint8_t* c) {
    pack_nibbles_32(c, b.qs);
    pack_high_bits_32(c, b.qh);
}
inline void store_codes(block_q5_1& b, const std::uint8_t* c) {
    pack_nibbles_32(c, b.qs);
    pack_high_bits_32(c, b.qh);
}

// --- Q8_0: d = absmax / 127, q = round(x / d) (half away from zero) -------------------------

inline void quantize_row_impl(const float* x, block_q8_0* y, std::size_t n, const float* /*importance*/) {
    for (std::size_t b = 0; b < n / legacy_weights; ++b, x += legacy_weights) {
        float amax = 0.0f;
        for (int j = 0; j < legacy_weights; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = to_fp16(d);
        for (int j = 0; j < legacy_weights; ++j) y[b].qs[j] = std::int8_t(std::round(x[j] * id));
    }
}

// --- Q4_0 / Q5_0: w = d * (q - 2^(bits-1)) ----------------------------------------------------

// The reference fit: the signed extreme maps to code 0 (d = max / -2^(bits-1)).
template <int Bits>
inline void fit_symmetric_ref(const float* x, std::uint8_t* codes, float& d_out) {
    constexpr int half = 1 << (Bits - 1), top = (1 << Bits) - 1;
    const float d = signed_absmax(x, legacy_weights) / float(-half);
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < legacy_weights; ++j)
        codes[j] = std::uint8_t(std::min(top, truncate_code(x[j] * id + (float(half) + 0.5f))));
    d_out = d;
}

// The importance-weighted fit: the symmetric scale search.
template <int Bits>
inline void fit_symmetric_weighted(const float* x, const float* importance, float sigma2, std::uint8_t* codes,
                                   float& d_out) {
    float w[legacy_weights];
    std::int8_t L[legacy_weights];
    imatrix_weights(x, importance, sigma2, legacy_weights, w);
    d_out = search_symmetric(legacy_weights, 1 << (Bits - 1), x, L, w);
    for (int j = 0; j < legacy_weights; ++j) codes[j] = std::uint8_t(L[j]);
}

template <int Bits, class Block>
inline void quantize_symmetric_row(const float* x, Block* y, std::size_t n, const float* importance) {
    const float sigma2 = importance ? mean_square(x, n) : 0.0f;
    std::uint8_t codes[legacy_weights];
    for (std::size_t b = 0; b < n / legacy_weights; ++b) {
        const float* xb = x + b * legacy_weights;
        float d;
        if (importance)
            fit_symmetric_weighted<Bits>(xb, importance + b * legacy_weights, sigma2, codes, d);
        else
            fit_symmetric_ref<Bits>(xb, codes, d);
        y[b].d = to_fp16(d);
        store_codes(y[b], codes);
    }
}

// --- Q4_1 / Q5_1: w = d * q + m -----------------------------------------------------------------

// The reference fit: m = min, d = (max - min) / (2^bits - 1).
template <int Bits>
inline void fit_affine_ref(const float* x, std::uint8_t* codes, float& d_out, float& m_out) {
    constexpr int top = (1 << Bits) - 1;
    float min, max;
    min_max(x, legacy_weights, min, max);
    const float d = (max - min) / float(top);
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < legacy_weights; ++j) {
        const float v = (x[j] - min) * id + 0.5f;
        // Q4_1 clamps to 15; Q5_1's reference does not clamp (its largest code is 31 anyway).
        codes[j] = Bits == 4 ? std::uint8_t(std::min(top, truncate_code(v))) : std::uint8_t(int(v));
    }
    d_out = d;
    m_out = min;
}

template <int Bits>
inline void fit_affine_weighted(const float* x, const float* importance, float sigma2, std::uint8_t* codes,
                                float& d_out, float& m_out) {
    float w[legacy_weights];
    std::uint8_t aux[legacy_weights];
    imatrix_weights(x, importance, sigma2, legacy_weights, w);
    float min;
    d_out = search_affine(legacy_weights, (1 << Bits) - 1, x, w, codes, &min, aux, weighted_steps);
    m_out = -min;
}

template <int Bits, class Block>
inline void quantize_affine_row(const float* x, Block* y, std::size_t n, const float* importance) {
    const float sigma2 = importance ? mean_square(x, n) : 0.0f;
    std::uint8_t codes[legacy_weights];
    for (std::size_t b = 0; b < n / legacy_weights; ++b) {
        const float* xb = x + b * legacy_weights;
        float d, m;
        if (importance)
            fit_affine_weighted<Bits>(xb, importance + b * legacy_weights, sigma2, codes, d, m);
        else
            fit_affine_ref<Bits>(xb, codes, d, m);
        y[b].d = to_fp16(d);
        y[b].m = to_fp16(m);
        store_codes(y[b], codes);
    }
}

inline void quantize_row_impl(const float* x, block_q4_0* y, std::size_t n, const float* imp) {
    quantize_symmetric_row<4>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q5_0* y, std::size_t n, const float* imp) {
    quantize_symmetric_row<5>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q4_1* y, std::size_t n, const float* imp) {
    quantize_affine_row<4>(x, y, n, imp);
}
inline void quantize_row_impl(const float* x, block_q5_1* y, std::size_t n, const float* imp) {
    quantize_affine_row<5>(x, y, n, imp);
}

}  // namespace detail
}  // namespace ggml
}  // namespace edgeq
EDGEQ_GGML_EXACT_END
