// Dense bit packing of N-bit codes, N in {2,3,4,5,6,8}, in chunks of 32 weights.
//
// A chunk of 32 codes takes exactly 4*N bytes (no padding bits). The N bits are split into at
// most two planes whose widths are 8, 4, 2 or 1, so every plane unpacks with one shift and one
// mask per vector, the same on SSE, AVX2, NEON and CUDA:
//     2 = 2      3 = 2 + 1      4 = 4      5 = 4 + 1      6 = 4 + 2      8 = 8
// A plane of width w occupies 4*w bytes; byte j holds the codes j + k*4w (k = 0 .. 8/w - 1) at
// bit offset k*w. So the 4-bit plane holds codes j and j+16 in byte j (as ggml's Q4_0 does), the
// 2-bit plane codes j, j+8, j+16, j+24, the 1-bit plane codes j, j+4, ..., j+28. The low plane
// comes first; the high plane holds the bits above it.
#pragma once
#include <cstdint>

#include "../config.hpp"

namespace edgeq {

constexpr int chunk_weights = 32;

template <int Bits>
struct plane_split {
    static_assert(Bits == 2 || Bits == 3 || Bits == 4 || Bits == 5 || Bits == 6 || Bits == 8,
                  "edgeq packs 2, 3, 4, 5, 6 or 8 bits per weight; pick one of those widths");
    static constexpr int low = Bits >= 8 ? 8 : Bits >= 4 ? 4 : 2;
    static constexpr int high = Bits - low;  // 0, 1 or 2
    static constexpr int low_bytes = 4 * low;
    static constexpr int high_bytes = 4 * high;
    static constexpr int chunk_bytes = 4 * Bits;
};

// One packed chunk, declared once so its size is checked for every width.
template <int Bits>
struct packed_chunk {
    std::uint8_t bytes[plane_split<Bits>::chunk_bytes];
};
static_assert(sizeof(packed_chunk<2>) == 8, "2 bits x 32 weights = 8 bytes");
static_assert(sizeof(packed_chunk<3>) == 12, "3 bits x 32 weights = 12 bytes");
static_assert(sizeof(packed_chunk<4>) == 16, "4 bits x 32 weights = 16 bytes");
static_assert(sizeof(packed_chunk<5>) == 20, "5 bits x 32 weights = 20 bytes");
static_assert(sizeof(packed_chunk<6>) == 24, "6 bits x 32 weights = 24 bytes");
static_assert(sizeof(packed_chunk<8>) == 32, "8 bits x 32 weights = 32 bytes");

namespace detail {

EDGEQ_HOST_DEVICE inline void pack_plane(const std::uint8_t* codes, int width, int shift,
                                         std::uint8_t* out) {
    const int nbytes = 4 * width;
    const int per_byte = 8 / width;
    const unsigned mask = (1u << width) - 1u;
    for (int j = 0; j < nbytes; ++j) {
        unsigned b = 0;
        for (int k = 0; k < per_byte; ++k) b |= ((unsigned(codes[j + k * nbytes]) >> shift) & mask) << (k * width);
        out[j] = std::uint8_t(b);
    }
}

EDGEQ_HOST_DEVICE inline void unpack_plane(const std::uint8_t* in, int width, int shift,
                                           std::uint8_t* codes) {
    const int nbytes = 4 * width;
    const int per_byte = 8 / width;
    const unsigned mask = (1u << width) - 1u;
    for (int j = 0; j < nbytes; ++j)
        for (int k = 0; k < per_byte; ++k)
            codes[j + k * nbytes] = std::uint8_t(codes[j + k * nbytes] | (((unsigned(in[j]) >> (k * width)) & mask) << shift));
}

}  // namespace detail

// codes: 32 values below 2^Bits.  out: plane_split<Bits>::chunk_bytes bytes.
template <int Bits>
EDGEQ_HOST_DEVICE inline void pack_chunk(const std::uint8_t* codes, std::uint8_t* out) {
    using p = plane_split<Bits>;
    detail::pack_plane(codes, p::low, 0, out);
    if (p::high) detail::pack_plane(codes, p::high, p::low, out + p::low_bytes);
}

template <int Bits>
EDGEQ_HOST_DEVICE inline void unpack_chunk(const std::uint8_t* in, std::uint8_t* codes) {
    using p = plane_split<Bits>;
    for (int i = 0; i < chunk_weights; ++i) codes[i] = 0;
    detail::unpack_plane(in, p::low, 0, codes);
    if (p::high) detail::unpack_plane(in + p::low_bytes, p::high, p::low, codes);
}

}  // namespace edgeq
