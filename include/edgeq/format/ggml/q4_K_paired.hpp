// llama.cpp's Q4_K with its codes and scales in another order: the GPU engine's device layout
// for Q4_K.
//
//   Q4_K         qs[32 k + l] holds weight 64 k + l (low nibble) and 64 k + 32 + l (high), so
//                sub-block j's 32 codes are one nibble of 32 bytes, shared with sub-block j ^ 1
//   Q4_K paired  qs[16 j + i] holds weight 32 j + i (low) and 32 j + 16 + i (high): each
//                sub-block's codes are 16 contiguous bytes in Q4_0's nibble order
//
// The 12 bytes of 6-bit scales and minimums are rearranged too (k4_paired_scale_min): byte j
// (j < 8) holds sub-block j's scale in its low six bits and the low two bits of its minimum on
// top; bytes 8-11 hold the minimums' high four bits, sub-block j's in nibble j of their 32-bit
// little-endian word. d and dmin are as stored; 144 bytes and 4.5 bits per weight either way.
// Why: a GPU lane that decodes one sub-block then loads 16 bytes instead of 32 (half of them
// another lane's) and decodes them with the lop3 pairs of Q4_0 and int4 (kernel/cuda/
// gemv_core.cuh, nibbles_paired), and finds its scale with one byte permute instead of two
// cases selected (H100, batch 1: 2.5-3.5% of the time). The engine repacks on upload
// (engine/cuda/llama_gpu.cuh); the values are unchanged bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "blocks.hpp"
#include "decode.hpp"

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

// Sub-block j's 6-bit scale and minimum in the paired layout (above).
EDGEQ_HOST_DEVICE inline void k4_paired_scale_min(int j, const std::uint8_t* s, int& sc, int& m) {
    sc = s[j] & 63;
    m = (s[j] >> 6) | (((s[8 + j / 2] >> (4 * (j % 2))) & 15) << 2);
}

inline block_q4_K_paired pair_codes(const block_q4_K& b) {
    block_q4_K_paired p;
    p.d = b.d, p.dmin = b.dmin;
    for (int i = 8; i < 12; ++i) p.scales[i] = 0;
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_scale_min(j, b.scales, sc, m);
        p.scales[j] = std::uint8_t(sc | (m & 3) << 6);
        p.scales[8 + j / 2] = std::uint8_t(p.scales[8 + j / 2] | (m >> 2) << (4 * (j % 2)));
    }
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < 16; ++i) p.qs[16 * j + i] = std::uint8_t(q4_K_code(b, j, i) | q4_K_code(b, j, i + 16) << 4);
    return p;
}

// The inverse, for tests and for reading a device copy back.
inline block_q4_K unpair_codes(const block_q4_K_paired& p) {
    block_q4_K b;
    b.d = p.d, b.dmin = p.dmin;
    for (int i = 0; i < 12; ++i) b.scales[i] = 0;
    for (int j = 0; j < 8; ++j) {  // k4_scale_min's layout
        int sc, m;
        k4_paired_scale_min(j, p.scales, sc, m);
        if (j < 4) {
            b.scales[j] = std::uint8_t(b.scales[j] | sc);
            b.scales[j + 4] = std::uint8_t(b.scales[j + 4] | m);
        } else {
            b.scales[j + 4] = std::uint8_t((sc & 15) | (m & 15) << 4);
            b.scales[j - 4] = std::uint8_t(b.scales[j - 4] | (sc >> 4) << 6);
            b.scales[j] = std::uint8_t(b.scales[j] | (m >> 4) << 6);
        }
    }
    for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) b.qs[32 * k + l] = std::uint8_t(q4_K_code(p, 2 * k, l) | q4_K_code(p, 2 * k + 1, l) << 4);
    return b;
}

inline void pair_codes(const block_q4_K* in, std::size_t n, block_q4_K_paired* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = pair_codes(in[i]);
}

}  // namespace ggml
}  // namespace edgeq
