// NEON escapes for llama.cpp's block formats on ARMv8.0 (the Jetson Nano's Cortex-A57 has no
// sdot): per 16 weights the int8 code values are multiplied against 16 int8 activations with
// vmull_s8 / vmlal_high_s8 (two products per int16 lane) and widened with vpaddlq/vpadalq_s16;
// the int32 sums of a sub-block take its integer scale with vmlaq_n_s32, so a super-block enters
// float once. The IQ4 code-book is one vqtbl1q_s8 per 16 codes. The fp32-activation GEMV of the
// 32-weight blocks widens the same code registers to float; the k-quants' use the generic path.
//
// Ranges: every code value is within [-128, 127] and both activation blocks within [-127, 127],
// so a pair of products stays within int16 (2 * 128 * 127 < 2^15).
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_NEON
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../format/ggml/decode.hpp"
#include "../../format/ggml/format.hpp"
#include "../activation.hpp"
#include "../backends.hpp"
#include "../scalar/ggml.hpp"
#include "../simd/ggml.hpp"
#include "grouped_q8.hpp"

namespace edgeq {
namespace kernel {
namespace neon_ggml {

// Four int32 partial sums of v * x over 16 lanes.
inline int32x4_t dot16(int8x16_t v, const std::int8_t* x) {
    const int8x16_t xv = vld1q_s8(x);
    return vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(v), vget_low_s8(xv)), v, xv));
}
// Over 32 lanes: v0 against x[0..15], v1 against x[16..31].
inline int32x4_t dot32(int8x16_t v0, int8x16_t v1, const std::int8_t* x) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    const int16x8_t p0 = vmlal_high_s8(vmull_s8(vget_low_s8(v0), vget_low_s8(x0)), v0, x0);
    const int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(v1), vget_low_s8(x1)), v1, x1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}
// binary16 -> float with the A57's fcvt (ARMv8.0 has the conversion, not fp16 arithmetic).
inline float h2f(fp16_t h) {
    __fp16 v;
    std::memcpy(&v, &h.bits, sizeof v);
    return float(v);
}
inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }
inline uint8x16_t shr(uint8x16_t v, int n) { return vshlq_u8(v, vdupq_n_s8(std::int8_t(-n))); }
// Lane j is 0x10 where bit j (of 16 starting at byte `first` of qh) is set.
inline uint8x16_t high_bits(const std::uint8_t* qh, int first) {
    static const std::uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vcombine_u8(vdup_n_u8(qh[first]), vdup_n_u8(qh[first + 1]));
    return vandq_u8(vtstq_u8(b, vld1q_u8(bit)), vdupq_n_u8(0x10));
}
inline int8x16_t iq4_lut() {
    static const std::int8_t t[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    return vld1q_s8(t);
}

// --- legacy blocks against q8_block ------------------------------------------------------------

// Codes(b, v0, v1): the signed values of weights 0-15 and 16-31.
template <class B, class Codes>
float dot32_blocks(const B* w, const q8_block* x, std::size_t nb, Codes codes) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    std::size_t i = 0;
    int8x16_t v0, v1, u0, u1;
    for (; i + 2 <= nb; i += 2) {  // two chains, so that the fmla latency is hidden
        codes(w[i], v0, v1);
        codes(w[i + 1], u0, u1);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(dot32(v0, v1, x[i].qs)), h2f(w[i].d) * x[i].d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(dot32(u0, u1, x[i + 1].qs)), h2f(w[i + 1].d) * x[i + 1].d);
    }
    if (i < nb) {
        codes(w[i], v0, v1);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(dot32(v0, v1, x[i].qs)), h2f(w[i].d) * x[i].d);
    }
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}
template <class B>
float mins32(const B* w, const q8_block* x, std::size_t nb) {
    float m = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) m += h2f(w[i].m) * x[i].s;
    return m;
}

