// AVX2 escapes for llama.cpp's block formats, int8 activations (gemv_q8). Per 32 weights: the
// codes in one register, pmaddubsw (u8 x s8 -> s16 pairs), then pmaddwd either by ones or by
// the sub-block scales (s16 x s16 -> s32 pairs), so a whole super-block sums in int32 and enters
// float once. Signed codes (Q4_0, Q5_0, Q8_0, the IQ4 code-book) use the sign trick
// (|v| * sign(x, v)); unsigned codes with an offset (Q3_K, Q6_K) take the offset off through the
// activation block's 16-wide sums. Pair sums stay within int16: codes below 64 against |x| <= 127,
// |v| <= 128 against |x| <= 127 (both activation blocks are in [-127, 127]).
// The fp32-activation GEMV of the 32-weight blocks widens the same code registers to float
// (vpmovsxbd); the k-quants' fp32 GEMV is the generic SIMD one (kernel/simd/ggml.hpp).
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_AVX2
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
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
namespace x86_ggml {

using x86::hsum;

// binary16 -> float: one vcvtph2ps where F16C is there (every AVX2 CPU has it), else the
// portable conversion. Both are exact.
inline float h2f(fp16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h.bits);
#else
    return h.to_float();
#endif
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// 16 bytes of nibbles -> 32 codes: low nibbles (weights 0-15), then high nibbles (16-31).
inline __m256i nibbles32(const std::uint8_t* p) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// Byte j is 0xff where bit j of x is set.
inline __m256i bits_to_bytes(std::uint32_t x) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    const __m256i b = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), shuf), _mm256_set1_epi64x(0x7fbfdfeff7fbfdfell));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

inline __m256i iq4_lut() {
    const __m128i t = _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    return _mm256_set_m128i(t, t);
}

// Signed v (|v| <= 128) against x: 16 int16 pair sums.
inline __m256i maddubs_signed(__m256i v, __m256i x) { return _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(x, v)); }
inline __m256i ones16() { return _mm256_set1_epi16(1); }
// Pair sums times the scale of each 16-weight half (a for weights 0-15, b for 16-31).
inline __m256i scale_halves(__m256i p16, int a, int b) {
    return _mm256_madd_epi16(p16, _mm256_set_m128i(_mm_set1_epi16(short(b)), _mm_set1_epi16(short(a))));
}

// --- legacy blocks against q8_block ------------------------------------------------------------

template <class B, class Codes>
float dot32(const B* w, const q8_block* x, std::size_t nb, Codes codes) {
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const __m256i p = _mm256_madd_epi16(maddubs_signed(codes(w[i]), load256(x[i].qs)), ones16());
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w[i].d) * x[i].d), acc);
    }
    return hsum(acc);
}
// Unsigned codes with a min: d * q + m.
template <class B, class Codes>
float dot32_min(const B* w, const q8_block* x, std::size_t nb, Codes codes) {
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(codes(w[i]), load256(x[i].qs)), ones16());
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w[i].d) * x[i].d), acc);
        mins += h2f(w[i].m) * x[i].s;
    }
    return hsum(acc) + mins;
}

struct codes_q4_0 {
    __m256i operator()(const ggml::block_q4_0& b) const { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); }
};
struct codes_q4_1 {
    __m256i operator()(const ggml::block_q4_1& b) const { return nibbles32(b.qs); }
};
struct codes_q5_0 {
    __m256i operator()(const ggml::block_q5_0& b) const {
        const __m256i h = _mm256_and_si256(bits_to_bytes(ggml::load_qh(b.qh)), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b.qs), h), _mm256_set1_epi8(16));
    }
};
struct codes_q5_1 {
    __m256i operator()(const ggml::block_q5_1& b) const {
        return _mm256_or_si256(nibbles32(b.qs), _mm256_and_si256(bits_to_bytes(ggml::load_qh(b.qh)), _mm256_set1_epi8(0x10)));
    }
};
struct codes_q8_0 {
    __m256i operator()(const ggml::block_q8_0& b) const { return load256(b.qs); }
};
struct codes_iq4_nl {
    __m256i lut = iq4_lut();
    __m256i operator()(const ggml::block_iq4_nl& b) const { return _mm256_shuffle_epi8(lut, nibbles32(b.qs)); }
};

