// The codes of llama.cpp's block types with the scales held fixed, and group_codec<ggml_format>
// (algo/group_codec.hpp explains the interface) on top of them.
//
// In every type, weight k of a block decodes as  d_k * v(q) - m_k : d_k and m_k come from the
// block's (sub-block) scales, v is the code value (q - offset for the integer grids, IQ4's
// code-book otherwise). block_codes<Block> states this per type:
//   levels, offset, uniform       codes are 0 .. levels-1; v(q) = q - offset or kvalues_iq4nl(q)
//   scale(b, k, d, m)             d_k and m_k, computed as the decoder computes them
//   pack(b, codes)                writes the codes of all the block's weights into b, leaving
//                                 its scales alone
// So GPTQ fits a block with the type's own quantizer (byte-exact with llama.cpp, with or without
// an imatrix), keeps its scales, and re-chooses each code as the weights move.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../format/ggml/blocks.hpp"
#include "../../format/ggml/decode.hpp"
#include "../../format/ggml/format.hpp"
#include "../../format/qmatrix.hpp"
#include "../group_codec.hpp"
#include "iq4.hpp"
#include "kquants.hpp"
#include "legacy.hpp"

EDGEQ_GGML_EXACT_BEGIN
namespace edgeq {
namespace ggml {

template <class Block>
struct block_codes;

// --- 32-weight types: one scale per block ----------------------------------------------------------

template <>
struct block_codes<block_q4_0> {
    static constexpr int levels = 16, offset = 8;
    static constexpr bool uniform = true;
    static void scale(const block_q4_0& b, int, float& d, float& m) { d = b.d.to_float(), m = 0.0f; }
    static void pack(block_q4_0& b, const std::uint8_t* c) { detail::pack_nibbles_32(c, b.qs); }
};

template <>
struct block_codes<block_q4_1> {
    static constexpr int levels = 16, offset = 0;
    static constexpr bool uniform = true;
    static void scale(const block_q4_1& b, int, float& d, float& m) { d = b.d.to_float(), m = -b.m.to_float(); }
    static void pack(block_q4_1& b, const std::uint8_t* c) { detail::pack_nibbles_32(c, b.qs); }
};

template <>
struct block_codes<block_q5_0> {
    static constexpr int levels = 32, offset = 16;
    static constexpr bool uniform = true;
    static void scale(const block_q5_0& b, int, float& d, float& m) { d = b.d.to_float(), m = 0.0f; }
    static void pack(block_q5_0& b, const std::uint8_t* c) {
        detail::pack_nibbles_32(c, b.qs);
        detail::pack_high_bits_32(c, b.qh);
    }
};

template <>
struct block_codes<block_q5_1> {
    static constexpr int levels = 32, offset = 0;
    static constexpr bool uniform = true;
    static void scale(const block_q5_1& b, int, float& d, float& m) { d = b.d.to_float(), m = -b.m.to_float(); }
    static void pack(block_q5_1& b, const std::uint8_t* c) {
        detail::pack_nibbles_32(c, b.qs);
        detail::pack_high_bits_32(c, b.qh);
    }
};

// Q8_0's int8 codes are stored here as q + 128.
template <>
struct block_codes<block_q8_0> {
    static constexpr int levels = 256, offset = 128;
    static constexpr bool uniform = true;
    static void scale(const block_q8_0& b, int, float& d, float& m) { d = b.d.to_float(), m = 0.0f; }
    static void pack(block_q8_0& b, const std::uint8_t* c) {
        for (int j = 0; j < 32; ++j) b.qs[j] = std::int8_t(int(c[j]) - 128);
    }
};

template <>
struct block_codes<block_iq4_nl> {
    static constexpr int levels = 16, offset = 0;
    static constexpr bool uniform = false;
    static void scale(const block_iq4_nl& b, int, float& d, float& m) { d = b.d.to_float(), m = 0.0f; }
    static void pack(block_iq4_nl& b, const std::uint8_t* c) { detail::pack_nibbles_32(c, b.qs); }
};

// --- k-quants and IQ4_XS: sub-block scales under one fp16 super scale ------------------------------

template <>
struct block_codes<block_q2_K> {
    static constexpr int levels = 4, offset = 0;
    static constexpr bool uniform = true;
    static void scale(const block_q2_K& b, int k, float& d, float& m) {
        const int sc = b.scales[k / 16];
        d = b.d.to_float() * float(sc & 0x0f), m = b.dmin.to_float() * float(sc >> 4);
    }
    static void pack(block_q2_K& b, const std::uint8_t* c) { detail::pack_2bit_256(c, b.qs); }
};

template <>
struct block_codes<block_q3_K> {
    static constexpr int levels = 8, offset = 4;
    static constexpr bool uniform = true;
    static void scale(const block_q3_K& b, int k, float& d, float& m) {
        d = b.d.to_float() * float(q3k_scale(k / 16, b.scales)), m = 0.0f;
    }
    // Bit 2 of code i in hmask[i % 32] bit i / 32, the low two bits as Q2_K.
    static void pack(block_q3_K& b, const std::uint8_t* c) {
        std::uint8_t low[qk_k];
        std::memset(b.hmask, 0, sizeof b.hmask);
        for (int i = 0; i < qk_k; ++i) {
            if (c[i] > 3) b.hmask[i % 32] = std::uint8_t(b.hmask[i % 32] | (1 << (i / 32)));
            low[i] = std::uint8_t(c[i] & 3);
        }
        detail::pack_2bit_256(low, b.qs);
    }
};

// Q4_K / Q5_K: per 64 weights, 32 bytes of qs with the first 32 codes in the low nibbles.
template <>
struct block_codes<block_q4_K> {
    static constexpr int levels = 16, offset = 0;
    static constexpr bool uniform = true;
    static void scale(const block_q4_K& b, int k, float& d, float& m) {
        int sc, mn;
        k4_scale_min(k / 32, b.scales, sc, mn);
        d = b.d.to_float() * float(sc), m = b.dmin.to_float() * float(mn);
    }
    static void pack(block_q4_K& b, const std::uint8_t* c) {
        for (int j = 0; j < qk_k; j += 64)
            for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = std::uint8_t(c[j + l] | (c[j + l + 32] << 4));
    }
};

template <>
struct block_codes<block_q5_K> {
    static constexpr int levels = 32, offset = 0;
    static constexpr bool uniform = true;
    static void scale(const block_q5_K& b, int k, float& d, float& m) {
        int sc, mn;
        k4_scale_min(k / 32, b.scales, sc, mn);
        d = b.d.to_float() * float(sc), m = b.dmin.to_float() * float(mn);
    }
    // Bit 4 of code 64 k + l in qh[l] bit 2k, of 64 k + 32 + l in bit 2k + 1.
    static void pack(block_q5_K& b, const std::uint8_t* c) {
        std::memset(b.qh, 0, sizeof b.qh);
        for (int j = 0; j < qk_k; j += 64)
            for (int l = 0; l < 32; ++l) {
                const int lo = c[j + l], hi = c[j + l + 32], k = j / 64;
                if (lo > 15) b.qh[l] = std::uint8_t(b.qh[l] | (1 << (2 * k)));
                if (hi > 15) b.qh[l] = std::uint8_t(b.qh[l] | (2 << (2 * k)));
                b.qs[j / 2 + l] = std::uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
            }
    }
};

template <>
struct block_codes<block_q6_K> {
    static constexpr int levels = 64, offset = 32;
    static constexpr bool uniform = true;
    static void scale(const block_q6_K& b, int k, float& d, float& m) {
        d = b.d.to_float() * float(b.scales[k / 16]), m = 0.0f;
    }
    // Per half of 128: ql[l], ql[l + 32] hold the low nibbles of codes l, l+32 (low) and l+64,
    // l+96 (high); qh[l] their two high bits at 0, 2, 4, 6.
    static void pack(block_q6_K& b, const std::uint8_t* codes) {
        for (int h = 0; h < 2; ++h) {
            const std::uint8_t* c = codes + 128 * h;
            std::uint8_t* ql = b.ql + 64 * h;
            std::uint8_t* qh = b.qh + 32 * h;
            for (int l = 0; l < 32; ++l) {
                ql[l] = std::uint8_t((c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4));
                ql[l + 32] = std::uint8_t((c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4));
                qh[l] = std::uint8_t((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                                     ((c[l + 96] >> 4) << 6));
            }
        }
    }
};

template <>
struct block_codes<block_iq4_xs> {
    static constexpr int levels = 16, offset = 0;
    static constexpr bool uniform = false;
    static void scale(const block_iq4_xs& b, int k, float& d, float& m) {
        d = b.d.to_float() * float(iq4xs_scale(k / 32, b)), m = 0.0f;
    }
    static void pack(block_iq4_xs& b, const std::uint8_t* c) {
        for (int i = 0; i < qk_k / 32; ++i) detail::pack_nibbles_32(c + 32 * i, b.qs + 16 * i);
    }
};

// The code whose value d * v(q) - m is nearest to w (ties as the type's own rounding: to even for
// the grids, upward for the code-book). A zero scale decodes every code to -m: take v(q) = 0's code.
template <class Block>
inline int nearest_code(float w, float d, float m) {
    using C = block_codes<Block>;
    const float x = d != 0.0f ? (w + m) / d : 0.0f;
    if (C::uniform) return detail::clamp_int(detail::nearest_int(std::fmax(std::fmin(x, 1e6f), -1e6f)) + C::offset, 0, C::levels - 1);
    return detail::nearest_iq4(x);
}

template <class Block>
inline float code_value(int q) {
    return block_codes<Block>::uniform ? float(q - block_codes<Block>::offset) : float(kvalues_iq4nl(q));
}

}  // namespace ggml

template <class Block>
struct group_codec<ggml_format<Block>> {
    using format = ggml_format<Block>;
    using params = Block;  // the fitted block: its scales are used, its codes are rewritten
    using codes = ggml::block_codes<Block>;

    static std::size_t group_size(std::size_t) { return std::size_t(Block::weights); }

    // The type's own quantizer on the current weights (with the importance weights if given).
    static params fit(const float* w, std::size_t n, const float* importance, const quant_options&) {
        Block b;
        ggml::detail::quantize_row_impl(w, &b, n, importance);
        return b;
    }

    static float quantize(const params& b, std::size_t k, float w, std::uint8_t* code) {
        float d, m;
        codes::scale(b, int(k), d, m);
        const int q = ggml::nearest_code<Block>(w, d, m);
        *code = std::uint8_t(q);
        return d * ggml::code_value<Block>(q) - m;
    }

    static void store(qmatrix<format>& mat, const std::vector<params>& ps, const std::uint8_t* c) {
        const std::size_t nb = format::blocks_per_row(mat.cols());
        for (std::size_t r = 0; r < mat.rows(); ++r) {
            Block* out = reinterpret_cast<Block*>(mat.row_codes(r));
            for (std::size_t i = 0; i < nb; ++i) {
                out[i] = ps[r * nb + i];
                codes::pack(out[i], c + r * mat.cols() + i * std::size_t(Block::weights));
            }
        }
    }
};

}  // namespace edgeq
EDGEQ_GGML_EXACT_END