struct codes_q4_0 {
    void operator()(const ggml::block_q4_0& b, int8x16_t& v0, int8x16_t& v1) const {
        const uint8x16_t q = vld1q_u8(b.qs);
        v0 = vsubq_s8(s8(vandq_u8(q, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
        v1 = vsubq_s8(s8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
    }
};
struct codes_q4_1 {
    void operator()(const ggml::block_q4_1& b, int8x16_t& v0, int8x16_t& v1) const {
        const uint8x16_t q = vld1q_u8(b.qs);
        v0 = s8(vandq_u8(q, vdupq_n_u8(0x0f)));
        v1 = s8(vshrq_n_u8(q, 4));
    }
};
struct codes_q5_0 {
    void operator()(const ggml::block_q5_0& b, int8x16_t& v0, int8x16_t& v1) const {
        const uint8x16_t q = vld1q_u8(b.qs);
        v0 = vsubq_s8(s8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), high_bits(b.qh, 0))), vdupq_n_s8(16));
        v1 = vsubq_s8(s8(vorrq_u8(vshrq_n_u8(q, 4), high_bits(b.qh, 2))), vdupq_n_s8(16));
    }
};
struct codes_q5_1 {
    void operator()(const ggml::block_q5_1& b, int8x16_t& v0, int8x16_t& v1) const {
        const uint8x16_t q = vld1q_u8(b.qs);
        v0 = s8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), high_bits(b.qh, 0)));
        v1 = s8(vorrq_u8(vshrq_n_u8(q, 4), high_bits(b.qh, 2)));
    }
};
struct codes_q8_0 {
    void operator()(const ggml::block_q8_0& b, int8x16_t& v0, int8x16_t& v1) const {
        v0 = vld1q_s8(b.qs);
        v1 = vld1q_s8(b.qs + 16);
    }
};
struct codes_iq4_nl {
    int8x16_t lut = iq4_lut();
    void operator()(const ggml::block_iq4_nl& b, int8x16_t& v0, int8x16_t& v1) const {
        const uint8x16_t q = vld1q_u8(b.qs);
        v0 = vqtbl1q_s8(lut, vandq_u8(q, vdupq_n_u8(0x0f)));
        v1 = vqtbl1q_s8(lut, vshrq_n_u8(q, 4));
    }
};

inline float vec_dot(const ggml::block_q4_0* w, const q8_block* x, std::size_t nb) { return dot32_blocks(w, x, nb, codes_q4_0{}); }
inline float vec_dot(const ggml::block_q4_1* w, const q8_block* x, std::size_t nb) {
    return dot32_blocks(w, x, nb, codes_q4_1{}) + mins32(w, x, nb);
}
inline float vec_dot(const ggml::block_q5_0* w, const q8_block* x, std::size_t nb) { return dot32_blocks(w, x, nb, codes_q5_0{}); }
inline float vec_dot(const ggml::block_q5_1* w, const q8_block* x, std::size_t nb) {
    return dot32_blocks(w, x, nb, codes_q5_1{}) + mins32(w, x, nb);
}
inline float vec_dot(const ggml::block_q8_0* w, const q8_block* x, std::size_t nb) { return dot32_blocks(w, x, nb, codes_q8_0{}); }
inline float vec_dot(const ggml::block_iq4_nl* w, const q8_block* x, std::size_t nb) {
    return dot32_blocks(w, x, nb, codes_iq4_nl{});
}

// --- k-quants and IQ4_XS against block_q8_K ----------------------------------------------------

inline float vec_dot(const ggml::block_q2_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    float acc = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q2_K& b = w[i];
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t q0 = vld1q_u8(b.qs + 32 * h), q1 = vld1q_u8(b.qs + 32 * h + 16);
            for (int k = 0; k < 4; ++k) {
                const int s = 8 * h + 2 * k;
                const std::int8_t* xq = x[i].qs + 128 * h + 32 * k;
                isum = vmlaq_n_s32(isum, dot16(s8(vandq_u8(shr(q0, 2 * k), m3)), xq), b.scales[s] & 15);
                isum = vmlaq_n_s32(isum, dot16(s8(vandq_u8(shr(q1, 2 * k), m3)), xq + 16), b.scales[s + 1] & 15);
            }
        }
        int msum = 0;
        for (int k = 0; k < 16; ++k) msum += (b.scales[k] >> 4) * int(x[i].bsums[k]);
        acc += x[i].d * (h2f(b.d) * float(vaddvq_s32(isum)) - h2f(b.dmin) * float(msum));
    }
    return acc;
}