inline float vec_dot(const ggml::block_q4_0* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_q4_0{}); }
inline float vec_dot(const ggml::block_q4_1* w, const q8_block* x, std::size_t nb) { return dot32_min(w, x, nb, codes_q4_1{}); }
inline float vec_dot(const ggml::block_q5_0* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_q5_0{}); }
inline float vec_dot(const ggml::block_q5_1* w, const q8_block* x, std::size_t nb) { return dot32_min(w, x, nb, codes_q5_1{}); }
inline float vec_dot(const ggml::block_q8_0* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_q8_0{}); }
inline float vec_dot(const ggml::block_iq4_nl* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_iq4_nl{}); }

// --- k-quants and IQ4_XS against block_q8_K ----------------------------------------------------

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
// sum_k c[k] * bsums[k] over the 16 sub-blocks, c as 16 int16.
inline int bsum_dot(__m256i c16, const std::int16_t* bsums) { return hsum_i32(_mm256_madd_epi16(c16, load256(bsums))); }

inline __m256 fma_block(__m256i isum, float d, __m256 acc) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc); }

inline float vec_dot(const ggml::block_q2_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q2_K& b = w[i];
        __m256i isum = _mm256_setzero_si256();
        int msum = 0;
        for (int h = 0; h < 2; ++h) {
            __m256i q = load256(b.qs + 32 * h);
            for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2)) {
                const int s = 8 * h + 2 * k;
                const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(q, m3), load256(x[i].qs + 128 * h + 32 * k));
                isum = _mm256_add_epi32(isum, scale_halves(p, b.scales[s] & 15, b.scales[s + 1] & 15));
            }
        }
        const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
        msum = bsum_dot(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0f))), x[i].bsums);
        acc = fma_block(isum, x[i].d * h2f(b.d), acc);
        mins += x[i].d * h2f(b.dmin) * float(msum);
    }
    return hsum(acc) - mins;
}

// Codes q + 4 h in [0, 7] (h the hmask bit), value q + 4 h - 4: the 4 comes off through bsums.
inline float vec_dot(const ggml::block_q3_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q3_K& b = w[i];
        int sc[16];
        for (int k = 0; k < 16; ++k) sc[k] = ggml::q3k_scale(k, b.scales);
        __m256i hm = load256(b.hmask);
        __m256i isum = _mm256_setzero_si256();
        int off = 0;
        for (int h = 0; h < 2; ++h) {
            __m256i q = load256(b.qs + 32 * h);
            for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2), hm = _mm256_srli_epi16(hm, 1)) {
                const int s = 8 * h + 2 * k;
                const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(hm, m1), 2);
                const __m256i c = _mm256_or_si256(_mm256_and_si256(q, m3), hb);
                const __m256i p = _mm256_maddubs_epi16(c, load256(x[i].qs + 128 * h + 32 * k));
                isum = _mm256_add_epi32(isum, scale_halves(p, sc[s], sc[s + 1]));
            }
        }
        for (int k = 0; k < 16; ++k) off += sc[k] * int(x[i].bsums[k]);
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(4 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = fma_block(isum, x[i].d * h2f(b.d), acc);
    }
    return hsum(acc);
}

// The 8 scales and mins of a Q4_K / Q5_K super-block (ggml::k4_scale_min, straight-line).
inline void k4_unpack(const std::uint8_t* s, int* sc, int* m) {
    for (int j = 0; j < 4; ++j) sc[j] = s[j] & 63, m[j] = s[j + 4] & 63;
    for (int j = 4; j < 8; ++j) sc[j] = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
}

// Q4_K (Bits5 false) and Q5_K: sub-blocks 2 p and 2 p + 1 are the low and high nibbles of
// qs[32 p ...], plus bits 2 p and 2 p + 1 of qh for Q5_K (qh shifts right by 2 per pair).
template <bool Bits5, class B>
float dot_k4(const B* w, const ggml::block_q8_K* x, std::size_t nb, const std::uint8_t* (*qh_of)(const B&)) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m1 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const B& b = w[i];
        int sc[8], m[8];
        k4_unpack(b.scales, sc, m);
        __m256i qh = Bits5 ? load256(qh_of(b)) : _mm256_setzero_si256();
        __m256i isum = _mm256_setzero_si256();
        for (int p = 0; p < 4; ++p) {
            const __m256i q = load256(b.qs + 32 * p);
            __m256i c0 = _mm256_and_si256(q, m4), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (Bits5) {
                c0 = _mm256_or_si256(c0, _mm256_slli_epi16(_mm256_and_si256(qh, m1), 4));
                c1 = _mm256_or_si256(c1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), m1), 4));
                qh = _mm256_srli_epi16(qh, 2);
            }
            const __m256i p0 = _mm256_maddubs_epi16(c0, load256(x[i].qs + 64 * p));
            const __m256i p1 = _mm256_maddubs_epi16(c1, load256(x[i].qs + 64 * p + 32));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, _mm256_set1_epi16(short(sc[2 * p]))));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, _mm256_set1_epi16(short(sc[2 * p + 1]))));
        }
        int msum = 0;
        for (int j = 0; j < 8; ++j) msum += m[j] * (int(x[i].bsums[2 * j]) + int(x[i].bsums[2 * j + 1]));
        acc = fma_block(isum, x[i].d * h2f(b.d), acc);
        mins += x[i].d * h2f(b.dmin) * float(msum);
    }
    return hsum(acc) - mins;
}
inline const std::uint8_t* no_qh(const ggml::block_q4_K&) { return nullptr; }
inline const std::uint8_t* qh_q5(const ggml::block_q5_K& b) { return b.qh; }
inline float vec_dot(const ggml::block_q4_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<false>(w, x, nb, no_qh); }
inline float vec_dot(const ggml::block_q5_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<true>(w, x, nb, qh_q5); }

