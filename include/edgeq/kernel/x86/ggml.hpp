// AVX2 escapes for llama.cpp's block formats, int8 activations (gemv_q8). Per 32 weights: the
// codes in one register, pmaddubsw (u8 x s8 -> s16 pairs), then pmaddwd either by ones or by
// the sub-block scales (s16 x s16 -> s32 pairs), so a whole super-block sums in int32 and enters
// float once. Signed codes (Q8_0, the IQ4 code-book) use the sign trick (|v| * sign(x, v));
// unsigned codes with an offset or a min (Q4_0, Q5_0 and Q4_1, Q5_1 through the activation
// block's sum; Q3_K, Q6_K, Q2_K, Q4_K, Q5_K through its 16-wide sums) go into pmaddubsw as they
// are. Pair sums stay within int16: codes below 64 against |x| <= 127, |v| <= 128 against
// |x| <= 127 (both activation blocks are in [-127, 127]). Measured against llama.cpp's own AVX2
// vec_dot in the same run: bench/bench_ggml.cpp, docs/bench-ggml.md.
// The fp32-activation GEMV widens the same code registers to float: per block for the 32-weight
// types (vpmovsxbd), through an unpacked super-block for the others.
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_AVX2
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
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
inline __m128i load128(const void* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
// (lo, hi) as one register; gcc before 8 has no _mm256_set_m128i.
inline __m256i join(__m128i lo, __m128i hi) { return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1); }

// 16 bytes of nibbles -> 32 codes: low nibbles (weights 0-15), then high nibbles (16-31).
inline __m256i nibbles32(const std::uint8_t* p) {
    const __m128i b = load128(p);
    return _mm256_and_si256(join(b, _mm_srli_epi16(b, 4)), _mm256_set1_epi8(0x0f));
}

// Byte j is 0xff where bit j of x is set.
inline __m256i bits_to_bytes(std::uint32_t x) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    const __m256i b = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), shuf), _mm256_set1_epi64x(0x7fbfdfeff7fbfdfell));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

inline __m256i iq4_lut() {
    const __m128i t = _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    return join(t, t);
}

// Signed v (|v| <= 128) against x: 16 int16 pair sums.
inline __m256i maddubs_signed(__m256i v, __m256i x) { return _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(x, v)); }
inline __m256i ones16() { return _mm256_set1_epi16(1); }

// --- legacy blocks against q8_block ------------------------------------------------------------
// Two blocks per step into two accumulators: with one fma chain a block costs at least the fma
// latency (4 cycles on Zen 3), more than its other work.

// Signed codes v: d * v.
template <class B, class Codes>
__m256 signed_block(const B& w, const q8_block& x, const Codes& codes, __m256 acc) {
    const __m256i p = _mm256_madd_epi16(maddubs_signed(codes(w), load256(x.qs)), ones16());
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w.d) * x.d), acc);
}
template <class B, class Codes>
float dot32(const B* w, const q8_block* x, std::size_t nb, Codes codes) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 2 <= nb; i += 2) acc0 = signed_block(w[i], x[i], codes, acc0), acc1 = signed_block(w[i + 1], x[i + 1], codes, acc1);
    if (i < nb) acc0 = signed_block(w[i], x[i], codes, acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}
