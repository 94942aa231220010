// Unpacking a 32-weight chunk in NEON registers (Cortex-A57, ARMv8.0): each plane of the
// layout in core/bitpack.hpp takes one or two loads, a shift (vshrq/vshlq) or bit test (vtstq)
// and a mask per 16 codes, with no trip through memory.
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_NEON
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "../../core/bitpack.hpp"

namespace edgeq {
namespace kernel {
namespace neon {

// The 32 codes of a chunk: lo holds codes 0-15, hi codes 16-31.
struct codes32 {
    uint8x16_t lo, hi;
};

inline uint8x16_t load_s8_const(const std::int8_t* p) { return vreinterpretq_u8_s8(vld1q_s8(p)); }

// One plane of width W (core/bitpack.hpp), its bits placed at bit Shift of each code.
template <int W, int Shift>
struct plane;

template <>
struct plane<8, 0> {
    static codes32 load(const std::uint8_t* in) { return {vld1q_u8(in), vld1q_u8(in + 16)}; }
};

// Byte j holds codes j (low nibble) and j + 16 (high nibble).
template <>
struct plane<4, 0> {
    static codes32 load(const std::uint8_t* in) {
        const uint8x16_t b = vld1q_u8(in);
        return {vandq_u8(b, vdupq_n_u8(0x0f)), vshrq_n_u8(b, 4)};
    }
};

// Byte j (of 8) holds codes j, j + 8, j + 16, j + 24 at bits 0, 2, 4, 6: both halves of a
// doubled register shift by their own count, positive (left) or negative (right), then mask.
template <int Shift>
struct plane<2, Shift> {
    static codes32 load(const std::uint8_t* in) {
        static const std::int8_t s_lo[16] = {Shift,     Shift,     Shift,     Shift,     Shift,     Shift,
                                             Shift,     Shift,     Shift - 2, Shift - 2, Shift - 2, Shift - 2,
                                             Shift - 2, Shift - 2, Shift - 2, Shift - 2};
        static const std::int8_t s_hi[16] = {Shift - 4, Shift - 4, Shift - 4, Shift - 4, Shift - 4, Shift - 4,
                                             Shift - 4, Shift - 4, Shift - 6, Shift - 6, Shift - 6, Shift - 6,
                                             Shift - 6, Shift - 6, Shift - 6, Shift - 6};
        const uint8x8_t a = vld1_u8(in);
        const uint8x16_t aa = vcombine_u8(a, a);
        const uint8x16_t m = vdupq_n_u8(std::uint8_t(3u << Shift));
        return {vandq_u8(vshlq_u8(aa, vld1q_s8(s_lo)), m), vandq_u8(vshlq_u8(aa, vld1q_s8(s_hi)), m)};
    }
};

// Byte j (of 4) holds codes j, j + 4, ..., j + 28 at bits 0..7: code i is bit i / 4 of byte
// i % 4. The 4 bytes repeated over the register, vtst against that bit gives 0 or 0xff.
template <int Shift>
struct plane<1, Shift> {
    static codes32 load(const std::uint8_t* in) {
        static const std::int8_t b_lo[16] = {1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8};
        static const std::int8_t b_hi[16] = {16, 16, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, -128, -128, -128, -128};
        std::uint32_t v;
        std::memcpy(&v, in, 4);
        const uint8x16_t aa = vreinterpretq_u8_u32(vdupq_n_u32(v));
        const uint8x16_t m = vdupq_n_u8(std::uint8_t(1u << Shift));
        return {vandq_u8(vtstq_u8(aa, load_s8_const(b_lo)), m), vandq_u8(vtstq_u8(aa, load_s8_const(b_hi)), m)};
    }
};

template <int Bits, int High = plane_split<Bits>::high>
struct unpack {
    static codes32 load(const std::uint8_t* in) {
        using p = plane_split<Bits>;
        const codes32 a = plane<p::low, 0>::load(in);
        const codes32 b = plane<p::high, p::low>::load(in + p::low_bytes);
        return {vorrq_u8(a.lo, b.lo), vorrq_u8(a.hi, b.hi)};
    }
};
template <int Bits>
struct unpack<Bits, 0> {
    static codes32 load(const std::uint8_t* in) { return plane<plane_split<Bits>::low, 0>::load(in); }
};

// The 32 codes of a chunk, as bytes (for tests and for the fp32 path).
template <int Bits>
inline void unpack32(const std::uint8_t* in, std::uint8_t* codes) {
    const codes32 c = unpack<Bits>::load(in);
    vst1q_u8(codes, c.lo);
    vst1q_u8(codes + 16, c.hi);
}

}  // namespace neon
}  // namespace kernel
}  // namespace edgeq
#endif