// Codes in [0, 63], value q - 32: the 32 comes off through bsums.
inline float vec_dot(const ggml::block_q6_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q6_K& b = w[i];
        __m256i isum = _mm256_setzero_si256();
        int off = 0;
        for (int h = 0; h < 2; ++h) {
            const __m256i l0 = load256(b.ql + 64 * h), l1 = load256(b.ql + 64 * h + 32);
            const __m256i lows[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                     _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
            __m256i qh = load256(b.qh + 32 * h);
            for (int k = 0; k < 4; ++k, qh = _mm256_srli_epi16(qh, 2)) {
                const int s = 8 * h + 2 * k;
                const __m256i lo = lows[k];
                const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4);
                const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(lo, hi), load256(x[i].qs + 128 * h + 32 * k));
                isum = _mm256_add_epi32(isum, scale_halves(p, b.scales[s], b.scales[s + 1]));
            }
        }
        for (int k = 0; k < 16; ++k) off += int(b.scales[k]) * int(x[i].bsums[k]);
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(32 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = fma_block(isum, x[i].d * h2f(b.d), acc);
    }
    return hsum(acc);
}

inline float vec_dot(const ggml::block_iq4_xs* w, const ggml::block_q8_K* x, std::size_t nb) {
    const __m256i lut = iq4_lut();
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_iq4_xs& b = w[i];
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
            const __m256i v = _mm256_shuffle_epi8(lut, nibbles32(b.qs + 16 * j));
            const __m256i p = maddubs_signed(v, load256(x[i].qs + 32 * j));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_set1_epi16(short(ggml::iq4xs_scale(j, b)))));
        }
        acc = fma_block(isum, x[i].d * h2f(b.d), acc);
    }
    return hsum(acc);
}

// fp32 activations for the 32-weight blocks: the same code registers, widened to float.
template <class B, class Codes>
float dot32_f32(const B* w, const float* x, const float* xs, std::size_t nb, Codes codes) {
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (std::size_t i = 0; i < nb; ++i) {
        const __m256i v = codes(w[i]);
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        const float* xb = x + 32 * i;
        __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), _mm256_loadu_ps(xb));
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), _mm256_loadu_ps(xb + 8), s);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), _mm256_loadu_ps(xb + 16), s);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), _mm256_loadu_ps(xb + 24), s);
        float d[1], m[1] = {0.0f};
        ggml_ref::sub_scales(w[i], d, m);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d)), s, acc);
        if (ggml_ref::has_min<B>::value) mins += m[0] * xs[i];
    }
    return hsum(acc) + mins;
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
    return ggml_simd::vec_dot_f32<xsimd::fma3<xsimd::avx2>>(w, x, xs, nb);
}

}  // namespace x86_ggml

template <class B>
void gemv_rows(backend::avx2, const qview<ggml_format<B>>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    const std::vector<float> xs = ggml_simd::sub_sums<ggml_ref::sub_length<B>::value>(x, w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = x86_ggml::vec_dot_f32(w.row_blocks(r), x, xs.data(), nb);
}

template <class B>
void gemv_q8_rows(backend::avx2, const qview<ggml_format<B>>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = x86_ggml::vec_dot(w.row_blocks(r), x, nb);
}
template <class B>
void gemv_q8_rows(backend::avx2, const qview<ggml_format<B>>& w, const ggml::block_q8_K* x, float* y, std::size_t r0,
                  std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = x86_ggml::vec_dot(w.row_blocks(r), x, nb);
}

}  // namespace kernel
}  // namespace edgeq
#endif
