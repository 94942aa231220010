// llama.cpp's Q4_K with its codes in another order: the GPU engine's device layout for Q4_K.
//
//   Q4_K         qs[32 k + l] holds weight 64 k + l (low nibble) and 64 k + 32 + l (high), so
//                sub-block j's 32 codes are one nibble of 32 bytes, shared with sub-block j ^ 1
//   Q4_K paired  qs[16 j + i] holds weight 32 j + i (low) and 32 j + 16 + i (high): each
//                sub-block's codes are 16 contiguous bytes in Q4_0's nibble order
//
// d, dmin and the 12 bytes of 6-bit scales and minimums are as stored; 144 bytes and 4.5 bits
// per weight either way. Why: a GPU lane that decodes one sub-block then loads 16 bytes instead of
// 32 (half of them another lane's) and decodes them with the lop3 pairs of Q4_0 and int4
// (kernel/cuda/gemv_core.cuh, nibbles_paired). The engine repacks on upload
// (engine/cuda/llama_gpu.cuh); the values are unchanged bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "blocks.hpp"

namespace edgeq {
namespace ggml {

// 4.5 bpw: Q4_K's fields, codes in sub-block order (above). No GGUF type: a device layout only.
struct block_q4_K_paired {
    static constexpr int weights = qk_k;
    static constexpr const char* name() { return "Q4_K (paired)"; }
    fp16_t d, dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q4_K_paired) == sizeof(block_q4_K), "Q4_K paired: the same 144 bytes as Q4_K");

// Code l (0..31) of sub-block j (0..7) of a Q4_K block, and of a paired one.
inline int q4_K_code(const block_q4_K& b, int j, int l) { return (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15; }
inline int q4_K_code(const block_q4_K_paired& b, int j, int l) { return (b.qs[16 * j + l % 16] >> (4 * (l / 16))) & 15; }

inline block_q4_K_paired pair_codes(const block_q4_K& b) {
    block_q4_K_paired p;
    p.d = b.d, p.dmin = b.dmin;
    for (int i = 0; i < 12; ++i) p.scales[i] = b.scales[i];
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < 16; ++i) p.qs[16 * j + i] = std::uint8_t(q4_K_code(b, j, i) | q4_K_code(b, j, i + 16) << 4);
    return p;
}

// The inverse, for tests and for reading a device copy back.
inline block_q4_K unpair_codes(const block_q4_K_paired& p) {
    block_q4_K b;
    b.d = p.d, b.dmin = p.dmin;
    for (int i = 0; i < 12; ++i) b.scales[i] = p.scales[i];
    for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) b.qs[32 * k + l] = std::uint8_t(q4_K_code(p, 2 * k, l) | q4_K_code(p, 2 * k + 1, l) << 4);
    return b;
}

inline void pair_codes(const block_q4_K* in, std::size_t n, block_q4_K_paired* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = pair_codes(in[i]);
}

}  // namespace ggml
}  // namespace edgeq