// Unsigned codes c: d * c + min_scale * min, where min is the block's m (Q4_1, Q5_1) or its d
// (Q4_0 and Q5_0, whose codes are c - 8 and c - 16). The min meets the activation block's sum s,
// so pmaddubsw takes the codes as they are, without the sign trick. Codes::dm gives (d, min) in
// the two low lanes with one conversion; times (x.d, x.s), adjacent in q8_block, it is both
// factors of the block, and the min part is summed in lane 1 of a vector.
template <class B, class Codes>
__m256 unsigned_block(const B& w, const q8_block& x, const Codes& codes, __m256 acc, __m128& mins) {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(codes(w), load256(x.qs)), ones16());
    const __m128 f = _mm_mul_ps(codes.dm(w), _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(&x.d))));
    mins = _mm_add_ps(mins, f);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcastss_ps(f), acc);
}
template <class B, class Codes>
float dot32_unsigned(const B* w, const q8_block* x, std::size_t nb, Codes codes) {
    static_assert(offsetof(q8_block, s) == offsetof(q8_block, d) + sizeof(float), "q8_block: d and s adjacent");
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps();
    std::size_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = unsigned_block(w[i], x[i], codes, acc0, m0);
        acc1 = unsigned_block(w[i + 1], x[i + 1], codes, acc1, m1);
    }
    if (i < nb) acc0 = unsigned_block(w[i], x[i], codes, acc0, m0);
    const __m128 m = _mm_add_ps(m0, m1);
    return hsum(_mm256_add_ps(acc0, acc1)) + Codes::min_scale() * _mm_cvtss_f32(_mm_movehdup_ps(m));
}
// (d, d) and (d, m) of a block as floats in lanes 0 and 1.
inline __m128 dd_of(const fp16_t& d) {
#if defined(__F16C__)
    return _mm_cvtph_ps(_mm_set1_epi16(short(d.bits)));
#else
    return _mm_set1_ps(h2f(d));
#endif
}
inline __m128 dm_of(const fp16_t* dm) {
#if defined(__F16C__)
    std::int32_t v;
    std::memcpy(&v, dm, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
#else
    return _mm_setr_ps(h2f(dm[0]), h2f(dm[1]), 0.0f, 0.0f);
#endif
}

// Signed codes (the fp32-activation path below uses them too).
struct codes_q4_0 {
    __m256i operator()(const ggml::block_q4_0& b) const { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); }
};
inline __m256i q5_high_bits(const std::uint8_t* qh) { return _mm256_and_si256(bits_to_bytes(ggml::load_qh(qh)), _mm256_set1_epi8(0x10)); }
struct codes_q5_0 {
    __m256i operator()(const ggml::block_q5_0& b) const { return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b.qs), q5_high_bits(b.qh)), _mm256_set1_epi8(16)); }
};
struct codes_q8_0 {
    __m256i operator()(const ggml::block_q8_0& b) const { return load256(b.qs); }
};
struct codes_iq4_nl {
    __m256i lut = iq4_lut();
    __m256i operator()(const ggml::block_iq4_nl& b) const { return _mm256_shuffle_epi8(lut, nibbles32(b.qs)); }
};
// Unsigned codes with their min.
struct ucodes_q4_0 {
    __m256i operator()(const ggml::block_q4_0& b) const { return nibbles32(b.qs); }
    __m128 dm(const ggml::block_q4_0& b) const { return dd_of(b.d); }
    static float min_scale() { return -8.0f; }
};
struct ucodes_q5_0 {
    __m256i operator()(const ggml::block_q5_0& b) const { return _mm256_or_si256(nibbles32(b.qs), q5_high_bits(b.qh)); }
    __m128 dm(const ggml::block_q5_0& b) const { return dd_of(b.d); }
    static float min_scale() { return -16.0f; }
};
struct codes_q4_1 {
    __m256i operator()(const ggml::block_q4_1& b) const { return nibbles32(b.qs); }
    __m128 dm(const ggml::block_q4_1& b) const { return dm_of(&b.d); }
    static float min_scale() { return 1.0f; }
};
struct codes_q5_1 {
    __m256i operator()(const ggml::block_q5_1& b) const { return _mm256_or_si256(nibbles32(b.qs), q5_high_bits(b.qh)); }
    __m128 dm(const ggml::block_q5_1& b) const { return dm_of(&b.d); }
    static float min_scale() { return 1.0f; }
};

inline float vec_dot(const ggml::block_q4_0* w, const q8_block* x, std::size_t nb) { return dot32_unsigned(w, x, nb, ucodes_q4_0{}); }
inline float vec_dot(const ggml::block_q4_1* w, const q8_block* x, std::size_t nb) { return dot32_unsigned(w, x, nb, codes_q4_1{}); }
inline float vec_dot(const ggml::block_q5_0* w, const q8_block* x, std::size_t nb) { return dot32_unsigned(w, x, nb, ucodes_q5_0{}); }
inline float vec_dot(const ggml::block_q5_1* w, const q8_block* x, std::size_t nb) { return dot32_unsigned(w, x, nb, codes_q5_1{}); }
inline float vec_dot(const ggml::block_q8_0* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_q8_0{}); }
inline float vec_dot(const ggml::block_iq4_nl* w, const q8_block* x, std::size_t nb) { return dot32(w, x, nb, codes_iq4_nl{}); }

// --- k-quants and IQ4_XS against block_q8_K ----------------------------------------------------
// Per super-block the sub-block scales are unpacked once into a register whose two 128-bit lanes
// are equal, and every 32-weight step takes its scales from it with one pshufb: no scalar scale
// reads inside the loop. Mins and code offsets (Q3_K's 4, Q6_K's 32) meet the activation
// block's 16-wide sums in one pmaddwd. A super-block's integer sums enter float once, by fma.