inline float vec_dot(const ggml::block_q3_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float acc = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q3_K& b = w[i];
        const uint8x16_t hm0 = vld1q_u8(b.hmask), hm1 = vld1q_u8(b.hmask + 16);
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t q0 = vld1q_u8(b.qs + 32 * h), q1 = vld1q_u8(b.qs + 32 * h + 16);
            for (int k = 0; k < 4; ++k) {
                const int s = 8 * h + 2 * k;
                const uint8x16_t bit = vdupq_n_u8(std::uint8_t(1u << (4 * h + k)));
                // (q | 4 h) - 4: the value q - 4 unless the hmask bit is set.
                const int8x16_t v0 = vsubq_s8(s8(vorrq_u8(vandq_u8(shr(q0, 2 * k), m3), vandq_u8(vtstq_u8(hm0, bit), four))), vdupq_n_s8(4));
                const int8x16_t v1 = vsubq_s8(s8(vorrq_u8(vandq_u8(shr(q1, 2 * k), m3), vandq_u8(vtstq_u8(hm1, bit), four))), vdupq_n_s8(4));
                const std::int8_t* xq = x[i].qs + 128 * h + 32 * k;
                isum = vmlaq_n_s32(isum, dot16(v0, xq), ggml::q3k_scale(s, b.scales));
                isum = vmlaq_n_s32(isum, dot16(v1, xq + 16), ggml::q3k_scale(s + 1, b.scales));
            }
        }
        acc += x[i].d * h2f(b.d) * float(vaddvq_s32(isum));
    }
    return acc;
}

// Q4_K (Bits5 false) and Q5_K.
template <bool Bits5, class B>
float dot_k4(const B* w, const ggml::block_q8_K* x, std::size_t nb, const std::uint8_t* (*qh_of)(const B&)) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), h5 = vdupq_n_u8(0x10);
    float acc = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const B& b = w[i];
        uint8x16_t qh0 = vdupq_n_u8(0), qh1 = qh0;
        if (Bits5) qh0 = vld1q_u8(qh_of(b)), qh1 = vld1q_u8(qh_of(b) + 16);
        int32x4_t isum = vdupq_n_s32(0);
        int msum = 0;
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            ggml::k4_scale_min(j, b.scales, sc, m);
            uint8x16_t c0 = vandq_u8(shr(vld1q_u8(b.qs + 32 * (j / 2)), 4 * (j % 2)), m4);
            uint8x16_t c1 = vandq_u8(shr(vld1q_u8(b.qs + 32 * (j / 2) + 16), 4 * (j % 2)), m4);
            if (Bits5) {
                const uint8x16_t bit = vdupq_n_u8(std::uint8_t(1u << j));
                c0 = vorrq_u8(c0, vandq_u8(vtstq_u8(qh0, bit), h5));
                c1 = vorrq_u8(c1, vandq_u8(vtstq_u8(qh1, bit), h5));
            }
            isum = vmlaq_n_s32(isum, dot32(s8(c0), s8(c1), x[i].qs + 32 * j), sc);
            msum += m * (int(x[i].bsums[2 * j]) + int(x[i].bsums[2 * j + 1]));
        }
        acc += x[i].d * (h2f(b.d) * float(vaddvq_s32(isum)) - h2f(b.dmin) * float(msum));
    }
    return acc;
}
inline const std::uint8_t* no_qh(const ggml::block_q4_K&) { return nullptr; }
inline const std::uint8_t* qh_q5(const ggml::block_q5_K& b) { return b.qh; }
inline float vec_dot(const ggml::block_q4_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<false>(w, x, nb, no_qh); }
inline float vec_dot(const ggml::block_q5_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<true>(w, x, nb, qh_q5); }

inline float vec_dot(const ggml::block_q6_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t k32 = vdupq_n_s8(32);
    float acc = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q6_K& b = w[i];
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const std::uint8_t* ql = b.ql + 64 * h;
            const uint8x16_t qh0 = vld1q_u8(b.qh + 32 * h), qh1 = vld1q_u8(b.qh + 32 * h + 16);
            for (int k = 0; k < 4; ++k) {
                const int s = 8 * h + 2 * k;
                const std::uint8_t* l = ql + 32 * (k & 1);
                const uint8x16_t lo0 = vandq_u8(shr(vld1q_u8(l), 4 * (k >> 1)), m4), lo1 = vandq_u8(shr(vld1q_u8(l + 16), 4 * (k >> 1)), m4);
                const uint8x16_t hi0 = vshlq_n_u8(vandq_u8(shr(qh0, 2 * k), m3), 4), hi1 = vshlq_n_u8(vandq_u8(shr(qh1, 2 * k), m3), 4);
                const std::int8_t* xq = x[i].qs + 128 * h + 32 * k;
                isum = vmlaq_n_s32(isum, dot16(vsubq_s8(s8(vorrq_u8(lo0, hi0)), k32), xq), b.scales[s]);
                isum = vmlaq_n_s32(isum, dot16(vsubq_s8(s8(vorrq_u8(lo1, hi1)), k32), xq + 16), b.scales[s + 1]);
            }
        }
        acc += x[i].d * h2f(b.d) * float(vaddvq_s32(isum));
    }
    return acc;
}

