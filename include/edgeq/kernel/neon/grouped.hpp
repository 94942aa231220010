// NEON escapes for the fp32-activation kernels of the grouped formats (Cortex-A57, ARMv8.0).
//
// The generic xsimd kernel (kernel/simd/grouped.hpp) unpacks a chunk with scalar SWAR through
// memory, widens it four bytes at a time, looks code-book values up one by one, and chains all
// of a group's fmas through one accumulator (the A57's fmla has a 10-cycle latency). Here a
// chunk is unpacked in registers (neon::unpack, kernel/neon/unpack.hpp), uniform codes are
// widened with vmovl/vcvt, NF4 values are assembled from four byte-plane table lookups
// (vqtbl1q_u8 + vzip: exact float values, no rounding), and four accumulators are kept.
// The zero point is applied per group through the group's sum of x, as the generic kernel does.
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_NEON
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../format/grouped.hpp"
#include "../backends.hpp"
#include "unpack.hpp"

namespace edgeq {
namespace kernel {
namespace neon {

// The 32 code values of a chunk as eight float32x4 (values 4k .. 4k+3 in v[k]).
template <class F, bool Uniform = F::is_uniform>
struct chunk_floats {
    void operator()(const std::uint8_t* in, float32x4_t* v) const {
        const codes32 q = unpack<F::bits>::load(in);
        widen(q.lo, v);
        widen(q.hi, v + 4);
    }

   private:
    static void widen(uint8x16_t c, float32x4_t* v) {
        const uint16x8_t a = vmovl_u8(vget_low_u8(c)), b = vmovl_high_u8(c);
        v[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(a)));
        v[1] = vcvtq_f32_u32(vmovl_high_u16(a));
        v[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(b)));
        v[3] = vcvtq_f32_u32(vmovl_high_u16(b));
    }
};

// A code-book: byte plane p of the 16 float values in table t[p]; a lookup per plane, then the
// bytes zipped back into little-endian floats.
template <class F>
struct chunk_floats<F, false> {
    static_assert(F::bits <= 4, "neon::chunk_floats: a 16-entry table needs codes of at most 4 bits");
    uint8x16_t t[4];

    chunk_floats() {
        std::uint8_t planes[4][16];
        for (int q = 0; q < 16; ++q) {
            const float f = F::code_value(q);
            std::uint32_t u;
            std::memcpy(&u, &f, 4);
            for (int p = 0; p < 4; ++p) planes[p][q] = std::uint8_t(u >> (8 * p));
        }
        for (int p = 0; p < 4; ++p) t[p] = vld1q_u8(planes[p]);
    }
    void operator()(const std::uint8_t* in, float32x4_t* v) const {
        const codes32 q = unpack<F::bits>::load(in);
        lookup(q.lo, v);
        lookup(q.hi, v + 4);
    }

   private:
    void lookup(uint8x16_t c, float32x4_t* v) const {
        const uint8x16_t b0 = vqtbl1q_u8(t[0], c), b1 = vqtbl1q_u8(t[1], c);
        const uint8x16_t b2 = vqtbl1q_u8(t[2], c), b3 = vqtbl1q_u8(t[3], c);
        const uint16x8_t l0 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1)), l1 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
        const uint16x8_t h0 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3)), h1 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
        v[0] = vreinterpretq_f32_u16(vzip1q_u16(l0, h0));
        v[1] = vreinterpretq_f32_u16(vzip2q_u16(l0, h0));
        v[2] = vreinterpretq_f32_u16(vzip1q_u16(l1, h1));
        v[3] = vreinterpretq_f32_u16(vzip2q_u16(l1, h1));
    }
};

}  // namespace neon

template <class F>
void dequantize_row(backend::neon_a57, const qview<F>& w, std::size_t r, float* out) {
    constexpr int chunk_bytes = plane_split<F::bits>::chunk_bytes;
    const neon::chunk_floats<F> values{};
    const std::uint8_t* codes = w.row_codes(r);
    const std::size_t g = w.group_size();
    float32x4_t v[8];
    for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
        values(codes + c / chunk_weights * chunk_bytes, v);
        const float d = w.scale(r, c / g);
        const float32x4_t dv = vdupq_n_f32(d), minus_dz = vdupq_n_f32(-(d * float(w.zero(r, c / g))));
        for (int k = 0; k < 8; ++k) vst1q_f32(out + c + 4 * k, vfmaq_f32(minus_dz, v[k], dv));  // d v - d z
    }
}

// y[r] = sum_j d_j * (sum_{c in j} v(q_c) x_c) - sum_j d_j z_j (sum_{c in j} x_c).
template <class F>
void gemv_rows(backend::neon_a57, const qview<F>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    constexpr int chunk_bytes = plane_split<F::bits>::chunk_bytes;
    const neon::chunk_floats<F> values{};
    const std::size_t g = w.group_size(), ng = w.groups_per_row(), chunks = g / chunk_weights;
    std::vector<float> xs(ng, 0.0f);
    for (std::size_t c = 0; c < w.cols; ++c) xs[c / g] += x[c];
    float32x4_t v[8];
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* codes = w.row_codes(r);
        float32x4_t total = vdupq_n_f32(0.0f);
        float correction = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (std::size_t k = 0; k < chunks; ++k) {
                const std::size_t c = j * chunks + k;
                const float* xc = x + c * chunk_weights;
                values(codes + c * chunk_bytes, v);
                a0 = vfmaq_f32(a0, v[0], vld1q_f32(xc));
                a1 = vfmaq_f32(a1, v[1], vld1q_f32(xc + 4));
                a2 = vfmaq_f32(a2, v[2], vld1q_f32(xc + 8));
                a3 = vfmaq_f32(a3, v[3], vld1q_f32(xc + 12));
                a0 = vfmaq_f32(a0, v[4], vld1q_f32(xc + 16));
                a1 = vfmaq_f32(a1, v[5], vld1q_f32(xc + 20));
                a2 = vfmaq_f32(a2, v[6], vld1q_f32(xc + 24));
                a3 = vfmaq_f32(a3, v[7], vld1q_f32(xc + 28));
            }
            const float d = w.scale(r, j);
            total = vfmaq_n_f32(total, vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)), d);
            correction += d * float(w.zero(r, j)) * xs[j];
        }
        y[r] = vaddvq_f32(total) - correction;
    }
}

}  // namespace kernel
}  // namespace edgeq
#endif
