// Unpacking a 32-weight chunk with 64-bit SWAR (shift and mask whole words): the same few
// instructions on every architecture, and no byte-wise loop. See core/bitpack.hpp for the layout.
#pragma once
#include <cstdint>
#include <cstring>

#include "../../core/bitpack.hpp"

namespace edgeq {
namespace kernel {
namespace swar {

inline std::uint64_t load64(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline std::uint32_t load32(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline void store64(std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, 8); }

constexpr std::uint64_t bytes_of(unsigned b) { return 0x0101010101010101ull * b; }

// out[i] |= plane bits of code i, shifted left by `shift`.
template <int Width>
inline void plane(const std::uint8_t* in, int shift, std::uint64_t* out) {
    constexpr std::uint64_t mask = bytes_of((1u << Width) - 1u);
    if (Width == 8) {
        for (int k = 0; k < 4; ++k) out[k] |= load64(in + 8 * k) << shift;
    } else if (Width == 4) {
        const std::uint64_t a = load64(in), b = load64(in + 8);
        out[0] |= (a & mask) << shift, out[1] |= (b & mask) << shift;
        out[2] |= ((a >> 4) & mask) << shift, out[3] |= ((b >> 4) & mask) << shift;
    } else if (Width == 2) {
        const std::uint64_t a = load64(in);
        for (int k = 0; k < 4; ++k) out[k] |= ((a >> (2 * k)) & mask) << shift;
    } else {  // Width == 1: byte j holds codes j, j+4, ..., j+28
        const std::uint64_t a = load32(in);
        const std::uint64_t pair = a | ((a >> 1) << 32);  // bytes 4-7 see each bit one place lower
        for (int k = 0; k < 4; ++k) out[k] |= ((pair >> (2 * k)) & mask) << shift;
    }
}

}  // namespace swar

// The 32 codes of a chunk as four 64-bit words, codes 8k..8k+7 in word k (byte i = code 8k+i).
template <int Bits>
inline void unpack32_words(const std::uint8_t* in, std::uint64_t* w) {
    using p = plane_split<Bits>;
    w[0] = w[1] = w[2] = w[3] = 0;
    swar::plane<p::low>(in, 0, w);
    if (p::high == 2) swar::plane<2>(in + p::low_bytes, p::low, w);
    if (p::high == 1) swar::plane<1>(in + p::low_bytes, p::low, w);
}

// The 32 codes of a chunk, as bytes.
template <int Bits>
inline void unpack32(const std::uint8_t* in, std::uint8_t* codes) {
    std::uint64_t w[4];
    unpack32_words<Bits>(in, w);
    for (int k = 0; k < 4; ++k) swar::store64(codes + 8 * k, w[k]);
}

}  // namespace kernel
}  // namespace edgeq
