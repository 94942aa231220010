// int3 for the GPU: a 3-bit grouped format (format/grouped.hpp) with each chunk's codes placed
// in the mantissas of fp16 pairs, so that a GPU decodes them with masks instead of shifts.
//
// mantissa3<F> has F's blob, sections, sizes and scales; only the 12 bytes of each 32-weight
// chunk are arranged differently. Read as three little-endian words W0, W1, W2 of two 16-bit
// halves each:
//     pairs p = 0..14  weights 2p and 2p+1: word p / 5, slot s = p % 5; weight 2p's code in
//                      bits 3s..3s+2 of the low half, weight 2p+1's in the same bits of the high
//     pair 15          weights 30 and 31: bit i of weight 30's code in bit 15 of W_i, bit i of
//                      weight 31's in bit 31 of W_i
// (W & 0x00070007) | 0x64006400 is then the half2 (1024 + c, 1024 + c'); slots 1 and 2 give
// 1024 + 8c and 1024 + 64c (exact in fp16), slots 3 and 4 the same after one shift by 9. Per 32
// weights that is 24 integer instructions against 56 for core/bitpack.hpp's 2 + 1 bit planes,
// and the pairs come out in column order (kernel/cuda/grouped.cuh, mantissa3_adaptor).
//
// Nothing on the CPU reads this layout: the GPU engine repacks its int3 matrices into it on
// upload (engine/cuda/llama_gpu.cuh), as it repacks Q4_K into Q4_K paired.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../config.hpp"
#include "../core/bitpack.hpp"
#include "grouped.hpp"

namespace edgeq {

template <class F>
struct mantissa3 : F {
    static_assert(F::bits == 3 && F::is_uniform,
                  "mantissa3: the half-mantissa layout holds uniform 3-bit codes; other widths keep core/bitpack.hpp's planes");
    using plane_format = F;  // the same blob with the chunks as core/bitpack.hpp packs them
    static std::string name() { return F::name() + " (codes in half mantissas)"; }
};

// 32 codes (each below 8) to a 12-byte chunk of the layout above, and back.
EDGEQ_HOST_DEVICE inline void pack_mantissa3(const std::uint8_t* codes, std::uint8_t* out) {
    std::uint32_t w[3] = {0u, 0u, 0u};
    for (int p = 0; p < 15; ++p) {
        const int s = 3 * (p % 5);
        w[p / 5] |= (std::uint32_t(codes[2 * p] & 7u) << s) | (std::uint32_t(codes[2 * p + 1] & 7u) << (16 + s));
    }
    for (int i = 0; i < 3; ++i) w[i] |= (std::uint32_t((codes[30] >> i) & 1u) << 15) | (std::uint32_t((codes[31] >> i) & 1u) << 31);
    for (int i = 0; i < 12; ++i) out[i] = std::uint8_t(w[i / 4] >> (8 * (i % 4)));
}
EDGEQ_HOST_DEVICE inline void unpack_mantissa3(const std::uint8_t* in, std::uint8_t* codes) {
    std::uint32_t w[3] = {0u, 0u, 0u};
    for (int i = 0; i < 12; ++i) w[i / 4] |= std::uint32_t(in[i]) << (8 * (i % 4));
    for (int p = 0; p < 15; ++p) {
        const int s = 3 * (p % 5);
        codes[2 * p] = std::uint8_t((w[p / 5] >> s) & 7u);
        codes[2 * p + 1] = std::uint8_t((w[p / 5] >> (16 + s)) & 7u);
    }
    codes[30] = codes[31] = 0;
    for (int i = 0; i < 3; ++i) {
        codes[30] = std::uint8_t(codes[30] | (((w[i] >> 15) & 1u) << i));
        codes[31] = std::uint8_t(codes[31] | (((w[i] >> 31) & 1u) << i));
    }
}

// n chunks of core/bitpack.hpp's 3-bit planes to the mantissa layout (in may not be out).
inline void planes_to_mantissa3(const std::uint8_t* in, std::size_t n, std::uint8_t* out) {
    std::uint8_t codes[chunk_weights];
    for (std::size_t i = 0; i < n; ++i) {
        unpack_chunk<3>(in + 12 * i, codes);
        pack_mantissa3(codes, out + 12 * i);
    }
}

// A view of a blob laid out as G, for a format G with F's blob layout (mantissa3<F> and F).
template <class G, class F>
EDGEQ_HOST_DEVICE qview<G> relabel(const qview<F>& v) {
    qview<G> r;
    r.rows = v.rows, r.cols = v.cols, r.codes = v.codes, r.scales = v.scales, r.zeros = v.zeros;
    r.dq_factors = v.dq_factors, r.dq_mean = v.dq_mean;
    return r;
}

}  // namespace edgeq
