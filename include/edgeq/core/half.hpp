// IEEE binary16 <-> binary32 in portable C++14, usable on host and device. Rounding is to
// nearest even, as F16C, CUDA's __float2half_rn and numpy do, so stored scales are
// bit-identical whichever of them wrote the file.
#pragma once
#include <cstdint>
#include <cstring>

#include "../config.hpp"

namespace edgeq {

EDGEQ_HOST_DEVICE inline std::uint32_t f32_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

EDGEQ_HOST_DEVICE inline float f32_from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

EDGEQ_HOST_DEVICE inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    std::uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf, nan
    if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return f32_from_bits(sign);
    // Subnormal: normalise the mantissa.
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
    }
    return f32_from_bits(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

EDGEQ_HOST_DEVICE inline std::uint16_t float_to_half(float f) {
    const std::uint32_t u = f32_bits(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    const std::uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u)  // inf stays inf, nan stays a quiet nan
        return std::uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    if (abs >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds past 65504
    if (abs < 0x38800000u) {  // below 2^-14: subnormal or zero
        if (abs < 0x33000000u) return std::uint16_t(sign);  // below half the smallest subnormal
        const std::uint32_t e = abs >> 23;
        const std::uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // 14..24
        std::uint32_t r = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u);
        const std::uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
        return std::uint16_t(sign | r);
    }
    std::uint32_t r = ((abs >> 13) - (112u << 10));
    const std::uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carries into the exponent correctly
    return std::uint16_t(sign | r);
}

// Storage types for scales. They are distinct types (not raw integers) so that a scale policy
// can name them and a block layout can static_assert their size.
struct fp16_t {
    std::uint16_t bits;
    EDGEQ_HOST_DEVICE float to_float() const { return half_to_float(bits); }
    EDGEQ_HOST_DEVICE static fp16_t from_float(float f) { return fp16_t{float_to_half(f)}; }
};
static_assert(sizeof(fp16_t) == 2, "fp16_t must be two bytes");

struct fp32_t {
    float value;
    EDGEQ_HOST_DEVICE float to_float() const { return value; }
    EDGEQ_HOST_DEVICE static fp32_t from_float(float f) { return fp32_t{f}; }
};
static_assert(sizeof(fp32_t) == 4, "fp32_t must be four bytes");

}  // namespace edgeq