// pshufb controls for a register whose two lanes are equal. pick_u8: every int16 of the low lane
// becomes byte A zero-extended, of the high lane byte B (index 0x80 writes zero); pick_i16: int16
// A in the low lane, B in the high lane. Kept as data so that pshufb takes them from memory;
// built from immediates, gcc spends registers and instructions on them inside the loop.
template <std::uint16_t Lo, std::uint16_t Hi>
inline __m256i lanes16() {
    alignas(32) static const std::uint16_t v[16] = {Lo, Lo, Lo, Lo, Lo, Lo, Lo, Lo, Hi, Hi, Hi, Hi, Hi, Hi, Hi, Hi};
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(v));
}
template <int A, int B>
inline __m256i pick_u8() {
    return lanes16<std::uint16_t(0x8000 | A), std::uint16_t(0x8000 | B)>();
}
template <int A, int B>
inline __m256i pick_i16() {
    return lanes16<std::uint16_t(((2 * A + 1) << 8) | (2 * A)), std::uint16_t(((2 * B + 1) << 8) | (2 * B))>();
}
inline __m256i dup_low(__m256i v) { return _mm256_permute4x64_epi64(v, 0x44); }
inline __m256i dup_high(__m256i v) { return _mm256_permute4x64_epi64(v, 0xee); }

// Moves a bit field from bit From to bit To of every byte with a 16-bit shift; the caller has
// masked each byte to the field, so nothing crosses into the neighbouring byte.
template <int From, int To>
inline __m256i move_bits(__m256i v) {
    return From < To ? _mm256_slli_epi16(v, From < To ? To - From : 0) : From > To ? _mm256_srli_epi16(v, From > To ? From - To : 0) : v;
}

inline __m256 fma_block(__m256i isum, float d, __m256 acc) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc); }

// Q2_K. Step K of 128-weight half H reads bits 2K, 2K+1 of each byte where they lie (masked, not
// shifted down: the code times 1, 4, 16, 16 for K = 0..3, the last shifted by 2 so that it stays
// below 64 and pmaddubsw cannot saturate) against scales times 16, 4, 1, 1 kept as bytes (15 * 16
// fits). The mins are used as they lie in the high nibbles, times 16 as well. So the whole dot
// is 16 times the true one, exactly in int32 and in float (powers of two), until the last step.
template <int H, int K>
inline __m256i q2k_step(__m256i q, __m256i sc1, __m256i sc4, __m256i sc16, const std::int8_t* x) {
    const __m256i field = _mm256_and_si256(q, _mm256_set1_epi8(char(3 << (2 * K))));
    const __m256i c = K == 3 ? _mm256_srli_epi16(field, 2) : field;
    const __m256i sc = K == 0 ? sc16 : K == 1 ? sc4 : sc1;
    const __m256i p = _mm256_maddubs_epi16(c, load256(x + 128 * H + 32 * K));
    return _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, pick_u8<8 * H + 2 * K, 8 * H + 2 * K + 1>()));
}
template <int H>
inline __m256i q2k_half(const std::uint8_t* qs, __m256i sc1, __m256i sc4, __m256i sc16, const std::int8_t* x) {
    const __m256i q = load256(qs + 32 * H);
    const __m256i s01 = _mm256_add_epi32(q2k_step<H, 0>(q, sc1, sc4, sc16, x), q2k_step<H, 1>(q, sc1, sc4, sc16, x));
    const __m256i s23 = _mm256_add_epi32(q2k_step<H, 2>(q, sc1, sc4, sc16, x), q2k_step<H, 3>(q, sc1, sc4, sc16, x));
    return _mm256_add_epi32(s01, s23);
}
// x.d times a block's (d, dmin) pair (adjacent fp16), converted together.
inline __m128 scales_dd(const fp16_t* dd, float xd) {
#if defined(__F16C__)
    std::int32_t v;
    std::memcpy(&v, dd, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(v)), _mm_set1_ps(xd));
#else
    return _mm_mul_ps(_mm_setr_ps(h2f(dd[0]), h2f(dd[1]), 0.0f, 0.0f), _mm_set1_ps(xd));
#endif
}
inline __m256 first_of(__m128 v) { return _mm256_broadcastss_ps(v); }
inline __m256 second_of(__m128 v) { return _mm256_broadcastss_ps(_mm_movehdup_ps(v)); }