inline float vec_dot(const ggml::block_iq4_xs* w, const ggml::block_q8_K* x, std::size_t nb) {
    const int8x16_t lut = iq4_lut();
    float acc = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_iq4_xs& b = w[i];
        int32x4_t isum = vdupq_n_s32(0);
        for (int j = 0; j < 8; ++j) {
            const uint8x16_t q = vld1q_u8(b.qs + 16 * j);
            const int8x16_t v0 = vqtbl1q_s8(lut, vandq_u8(q, vdupq_n_u8(0x0f))), v1 = vqtbl1q_s8(lut, vshrq_n_u8(q, 4));
            isum = vmlaq_n_s32(isum, dot32(v0, v1, x[i].qs + 32 * j), ggml::iq4xs_scale(j, b));
        }
        acc += x[i].d * h2f(b.d) * float(vaddvq_s32(isum));
    }
    return acc;
}

// fp32 activations for the 32-weight blocks: the same code registers, widened to float
// (vmovl_s8, vmovl_s16, vcvtq_f32_s32) and summed against x with fma.
inline float32x4_t fma16(float32x4_t s, int8x16_t v, const float* x) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    s = vfmaq_f32(s, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vld1q_f32(x));
    s = vfmaq_f32(s, vcvtq_f32_s32(vmovl_high_s16(lo)), vld1q_f32(x + 4));
    s = vfmaq_f32(s, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vld1q_f32(x + 8));
    return vfmaq_f32(s, vcvtq_f32_s32(vmovl_high_s16(hi)), vld1q_f32(x + 12));
}
template <class B, class Codes>
float dot32_f32(const B* w, const float* x, const float* xs, std::size_t nb, Codes codes) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    float mins = 0.0f;
    int8x16_t v0, v1;
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], v0, v1);
        const float32x4_t s = fma16(fma16(vdupq_n_f32(0.0f), v0, x + 32 * i), v1, x + 32 * i + 16);
        acc = vfmaq_n_f32(acc, s, h2f(w[i].d));
        float d[1], m[1] = {0.0f};
        ggml_ref::sub_scales(w[i], d, m);
        if (ggml_ref::has_min<B>::value) mins += m[0] * xs[i];
    }
    return vaddvq_f32(acc) + mins;
}
inline float vec_dot_f32(const ggml::block_q4_0* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_q4_0{}); }
inline float vec_dot_f32(const ggml::block_q4_1* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_q4_1{}); }
inline float vec_dot_f32(const ggml::block_q5_0* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_q5_0{}); }
inline float vec_dot_f32(const ggml::block_q5_1* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_q5_1{}); }
inline float vec_dot_f32(const ggml::block_q8_0* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_q8_0{}); }
inline float vec_dot_f32(const ggml::block_iq4_nl* w, const float* x, const float* xs, std::size_t nb) { return dot32_f32(w, x, xs, nb, codes_iq4_nl{}); }
// The others: the generic SIMD path.
template <class B>
float vec_dot_f32(const B* w, const float* x, const float* xs, std::size_t nb) {
    return ggml_simd::vec_dot_f32<xsimd::neon64>(w, x, xs, nb);
}

}  // namespace neon_ggml

// The A57 tag has generic overloads for the grouped formats at every entry point, so the ggml
// formats name it too.
template <class B>
void dequantize_row(backend::neon_a57, const qview<ggml_format<B>>& w, std::size_t r, float* out) {
    ggml::dequantize_row(w.row_blocks(r), out, w.cols);
}
template <class B>
void gemv_rows(backend::neon_a57, const qview<ggml_format<B>>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    const std::vector<float> xs = ggml_simd::sub_sums<ggml_ref::sub_length<B>::value>(x, w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = neon_ggml::vec_dot_f32(w.row_blocks(r), x, xs.data(), nb);
}
template <class B>
void gemv_q8_rows(backend::neon_a57, const qview<ggml_format<B>>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = neon_ggml::vec_dot(w.row_blocks(r), x, nb);
}
template <class B>
void gemv_q8_rows(backend::neon_a57, const qview<ggml_format<B>>& w, const ggml::block_q8_K* x, float* y, std::size_t r0,
                  std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = neon_ggml::vec_dot(w.row_blocks(r), x, nb);
}

}  // namespace kernel
}  // namespace edgeq
#endif
