// Reference dequantizers for llama.cpp's block formats, with GGUF/ggml semantics: every weight is
// computed with the same float operations, in the same order, as ggml's dequantize_row_* (so the
// results are bit-identical with a compiler that does not contract a * b - c into an fma), and
// tests/data/ggml/decode_* holds digests of ggml's own output that the tests check.
//
// Plain C++14 for host and device: no library beyond <cstdint>/<cstring>.
//
//     ggml::dequantize_row<Block>(const Block* x, float* y, std::size_t n)   // n weights
//     ggml::dequantize_block(const Block& b, float* y)                       // Block::weights
//
// The helpers that unpack the k-quant scales are shared with the kernels (kernel/*/ggml.hpp).
#pragma once
#include <cstdint>
#include <cstring>

#include "../../config.hpp"
#include "blocks.hpp"

namespace edgeq {
namespace ggml {

// --- scale unpacking ----------------------------------------------------------------------------

// Q4_K / Q5_K: 8 sub-blocks with 6-bit scale and min in 12 bytes. Sub-blocks 0-3 take the low six
// bits of bytes j and j + 4; sub-blocks 4-7 take a nibble of byte j + 4 and the top two bits of
// bytes j - 4 (scale) and j (min).
EDGEQ_HOST_DEVICE inline void k4_scale_min(int j, const std::uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q3_K: 16 signed 6-bit scales in 12 bytes: low nibbles in bytes 0-7 (sub-blocks 0-7 the low
// nibble, 8-15 the high nibble of byte j - 8), the top two bits in bytes 8-11 (byte 8 + j % 4,
// bits 2 * (j / 4)). Returns the scale minus 32, in [-32, 31].
EDGEQ_HOST_DEVICE inline int q3k_scale(int j, const std::uint8_t* s) {
    const int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
    const int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

// IQ4_XS: 8 sub-blocks of 32 with 6-bit scales (low nibble in scales_l, two bits in scales_h),
// returned minus 32.
EDGEQ_HOST_DEVICE inline int iq4xs_scale(int ib, const block_iq4_xs& b) {
    const int lo = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    const int hi = (b.scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

// Bit j of a block's 32-bit qh field (Q5_0, Q5_1), read as little-endian bytes.
EDGEQ_HOST_DEVICE inline std::uint32_t load_qh(const std::uint8_t* qh) {
    return std::uint32_t(qh[0]) | (std::uint32_t(qh[1]) << 8) | (std::uint32_t(qh[2]) << 16) | (std::uint32_t(qh[3]) << 24);
}

// --- one block ----------------------------------------------------------------------------------

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q4_0& b, float* y) {
    const float d = b.d.to_float();
    for (int j = 0; j < 16; ++j) {
        y[j] = float((b.qs[j] & 0x0f) - 8) * d;
        y[j + 16] = float((b.qs[j] >> 4) - 8) * d;
    }
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q4_1& b, float* y) {
    const float d = b.d.to_float(), m = b.m.to_float();
    for (int j = 0; j < 16; ++j) {
        y[j] = float(b.qs[j] & 0x0f) * d + m;
        y[j + 16] = float(b.qs[j] >> 4) * d + m;
    }
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q5_0& b, float* y) {
    const float d = b.d.to_float();
    const std::uint32_t qh = load_qh(b.qh);
    for (int j = 0; j < 16; ++j) {
        const int h0 = int((qh >> j) & 1u) << 4, h1 = int((qh >> (j + 16)) & 1u) << 4;
        y[j] = float(((b.qs[j] & 0x0f) | h0) - 16) * d;
        y[j + 16] = float(((b.qs[j] >> 4) | h1) - 16) * d;
    }
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q5_1& b, float* y) {
    const float d = b.d.to_float(), m = b.m.to_float();
    const std::uint32_t qh = load_qh(b.qh);
    for (int j = 0; j < 16; ++j) {
        const int h0 = int((qh >> j) & 1u) << 4, h1 = int((qh >> (j + 16)) & 1u) << 4;
        y[j] = float((b.qs[j] & 0x0f) | h0) * d + m;
        y[j + 16] = float((b.qs[j] >> 4) | h1) * d + m;
    }
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q8_0& b, float* y) {
    const float d = b.d.to_float();
    for (int j = 0; j < 32; ++j) y[j] = float(b.qs[j]) * d;
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_iq4_nl& b, float* y) {
    const float d = b.d.to_float();
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(kvalues_iq4nl(b.qs[j] & 0x0f));
        y[j + 16] = d * float(kvalues_iq4nl(b.qs[j] >> 4));
    }
}

// Q2_K: weights 128 h + 32 k + l (h half, k shift pair, l < 32) are bits 2k of qs[32 h + l];
// sub-block (weight / 16) has scale nibble and min nibble in scales[].
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q2_K& b, float* y) {
    const float d = b.d.to_float(), dmin = b.dmin.to_float();
    for (int i = 0; i < 256; i += 16) {
        const int sc = b.scales[i / 16];
        const float dl = d * float(sc & 0x0f), ml = dmin * float(sc >> 4);
        const std::uint8_t* q = b.qs + 32 * (i / 128) + (i % 32);
        const int shift = 2 * ((i % 128) / 32);
        for (int l = 0; l < 16; ++l) y[i + l] = dl * float((q[l] >> shift) & 3) - ml;
    }
}

// Q3_K: the two low bits as Q2_K; the high bit of weight i is bit i / 32 of hmask[i % 32]:
// set means q, clear means q - 4. Scales are signed (q3k_scale).
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q3_K& b, float* y) {
    const float d = b.d.to_float();
    for (int i = 0; i < 256; i += 16) {
        const float dl = d * float(q3k_scale(i / 16, b.scales));
        const std::uint8_t* q = b.qs + 32 * (i / 128) + (i % 32);
        const std::uint8_t* hm = b.hmask + (i % 32);
        const int shift = 2 * ((i % 128) / 32);
        const int bit = i / 32;
        for (int l = 0; l < 16; ++l) y[i + l] = dl * float(((q[l] >> shift) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4));
    }
}

// Q4_K: 64 weights per 32 bytes of qs, low nibbles first; 8 sub-blocks of 32.
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q4_K& b, float* y) {
    const float d = b.d.to_float(), dmin = b.dmin.to_float();
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_scale_min(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * float((q[l] >> shift) & 0x0f) - ml;
    }
}

// Q5_K: Q4_K plus bit j of qh[l] for weight 32 j + l.
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q5_K& b, float* y) {
    const float d = b.d.to_float(), dmin = b.dmin.to_float();
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_scale_min(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l)
            y[32 * j + l] = dl * float(((q[l] >> shift) & 0x0f) + (((b.qh[l] >> j) & 1) << 4)) - ml;
    }
}

