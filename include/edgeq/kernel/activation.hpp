// Activations quantized to int8, for the integer dot-product GEMV path: q8_block (blocks of 32)
// for the grouped formats and llama.cpp's legacy blocks, ggml::block_q8_K (blocks of 256) for the
// k-quants and IQ4_XS. activation_of<F>::type names the one a format's gemv_q8 takes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../core/bitpack.hpp"
#include "../format/ggml/blocks.hpp"

namespace edgeq {

// 32 activations: x_i ~ d * qs[i]. s = d * sum(qs) lets a kernel subtract a zero point exactly.
// 8 + 32 bytes = 10 bits per activation.
struct q8_block {
    float d;
    float s;
    std::int8_t qs[chunk_weights];
};
static_assert(sizeof(q8_block) == 40, "q8_block: two floats and 32 int8");

// n must be a multiple of 32.
inline void quantize_activations(const float* x, std::size_t n, q8_block* out) {
    for (std::size_t b = 0; b < n / chunk_weights; ++b) {
        const float* xb = x + b * chunk_weights;
        float amax = 0.0f;
        for (int i = 0; i < chunk_weights; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < chunk_weights; ++i) {
            out[b].qs[i] = std::int8_t(std::nearbyint(xb[i] * id));
            sum += out[b].qs[i];
        }
        out[b].d = d;
        out[b].s = d * float(sum);
    }
}

template <class Block>
struct ggml_format;

// The activation block a format's int8 dot product takes.
template <class F>
struct activation_of {
    using type = q8_block;
};
template <class Block>
struct activation_of<ggml_format<Block>> {
    using type = typename std::conditional<Block::weights == ggml::qk_k, ggml::block_q8_K, q8_block>::type;
};

// Values per activation block of format F (32, or 256 for Q8_K).
template <class F>
constexpr std::size_t activation_block_weights() {
    return std::is_same<typename activation_of<F>::type, ggml::block_q8_K>::value ? std::size_t(ggml::qk_k)
                                                                                 : std::size_t(chunk_weights);
}

namespace detail {
// ggml's nearest_int: round to nearest, ties to even, for |f| < 2^22.
inline int ggml_nearest_int(float f) {
    const float v = f + 12582912.0f;
    std::int32_t i;
    std::memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}
}  // namespace detail

// n must be a multiple of 256. The same rounding as llama.cpp's quantize_row_q8_K_ref: the value
// of largest magnitude maps to -127, d = max / -127, q = min(127, round(x / d)).
inline void quantize_activations(const float* x, std::size_t n, ggml::block_q8_K* out) {
    for (std::size_t b = 0; b < n / ggml::qk_k; ++b, x += ggml::qk_k) {
        ggml::block_q8_K& y = out[b];
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < ggml::qk_k; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) amax = ax, max = x[j];
        }
        if (amax == 0.0f) {
            y.d = 0.0f;
            std::memset(y.qs, 0, sizeof y.qs);
            std::memset(y.bsums, 0, sizeof y.bsums);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < ggml::qk_k; ++j) y.qs[j] = std::int8_t(std::min(127, detail::ggml_nearest_int(iscale * x[j])));
        for (int j = 0; j < ggml::qk_k / 16; ++j) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += y.qs[16 * j + i];
            y.bsums[j] = std::int16_t(sum);
        }
        y.d = 1.0f / iscale;
    }
}

}  // namespace edgeq
