// A 16-entry code book (NF4) looked up in registers with byte permutes, for CUDA >= 10.2 and
// sm_53 upwards. C++14.
//
// Why: a shared-memory table costs one shared load per pair of codes, and at batch 1 those loads
// fill the memory-instruction queue long before DRAM is busy (NF4 at 11008 x 4096 on an H100:
// 43% of the copy bandwidth without PDL, ncu's top stall "MIO throttle"). prmt selects 4 bytes
// out of 8 by 3-bit indices, so the 16 halves are kept as their low bytes and their high bytes,
// each in a pair of registers per 8 entries; code bit 3 picks between the pairs. Integer
// instructions and shared loads go down separate pipes, so the adaptor does half of a unit this
// way and half through the table (grouped.cuh): 47% -> 63% of the copy bandwidth, both with PDL.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "gemv_core.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

// PTX prmt in its default mode: byte n of the result is byte (s >> 4n) & 7 of {b, a}, or with
// bit 3 of that selector nibble set, the sign of that byte replicated (0x00 or 0xff).
// __byte_perm() only documents the 3-bit selectors.
__device__ __forceinline__ std::uint32_t prmt_b32(std::uint32_t a, std::uint32_t b, std::uint32_t s) {
    std::uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(s));
    return d;
}

// The code book's 16 values as half: lo[j] holds the low bytes of entries 4j .. 4j + 3, hi[j]
// their high bytes. Built once per thread (the compiler hoists it out of the unit loop).
struct codebook_regs {
    std::uint32_t lo[4], hi[4];

    // Lo: what rounding each value to half left (grouped.cuh, table_entry_lo), for fp32 sums.
    template <class F, bool Lo = false>
    __device__ static codebook_regs of() {
        codebook_regs t;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            t.lo[j] = t.hi[j] = 0u;
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float v = F::code_value(4 * j + k), r = Lo ? v - __half2float(__float2half_rn(v)) : v;
                const std::uint32_t b = __half_as_ushort(__float2half_rn(r));
                t.lo[j] |= (b & 0xffu) << (8 * k);
                t.hi[j] |= (b >> 8) << (8 * k);
            }
        }
        return t;
    }
};

// Four codes, the selector nibbles of s (bit 3 cleared) with their bit 3 as the byte mask m
// (0xff: entries 8..15), to half2 (code 0, code 1) and (code 2, code 3).
__device__ __forceinline__ void codebook_lookup4(const codebook_regs& t, std::uint32_t s, std::uint32_t m, __half2& p, __half2& q) {
    const std::uint32_t lo = (prmt_b32(t.lo[0], t.lo[1], s) & ~m) | (prmt_b32(t.lo[2], t.lo[3], s) & m);
    const std::uint32_t hi = (prmt_b32(t.hi[0], t.hi[1], s) & ~m) | (prmt_b32(t.hi[2], t.hi[3], s) & m);
    p = as_half2(prmt_b32(lo, hi, 0x5140u));
    q = as_half2(prmt_b32(lo, hi, 0x7362u));
}

// The 8 codes of a word (nibbles), as 4 half2 at v: v[k] = (value of byte k's low nibble, value of its
// high nibble) — what a 256-entry table of pairs indexed by byte k gives. Nibble 2k + 1 has its
// bit 3 at the top of byte k, nibble 2k at the top of byte k of w << 4: prmt's sign mode turns
// both into byte masks.
__device__ __forceinline__ void codebook_word(const codebook_regs& t, std::uint32_t w, __half2* v) {
    const std::uint32_t s = w & 0x77777777u, w4 = w << 4;
    codebook_lookup4(t, s, prmt_b32(w4, w, 0xD9C8u), v[0], v[1]);
    codebook_lookup4(t, s >> 16, prmt_b32(w4, w, 0xFBEAu), v[2], v[3]);
}

}  // namespace cuda
}  // namespace kernel
}  // namespace edgeq