// Q6_K: per half h (128 weights), weight 128 h + 32 k + l (k < 4, l < 32) has its low nibble in
// ql[64 h + l + 32 (k & 1)] (low nibble for k < 2, high for k >= 2) and two high bits at 2 k of
// qh[32 h + l]; the scale of weight i is scales[i / 16].
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q6_K& b, float* y) {
    const float d = b.d.to_float();
    for (int i = 0; i < 256; ++i) {
        const int h = i / 128, k = (i % 128) / 32, l = i % 32;
        const int lo = (b.ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0x0f;
        const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
        y[i] = d * float(b.scales[i / 16]) * float((lo | (hi << 4)) - 32);
    }
}

EDGEQ_HOST_DEVICE inline void dequantize_block(const block_iq4_xs& b, float* y) {
    const float d = b.d.to_float();
    for (int ib = 0; ib < 8; ++ib) {
        const float dl = d * float(iq4xs_scale(ib, b));
        const std::uint8_t* q = b.qs + 16 * ib;
        for (int j = 0; j < 16; ++j) {
            y[32 * ib + j] = dl * float(kvalues_iq4nl(q[j] & 0x0f));
            y[32 * ib + j + 16] = dl * float(kvalues_iq4nl(q[j] >> 4));
        }
    }
}

// Q8_K activations (for tests): x = d * q.
EDGEQ_HOST_DEVICE inline void dequantize_block(const block_q8_K& b, float* y) {
    for (int j = 0; j < qk_k; ++j) y[j] = b.d * float(b.qs[j]);
}

// --- rows ---------------------------------------------------------------------------------------

// n weights (a multiple of Block::weights) from n / Block::weights consecutive blocks.
template <class Block>
EDGEQ_HOST_DEVICE inline void dequantize_row(const Block* x, float* y, std::size_t n) {
    const std::size_t nb = n / std::size_t(Block::weights);
    for (std::size_t i = 0; i < nb; ++i) dequantize_block(x[i], y + i * std::size_t(Block::weights));
}

}  // namespace ggml
}  // namespace edgeq