inline float vec_dot(const ggml::block_q2_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q2_K& b = w[i];
        const __m128i sm = load128(b.scales);
        const __m256i sc1 = _mm256_broadcastsi128_si256(_mm_and_si128(sm, _mm_set1_epi8(0x0f)));
        const __m256i sc4 = _mm256_slli_epi16(sc1, 2), sc16 = _mm256_slli_epi16(sc1, 4);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, _mm_set1_epi8(char(0xf0))));
        const __m128 dd = scales_dd(&b.d, x[i].d);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, load256(x[i].bsums))), second_of(dd), accm);
        const __m256i isum = _mm256_add_epi32(q2k_half<0>(b.qs, sc1, sc4, sc16, x[i].qs), q2k_half<1>(b.qs, sc1, sc4, sc16, x[i].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), first_of(dd), acc);
    }
    return hsum(_mm256_sub_ps(acc, accm)) * 0.0625f;
}

// Q3_K's 16 scales minus 32 as int16: low nibbles from bytes 0-7, top two bits from bytes 8-11
// (ggml::q3k_scale). Assembled in two 64-bit words: integer ALU work that runs beside the vector
// pipes, which the rest of the super-block keeps busy.
inline __m256i q3k_scales(const std::uint8_t* s) {
    std::uint64_t lo;
    std::uint32_t top;
    std::memcpy(&lo, s, 8);
    std::memcpy(&top, s + 8, 4);
    const std::uint64_t m4 = 0x0f0f0f0f0f0f0f0full, m2 = 0x03030303u;
    const std::uint64_t h0 = (top & m2) | (std::uint64_t((top >> 2) & m2) << 32), h1 = ((top >> 4) & m2) | (std::uint64_t((top >> 6) & m2) << 32);
    const std::uint64_t s0 = (lo & m4) | (h0 << 4), s1 = ((lo >> 4) & m4) | (h1 << 4);
    const __m128i v = _mm_set_epi64x(static_cast<long long>(s1), static_cast<long long>(s0));
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(v, _mm_set1_epi8(32)));
}
// Code q + 4 h in [0, 7] (h: bit 4 H + K of hmask), value q + 4 h - 4: the 4 comes off through bsums.
template <int H, int K>
inline __m256i q3k_step(__m256i q, __m256i hm, __m256i sc, const std::int8_t* x) {
    const __m256i h = move_bits<4 * H + K, 2>(_mm256_and_si256(hm, _mm256_set1_epi8(char(1 << (4 * H + K)))));
    const __m256i c = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * K), _mm256_set1_epi8(3)), h);
    const __m256i p = _mm256_maddubs_epi16(c, load256(x + 128 * H + 32 * K));
    return _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, pick_i16<2 * K, 2 * K + 1>()));
}
template <int H>
inline __m256i q3k_half(const ggml::block_q3_K& b, __m256i hm, __m256i sc, const std::int8_t* x) {
    const __m256i q = load256(b.qs + 32 * H);
    const __m256i s01 = _mm256_add_epi32(q3k_step<H, 0>(q, hm, sc, x), q3k_step<H, 1>(q, hm, sc, x));
    const __m256i s23 = _mm256_add_epi32(q3k_step<H, 2>(q, hm, sc, x), q3k_step<H, 3>(q, hm, sc, x));
    return _mm256_add_epi32(s01, s23);
}
inline float vec_dot(const ggml::block_q3_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q3_K& b = w[i];
        const __m256i sc = q3k_scales(b.scales);
        const __m256i hm = load256(b.hmask);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc, load256(x[i].bsums)), 2);
        const __m256i isum = _mm256_add_epi32(q3k_half<0>(b, hm, dup_low(sc), x[i].qs), q3k_half<1>(b, hm, dup_high(sc), x[i].qs));
        acc = fma_block(_mm256_sub_epi32(isum, off), x[i].d * h2f(b.d), acc);
    }
    return hsum(acc);
}

