// NEON escape for the int8-activation GEMV of the grouped formats, for ARMv8.0 cores such as
// the Jetson Nano's Cortex-A57, which have no dot-product instruction (sdot is ARMv8.2).
//
// Per 32-weight chunk: the packed planes are unpacked straight into two 16-lane registers
// (codes 0-15 and 16-31, in the order of the activations; kernel/neon/unpack.hpp), turned into
// int8 values, multiplied against the 32 int8 activations with vmull_s8 (s8 x s8 -> s16,
// exact) and widened into int32 lanes with vpadalq_s16; each chunk's int32 sum then enters a
// float accumulator with the block scale.
//
// Ranges: codes of up to 6 bits (< 64) and the NF4 int8 code-book (|v| <= 127) keep a pair of
// products within int16 even against x = -128 (2 * 127 * 128 < 2^15), so those pair them with
// vmlal_s8 before widening. 8-bit codes enter as q - 128 (one veor), moving the zero point by
// 128 as the AVX2 path does; |v| can then be 128, so each product is widened on its own.
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_NEON
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../format/grouped.hpp"
#include "../activation.hpp"
#include "../backends.hpp"
#include "grouped.hpp"  // the fp32-activation escapes, so that kernels.hpp sees them too
#include "unpack.hpp"

namespace edgeq {
namespace kernel {
namespace neon {

// Four int32 partial sums of v * x over 32 lanes, |v| <= 127 (any int8 x): two products per
// int16 lane before widening.
inline int32x4_t dot_pairs(int8x16_t v0, int8x16_t v1, int8x16_t x0, int8x16_t x1) {
    int16x8_t p0 = vmull_s8(vget_low_s8(v0), vget_low_s8(x0));
    p0 = vmlal_high_s8(p0, v0, x0);
    int16x8_t p1 = vmull_s8(vget_low_s8(v1), vget_low_s8(x1));
    p1 = vmlal_high_s8(p1, v1, x1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}
// The same for any int8 v: every product widened on its own.
inline int32x4_t dot_singles(int8x16_t v0, int8x16_t v1, int8x16_t x0, int8x16_t x1) {
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(v0), vget_low_s8(x0)));
    s = vpadalq_s16(s, vmull_high_s8(v0, x0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(v1), vget_low_s8(x1)));
    return vpadalq_s16(s, vmull_high_s8(v1, x1));
}

// Chunk dot product of the code values against 32 int8 activations. Uniform codes below 64
// are their own int8 values; 8-bit codes become q - 128.
template <class F>
struct uniform_dot {
    int32x4_t operator()(const std::uint8_t* in, const std::int8_t* xq) const {
        const codes32 q = unpack<F::bits>::load(in);
        const int8x16_t x0 = vld1q_s8(xq), x1 = vld1q_s8(xq + 16);
        if (F::bits == 8) {
            const uint8x16_t bias = vdupq_n_u8(0x80);
            return dot_singles(vreinterpretq_s8_u8(veorq_u8(q.lo, bias)), vreinterpretq_s8_u8(veorq_u8(q.hi, bias)), x0, x1);
        }
        return dot_pairs(vreinterpretq_s8_u8(q.lo), vreinterpretq_s8_u8(q.hi), x0, x1);
    }
};

// A code-book (NF4): its int8 values looked up with one vqtbl1q_s8 per 16 codes.
template <class F>
struct codebook_dot {
    static_assert(F::bits <= 4, "neon::codebook_dot: a 16-entry table needs codes of at most 4 bits");
    int8x16_t lut;
    codebook_dot() {
        std::int8_t t[16];
        for (int i = 0; i < 16; ++i) t[i] = std::int8_t(F::codebook::int_value(i));
        lut = vld1q_s8(t);
    }
    int32x4_t operator()(const std::uint8_t* in, const std::int8_t* xq) const {
        const codes32 q = unpack<F::bits>::load(in);
        return dot_pairs(vqtbl1q_s8(lut, q.lo), vqtbl1q_s8(lut, q.hi), vld1q_s8(xq), vld1q_s8(xq + 16));
    }
};

template <class F>
using chunk_dot = typename std::conditional<F::is_uniform, uniform_dot<F>, codebook_dot<F>>::type;

}  // namespace neon

template <class F>
void gemv_q8_rows(backend::neon_a57, const qview<F>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    constexpr int chunk_bytes = plane_split<F::bits>::chunk_bytes;
    // 8-bit codes enter as q - 128, so the zero point moves by 128 as well.
    constexpr int zero_shift = (F::is_uniform && F::bits == 8) ? 128 : 0;
    const neon::chunk_dot<F> dot{};
    const std::size_t g = w.group_size(), ng = w.groups_per_row(), chunks = g / chunk_weights;
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* codes = w.row_codes(r);
        float32x4_t total = vdupq_n_f32(0.0f);
        float correction = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            // Two chains, even and odd chunks, so that the fmla latency is hidden.
            float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
            float sx0 = 0.0f, sx1 = 0.0f;
            const std::size_t c0 = j * chunks, c1 = c0 + chunks;
            std::size_t c = c0;
            for (; c + 2 <= c1; c += 2) {
                const q8_block& a = x[c];
                const q8_block& b = x[c + 1];
                acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(dot(codes + c * chunk_bytes, a.qs)), a.d);
                acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(dot(codes + (c + 1) * chunk_bytes, b.qs)), b.d);
                sx0 += a.s;
                sx1 += b.s;
            }
            if (c < c1) {
                const q8_block& a = x[c];
                acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(dot(codes + c * chunk_bytes, a.qs)), a.d);
                sx0 += a.s;
            }
            const float sx = sx0 + sx1;
            const float d = w.scale(r, j) * F::codebook::int_unit;
            total = vfmaq_n_f32(total, vaddq_f32(acc0, acc1), d);
            correction += d * float(w.zero(r, j) - zero_shift) * sx;
        }
        y[r] = vaddvq_f32(total) - correction;
    }
}

}  // namespace kernel
}  // namespace edgeq
#endif
