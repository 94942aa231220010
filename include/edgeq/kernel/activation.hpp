// Activations quantized to int8 in blocks of 32, for the integer dot-product GEMV path.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../core/bitpack.hpp"

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

}  // namespace edgeq