// Q4_K / Q5_K: the 6-bit scales and mins of 12 bytes (ggml::k4_scale_min) as the 16 bytes
// [sc0-3, m0-3, sc4-7, m4-7] in both lanes. The block goes on after the 12 bytes, so a 16-byte
// load stays inside it.
inline __m256i k4_scales_mins(const std::uint8_t* s) {
    const __m128i v = load128(s);
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, 0xa4), _mm_setr_epi32(0, 0, 0, 4)),
                                     _mm_setr_epi32(0x3f3f3f3f, 0x3f3f3f3f, 0x0f0f0f0f, 0x0f0f0f0f));
    const __m128i hi = _mm_and_si128(_mm_srli_epi32(_mm_slli_si128(v, 8), 2), _mm_setr_epi32(0, 0, 0x30303030, 0x30303030));
    return _mm256_broadcastsi128_si256(_mm_or_si128(lo, hi));
}
// Byte of sub-block J's scale in that register.
template <int J>
struct k4_byte {
    static constexpr int value = J < 4 ? J : J + 4;
};
// Mins as 16 int16, each twice (sub-block j covers bsums 2 j and 2 j + 1).
inline __m256i k4_mins_ctrl() {
    return _mm256_setr_epi8(4, -128, 4, -128, 5, -128, 5, -128, 6, -128, 6, -128, 7, -128, 7, -128, 12, -128, 12, -128, 13, -128, 13, -128, 14,
                            -128, 14, -128, 15, -128, 15, -128);
}
// Sub-blocks 2 P and 2 P + 1: low and high nibbles of qs[32 P ...], with Q5_K's bits 2 P and
// 2 P + 1 of qh as bit 4.
template <bool Bits5, int P>
inline __m256i k4_step(const std::uint8_t* qs, __m256i qh, __m256i sm, const std::int8_t* x) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = load256(qs + 32 * P);
    __m256i c0 = _mm256_and_si256(q, m4), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if (Bits5) {
        c0 = _mm256_or_si256(c0, move_bits<2 * P, 4>(_mm256_and_si256(qh, _mm256_set1_epi8(char(1 << (2 * P))))));
        c1 = _mm256_or_si256(c1, move_bits<2 * P + 1, 4>(_mm256_and_si256(qh, _mm256_set1_epi8(char(1 << (2 * P + 1))))));
    }
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(c0, load256(x + 64 * P)),
                                         _mm256_shuffle_epi8(sm, pick_u8<k4_byte<2 * P>::value, k4_byte<2 * P>::value>()));
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(c1, load256(x + 64 * P + 32)),
                                         _mm256_shuffle_epi8(sm, pick_u8<k4_byte<2 * P + 1>::value, k4_byte<2 * P + 1>::value>()));
    return _mm256_add_epi32(p0, p1);
}
template <bool Bits5, class B>
float dot_k4(const B* w, const ggml::block_q8_K* x, std::size_t nb, const std::uint8_t* (*qh_of)(const B&)) {
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const B& b = w[i];
        const __m256i sm = k4_scales_mins(b.scales);
        const __m128 dd = scales_dd(&b.d, x[i].d);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_shuffle_epi8(sm, k4_mins_ctrl()), load256(x[i].bsums))), second_of(dd), accm);
        const __m256i qh = Bits5 ? load256(qh_of(b)) : _mm256_setzero_si256();
        const std::int8_t* xq = x[i].qs;
        const __m256i s01 = _mm256_add_epi32(k4_step<Bits5, 0>(b.qs, qh, sm, xq), k4_step<Bits5, 1>(b.qs, qh, sm, xq));
        const __m256i s23 = _mm256_add_epi32(k4_step<Bits5, 2>(b.qs, qh, sm, xq), k4_step<Bits5, 3>(b.qs, qh, sm, xq));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s01, s23)), first_of(dd), acc);
    }
    return hsum(_mm256_sub_ps(acc, accm));
}
inline const std::uint8_t* no_qh(const ggml::block_q4_K&) { return nullptr; }
inline const std::uint8_t* qh_q5(const ggml::block_q5_K& b) { return b.qh; }
inline float vec_dot(const ggml::block_q4_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<false>(w, x, nb, no_qh); }
inline float vec_dot(const ggml::block_q5_K* w, const ggml::block_q8_K* x, std::size_t nb) { return dot_k4<true>(w, x, nb, qh_q5); }

