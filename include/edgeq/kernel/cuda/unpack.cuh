// Device-side unpacking of a 32-weight chunk (core/bitpack.hpp) into bytes of codes, for
// CUDA >= 10.2 and sm_53 upwards. C++14; includes nothing but plain headers.
#pragma once
#include <cstdint>

#include "../../config.hpp"
#include "../../core/bitpack.hpp"

namespace edgeq {
namespace kernel {
namespace cuda {

// Loads a chunk (4 * Bits bytes) as Bits 32-bit words with the widest aligned vector loads:
// chunks and rows start at multiples of the chunk size, so with a 16-byte aligned code section
// a chunk of 4 or 8 bits is 16-byte aligned, one of 2 or 6 bits 8-byte aligned.
template <int Bits>
__device__ __forceinline__ void load_chunk(const std::uint8_t* p, std::uint32_t (&w)[Bits]) {
    if (Bits % 4 == 0) {
#pragma unroll
        for (int i = 0; i < Bits / 4; ++i) {
            const uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + i);
            w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
        }
    } else if (Bits % 2 == 0) {
#pragma unroll
        for (int i = 0; i < Bits / 2; ++i) {
            const uint2 v = __ldg(reinterpret_cast<const uint2*>(p) + i);
            w[2 * i] = v.x, w[2 * i + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < Bits; ++i) w[i] = __ldg(reinterpret_cast<const unsigned int*>(p) + i);
    }
}

// Codes 4t .. 4t+3 of the chunk, one per byte (t in 0..7, a constant once unrolled). In a plane
// of width p, word m bit-field k holds codes 4m + 4p*k .. +3, so codes 4t.. sit in word t % p at
// bit offset (t / p) * p: one shift and one mask per plane for four codes.
template <int Bits>
__device__ __forceinline__ std::uint32_t codes4(const std::uint32_t (&w)[Bits], int t) {
    using split = plane_split<Bits>;
    constexpr int lo = split::low, hi = split::high;
    constexpr std::uint32_t lo_mask = 0x01010101u * ((1u << lo) - 1u);
    std::uint32_t c = (w[t % lo] >> ((t / lo) * lo)) & lo_mask;
    if (hi > 0) {
        constexpr int h = hi > 0 ? hi : 1;  // keeps the dead branch free of % 0
        constexpr std::uint32_t hi_mask = 0x01010101u * ((1u << h) - 1u);
        c |= ((w[(lo + t % h) % Bits] >> ((t / h) * h)) & hi_mask) << lo;
    }
    return c;
}

}  // namespace cuda
}  // namespace kernel
}  // namespace edgeq
