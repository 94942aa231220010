// llama.cpp / GGUF block layouts, byte for byte as the GGUF specification and ggml declare them.
// Each block holds `weights` consecutive weights of a row; a row is a sequence of blocks.
// `type_id` is the GGUF tensor type number. fp16 fields are stored as raw binary16 bits.
#pragma once
#include <cstdint>

#include "../../core/half.hpp"

namespace edgeq {
namespace ggml {

constexpr int qk_k = 256;  // weights per k-quant super-block

// --- legacy formats: blocks of 32 ----------------------------------------------------------

// 4.5 bpw: w = d * (q - 8), q in [0, 15]. qs[j] holds weights j (low nibble) and j+16 (high).
struct block_q4_0 {
    static constexpr int weights = 32, type_id = 2;
    static constexpr const char* name() { return "Q4_0"; }
    fp16_t d;
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q4_0) == 18, "Q4_0: fp16 + 16 bytes");

// 5 bpw: w = d * q + m, q in [0, 15].
struct block_q4_1 {
    static constexpr int weights = 32, type_id = 3;
    static constexpr const char* name() { return "Q4_1"; }
    fp16_t d, m;
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q4_1) == 20, "Q4_1: 2 x fp16 + 16 bytes");

// 5.5 bpw: w = d * (q - 16), q in [0, 31]; bit 4 of weight j is bit j of qh (little-endian u32).
struct block_q5_0 {
    static constexpr int weights = 32, type_id = 6;
    static constexpr const char* name() { return "Q5_0"; }
    fp16_t d;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_0) == 22, "Q5_0: fp16 + 4 + 16 bytes");

// 6 bpw: w = d * q + m, q in [0, 31].
struct block_q5_1 {
    static constexpr int weights = 32, type_id = 7;
    static constexpr const char* name() { return "Q5_1"; }
    fp16_t d, m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_1) == 24, "Q5_1: 2 x fp16 + 4 + 16 bytes");

// 8.5 bpw: w = d * q, q in [-127, 127].
struct block_q8_0 {
    static constexpr int weights = 32, type_id = 8;
    static constexpr const char* name() { return "Q8_0"; }
    fp16_t d;
    std::int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34, "Q8_0: fp16 + 32 bytes");

// 4.5 bpw: w = d * kvalues_iq4nl[q], a non-uniform 16-value int8 code-book; nibbles as Q4_0.
struct block_iq4_nl {
    static constexpr int weights = 32, type_id = 20;
    static constexpr const char* name() { return "IQ4_NL"; }
    fp16_t d;
    std::uint8_t qs[16];
};
static_assert(sizeof(block_iq4_nl) == 18, "IQ4_NL: fp16 + 16 bytes");

// --- k-quants: super-blocks of 256 ---------------------------------------------------------

// 2.625 bpw: 16 sub-blocks of 16; w = d * (scales[i] & 15) * q - dmin * (scales[i] >> 4), q in [0, 3].
struct block_q2_K {
    static constexpr int weights = qk_k, type_id = 10;
    static constexpr const char* name() { return "Q2_K"; }
    std::uint8_t scales[16];
    std::uint8_t qs[64];
    fp16_t d, dmin;
};
static_assert(sizeof(block_q2_K) == 84, "Q2_K: 16 + 64 + 2 x fp16");

// 3.4375 bpw: 16 sub-blocks of 16, 6-bit signed scales packed in 12 bytes; q in [-4, 3]
// from 2 low bits in qs and the high bit in hmask (set means no -4 offset).
struct block_q3_K {
    static constexpr int weights = qk_k, type_id = 11;
    static constexpr const char* name() { return "Q3_K"; }
    std::uint8_t hmask[32];
    std::uint8_t qs[64];
    std::uint8_t scales[12];
    fp16_t d;
};
static_assert(sizeof(block_q3_K) == 110, "Q3_K: 32 + 64 + 12 + fp16");

// 4.5 bpw: 8 sub-blocks of 32; 6-bit scales and mins packed in 12 bytes;
// w = d * sc * q - dmin * m, q in [0, 15].
struct block_q4_K {
    static constexpr int weights = qk_k, type_id = 12;
    static constexpr const char* name() { return "Q4_K"; }
    fp16_t d, dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q4_K) == 144, "Q4_K: 2 x fp16 + 12 + 128");

// 5.5 bpw: as Q4_K with a fifth bit per weight in qh; q in [0, 31].
struct block_q5_K {
    static constexpr int weights = qk_k, type_id = 13;
    static constexpr const char* name() { return "Q5_K"; }
    fp16_t d, dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q5_K) == 176, "Q5_K: 2 x fp16 + 12 + 32 + 128");

// 6.5625 bpw: 16 sub-blocks of 16 with int8 scales; w = d * scales[i] * (q - 32), q in [0, 63]
// from 4 low bits in ql and 2 high bits in qh.
struct block_q6_K {
    static constexpr int weights = qk_k, type_id = 14;
    static constexpr const char* name() { return "Q6_K"; }
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    fp16_t d;
};
static_assert(sizeof(block_q6_K) == 210, "Q6_K: 128 + 64 + 16 + fp16");

// 4.25 bpw: IQ4_NL's code-book over 8 sub-blocks of 32 with 6-bit scales (low 4 bits in
// scales_l, high 2 bits in scales_h), w = d * (ls - 32) * kvalues_iq4nl[q].
struct block_iq4_xs {
    static constexpr int weights = qk_k, type_id = 23;
    static constexpr const char* name() { return "IQ4_XS"; }
    fp16_t d;
    std::uint16_t scales_h;
    std::uint8_t scales_l[4];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_iq4_xs) == 136, "IQ4_XS: fp16 + u16 + 4 + 128");

// --- activation blocks for dot products ----------------------------------------------------

// Q8_K (not stored in files): 256 int8 activations, fp32 scale, sums of each 16.
struct block_q8_K {
    static constexpr int weights = qk_k, type_id = 15;
    static constexpr const char* name() { return "Q8_K"; }
    float d;
    std::int8_t qs[qk_k];
    std::int16_t bsums[qk_k / 16];
};
static_assert(sizeof(block_q8_K) == 292, "Q8_K: float + 256 + 16 x int16");

// The IQ4_NL / IQ4_XS code-book (GGUF specification).
EDGEQ_HOST_DEVICE inline int kvalues_iq4nl(int q) {
    const signed char v[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    return v[q & 15];
}

}  // namespace ggml
}  // namespace edgeq