// Q6_K: codes in [0, 63], value q - 32: the 32 comes off through bsums. Step K of half H: the
// low nibbles of ql[64 H + 32 (K & 1) ...] (K < 2) or their high nibbles, bits 2 K, 2 K + 1 of
// qh[32 H ...] as bits 4 and 5.
template <int H, int K>
inline __m256i q6k_step(__m256i l0, __m256i l1, __m256i qh, __m256i sc, const std::int8_t* x) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i l = K & 1 ? l1 : l0;
    const __m256i lo = _mm256_and_si256(K < 2 ? l : _mm256_srli_epi16(l, 4), m4);
    const __m256i hi = move_bits<2 * K, 4>(_mm256_and_si256(qh, _mm256_set1_epi8(char(3 << (2 * K)))));
    const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(lo, hi), load256(x + 128 * H + 32 * K));
    return _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, pick_i16<2 * K, 2 * K + 1>()));
}
template <int H>
inline __m256i q6k_half(const ggml::block_q6_K& b, __m256i sc, const std::int8_t* x) {
    const __m256i l0 = load256(b.ql + 64 * H), l1 = load256(b.ql + 64 * H + 32), qh = load256(b.qh + 32 * H);
    const __m256i s01 = _mm256_add_epi32(q6k_step<H, 0>(l0, l1, qh, sc, x), q6k_step<H, 1>(l0, l1, qh, sc, x));
    const __m256i s23 = _mm256_add_epi32(q6k_step<H, 2>(l0, l1, qh, sc, x), q6k_step<H, 3>(l0, l1, qh, sc, x));
    return _mm256_add_epi32(s01, s23);
}
inline float vec_dot(const ggml::block_q6_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_q6_K& b = w[i];
        const __m256i sc = _mm256_cvtepi8_epi16(load128(b.scales));
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc, load256(x[i].bsums)), 5);
        const __m256i isum = _mm256_add_epi32(q6k_half<0>(b, dup_low(sc), x[i].qs), q6k_half<1>(b, dup_high(sc), x[i].qs));
        acc = fma_block(_mm256_sub_epi32(isum, off), x[i].d * h2f(b.d), acc);
    }
    return hsum(acc);
}
// IQ4_XS's 8 scales minus 32 as int16, both lanes: the low nibbles and the 2-bit high parts
// spread to one byte each with shifts and masks in a 64-bit word (ggml::iq4xs_scale).
inline __m256i iq4xs_scales(const ggml::block_iq4_xs& b) {
    std::uint32_t l;
    std::memcpy(&l, b.scales_l, 4);
    std::uint64_t lo = l;
    lo = (lo | (lo << 16)) & 0x0000ffff0000ffffull;  // scales_l[k] at byte 2 k
    lo = (lo | (lo << 8)) & 0x00ff00ff00ff00ffull;
    lo = (lo & 0x000f000f000f000full) | ((lo << 4) & 0x0f000f000f000f00ull);  // its two nibbles at bytes 2 k, 2 k + 1
    std::uint64_t hi = b.scales_h;
    hi = (hi | (hi << 24)) & 0x000000ff000000ffull;  // 8 bits at bytes 0 and 4
    hi = (hi | (hi << 12)) & 0x000f000f000f000full;  // 4 bits at bytes 0, 2, 4, 6
    hi = (hi | (hi << 6)) & 0x0303030303030303ull;   // 2 bits at every byte
    const __m128i s = _mm_cvtepu8_epi16(_mm_set_epi64x(0, static_cast<long long>(lo | (hi << 4))));
    return _mm256_broadcastsi128_si256(_mm_sub_epi16(s, _mm_set1_epi16(32)));
}
// Sub-blocks 2 P and 2 P + 1 from one 32-byte load: each sub-block's 16 bytes hold weights 0-15
// in the low nibbles and 16-31 in the high ones, so the lanes of the nibble registers are swapped
// into place.
template <int P>
inline __m256i iq4xs_step(const std::uint8_t* qs, __m256i lut, __m256i sc, const std::int8_t* x) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = load256(qs + 32 * P);
    const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(q, m4));
    const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
    const __m256i v0 = _mm256_permute2x128_si256(lo, hi, 0x20), v1 = _mm256_permute2x128_si256(lo, hi, 0x31);
    const __m256i p0 = _mm256_madd_epi16(maddubs_signed(v0, load256(x + 64 * P)), _mm256_shuffle_epi8(sc, pick_i16<2 * P, 2 * P>()));
    const __m256i p1 = _mm256_madd_epi16(maddubs_signed(v1, load256(x + 64 * P + 32)), _mm256_shuffle_epi8(sc, pick_i16<2 * P + 1, 2 * P + 1>()));
    return _mm256_add_epi32(p0, p1);
}
inline float vec_dot(const ggml::block_iq4_xs* w, const ggml::block_q8_K* x, std::size_t nb) {
    const __m256i lut = iq4_lut();
    __m256 acc = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        const ggml::block_iq4_xs& b = w[i];
        const __m256i sc = iq4xs_scales(b);
        const std::int8_t* xq = x[i].qs;
        const __m256i s01 = _mm256_add_epi32(iq4xs_step<0>(b.qs, lut, sc, xq), iq4xs_step<1>(b.qs, lut, sc, xq));
        const __m256i s23 = _mm256_add_epi32(iq4xs_step<2>(b.qs, lut, sc, xq), iq4xs_step<3>(b.qs, lut, sc, xq));
        acc = fma_block(_mm256_add_epi32(s01, s23), x[i].d * h2f(b.d), acc);
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
// fp32 activations for the super-block types: each super-block is unpacked once, with the same
// register code as the int8 path, to 256 int8 values (offsets taken off, so Q3_K and Q6_K need no
// correction), a float scale per 16 weights (d times the sub-block scale) and, for the types with
// mins, a float per 16 weights that meets x's 16-wide sums (xs16). The dot then widens 8 values
// at a time (vpmovsxbd from memory) against x, in four accumulators to cover the fma latency.
struct kq_unpacked {
    alignas(32) std::int8_t v[256];
    alignas(32) float sc[16];
    alignas(32) float mn[16];
};
// 16 int16 -> 16 floats times d.
inline void store_scaled(__m256i s16, float d, float* out) {
    const __m256 vd = _mm256_set1_ps(d);
    _mm256_store_ps(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16))), vd));
    _mm256_store_ps(out + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16, 1))), vd));
}
inline void store_v(std::int8_t* p, __m256i v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
// Bytes [a0, a0, a1, a1, ...] of the 8 bytes at First, First + 1, .. of a 16-byte register (one
// value per 32-weight sub-block, twice: per 16 weights).
template <int First, int Second>
inline __m128i twice8(__m128i s) {
    return _mm_shuffle_epi8(s, _mm_setr_epi8(First, First, First + 1, First + 1, First + 2, First + 2, First + 3, First + 3, Second, Second,
                                             Second + 1, Second + 1, Second + 2, Second + 2, Second + 3, Second + 3));
}

inline void unpack(const ggml::block_q2_K& b, kq_unpacked& u) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
        __m256i q = load256(b.qs + 32 * h);
        for (int k = 0; k < 4; ++k, q = _mm256_srli_epi16(q, 2)) store_v(u.v + 128 * h + 32 * k, _mm256_and_si256(q, m3));
    }
    const __m128i sm = load128(b.scales), m4 = _mm_set1_epi8(0x0f);
    store_scaled(_mm256_cvtepu8_epi16(_mm_and_si128(sm, m4)), h2f(b.d), u.sc);
    store_scaled(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4)), -h2f(b.dmin), u.mn);
}
template <int H, int K>
inline void q3k_unpack_step(const ggml::block_q3_K& b, __m256i hm, std::int8_t* out) {
    const __m256i q = load256(b.qs + 32 * H);
    const __m256i h = move_bits<4 * H + K, 2>(_mm256_and_si256(hm, _mm256_set1_epi8(char(1 << (4 * H + K)))));
    const __m256i c = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * K), _mm256_set1_epi8(3)), h);
    store_v(out + 128 * H + 32 * K, _mm256_sub_epi8(c, _mm256_set1_epi8(4)));
}
inline void unpack(const ggml::block_q3_K& b, kq_unpacked& u) {
    const __m256i hm = load256(b.hmask);
    q3k_unpack_step<0, 0>(b, hm, u.v), q3k_unpack_step<0, 1>(b, hm, u.v), q3k_unpack_step<0, 2>(b, hm, u.v), q3k_unpack_step<0, 3>(b, hm, u.v);
    q3k_unpack_step<1, 0>(b, hm, u.v), q3k_unpack_step<1, 1>(b, hm, u.v), q3k_unpack_step<1, 2>(b, hm, u.v), q3k_unpack_step<1, 3>(b, hm, u.v);
    store_scaled(q3k_scales(b.scales), h2f(b.d), u.sc);
}
template <bool Bits5, class B>
void unpack_k4(const B& b, const std::uint8_t* qh_bytes, kq_unpacked& u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m1 = _mm256_set1_epi8(1);
    __m256i qh = Bits5 ? load256(qh_bytes) : _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
        const __m256i q = load256(b.qs + 32 * p);
        __m256i c0 = _mm256_and_si256(q, m4), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (Bits5) {
            c0 = _mm256_or_si256(c0, _mm256_slli_epi16(_mm256_and_si256(qh, m1), 4));
            c1 = _mm256_or_si256(c1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), m1), 4));
            qh = _mm256_srli_epi16(qh, 2);
        }
        store_v(u.v + 64 * p, c0), store_v(u.v + 64 * p + 32, c1);
    }
    const __m128i sm = _mm256_castsi256_si128(k4_scales_mins(b.scales));  // [sc0-3, m0-3, sc4-7, m4-7]
    store_scaled(_mm256_cvtepu8_epi16(twice8<0, 8>(sm)), h2f(b.d), u.sc);
    store_scaled(_mm256_cvtepu8_epi16(twice8<4, 12>(sm)), -h2f(b.dmin), u.mn);
}
inline void unpack(const ggml::block_q4_K& b, kq_unpacked& u) { unpack_k4<false>(b, nullptr, u); }
inline void unpack(const ggml::block_q5_K& b, kq_unpacked& u) { unpack_k4<true>(b, b.qh, u); }
inline void unpack(const ggml::block_q6_K& b, kq_unpacked& u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; ++h) {
        const __m256i l0 = load256(b.ql + 64 * h), l1 = load256(b.ql + 64 * h + 32);
        const __m256i lows[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                 _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
        __m256i qh = load256(b.qh + 32 * h);
        for (int k = 0; k < 4; ++k, qh = _mm256_srli_epi16(qh, 2)) {
            const __m256i c = _mm256_or_si256(lows[k], _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            store_v(u.v + 128 * h + 32 * k, _mm256_sub_epi8(c, off));
        }
    }
    store_scaled(_mm256_cvtepi8_epi16(load128(b.scales)), h2f(b.d), u.sc);
}
inline void unpack(const ggml::block_iq4_xs& b, kq_unpacked& u) {
    const __m256i lut = iq4_lut(), m4 = _mm256_set1_epi8(0x0f);
    for (int p = 0; p < 4; ++p) {
        const __m256i q = load256(b.qs + 32 * p);
        const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(q, m4));
        const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
        store_v(u.v + 64 * p, _mm256_permute2x128_si256(lo, hi, 0x20)), store_v(u.v + 64 * p + 32, _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    // iq4xs_scales holds the 8 int16 scales in both lanes; each twice, per 16 weights.
    const __m256i s = iq4xs_scales(b);
    store_scaled(_mm256_blend_epi32(_mm256_unpacklo_epi16(s, s), _mm256_unpackhi_epi16(s, s), 0xf0), h2f(b.d), u.sc);
}
template <class B>
struct kq_has_min : std::integral_constant<bool, std::is_same<B, ggml::block_q2_K>::value || std::is_same<B, ggml::block_q4_K>::value ||
                                                     std::is_same<B, ggml::block_q5_K>::value> {};

inline __m256 widen8(const std::int8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))); }
// Super-block types; xs16 holds x's sums over every 16 weights.
template <class B>
float vec_dot_f32_kq(const B* w, const float* x, const float* xs16, std::size_t nb) {
    kq_unpacked u;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 accm = _mm256_setzero_ps();
    for (std::size_t i = 0; i < nb; ++i) {
        unpack(w[i], u);
        const float* xb = x + 256 * i;
        for (int g = 0; g < 16; ++g) {
            const __m256 s0 = _mm256_mul_ps(widen8(u.v + 16 * g), _mm256_loadu_ps(xb + 16 * g));
            const __m256 s = _mm256_fmadd_ps(widen8(u.v + 16 * g + 8), _mm256_loadu_ps(xb + 16 * g + 8), s0);
            acc[g & 3] = _mm256_fmadd_ps(_mm256_broadcast_ss(u.sc + g), s, acc[g & 3]);
        }
        if (kq_has_min<B>::value) {
            accm = _mm256_fmadd_ps(_mm256_load_ps(u.mn), _mm256_loadu_ps(xs16 + 16 * i), accm);
            accm = _mm256_fmadd_ps(_mm256_load_ps(u.mn + 8), _mm256_loadu_ps(xs16 + 16 * i + 8), accm);
        }
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(_mm256_add_ps(acc[2], acc[3]), accm)));
}
inline float vec_dot_f32(const ggml::block_q2_K* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
inline float vec_dot_f32(const ggml::block_q3_K* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
inline float vec_dot_f32(const ggml::block_q4_K* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
inline float vec_dot_f32(const ggml::block_q5_K* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
inline float vec_dot_f32(const ggml::block_q6_K* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
inline float vec_dot_f32(const ggml::block_iq4_xs* w, const float* x, const float* xs16, std::size_t nb) { return vec_dot_f32_kq(w, x, xs16, nb); }
// Length of the x sums that vec_dot_f32 takes: 16 for the super-block types (above), else the
// block's sub-block.
template <class B>
struct f32_sum_length : std::integral_constant<int, B::weights == ggml::qk_k ? 16 : ggml_ref::sub_length<B>::value> {};

}  // namespace x86_ggml

template <class B>
void gemv_rows(backend::avx2, const qview<ggml_format<B>>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    const std::vector<float> xs = ggml_simd::sub_sums<x86_ggml::f32_sum_length<B>::value>(x, w.cols);
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
