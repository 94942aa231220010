// AVX2 escape for the int8-activation GEMV of the grouped formats: 32 codes in one register,
// pmaddubsw (u8 x s8 -> s16 pairs) then pmaddwd to int32, one float fma per chunk.
// 8-bit codes and code-book values are signed first and use the sign trick
// (|a| * sign(x, a)), so no pair sum can saturate.
#pragma once
#include "../../config.hpp"

#if EDGEQ_HAS_AVX2
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../format/grouped.hpp"
#include "../activation.hpp"
#include "../backends.hpp"
#include "../simd/unpack.hpp"

namespace edgeq {
namespace kernel {
namespace x86 {

// One bit plane (core/bitpack.hpp) as 32 byte lanes, all in registers: the 2- and 1-bit planes
// broadcast their 8 (or 4) bytes to the four 64-bit lanes and shift each lane by its own count,
// the 64-bit SWAR of kernel/simd/unpack.hpp done four words at once.
template <int Width>
inline __m256i plane256(const std::uint8_t* in);
template <>
inline __m256i plane256<8>(const std::uint8_t* in) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in));
}
template <>
inline __m256i plane256<4>(const std::uint8_t* in) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
    const __m128i m = _mm_set1_epi8(0x0f);
    // (low nibbles, high nibbles); gcc before 8 has no _mm256_set_m128i.
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(b, m)), _mm_and_si128(_mm_srli_epi16(b, 4), m), 1);
}
template <>
inline __m256i plane256<2>(const std::uint8_t* in) {
    const __m256i v = _mm256_set1_epi64x(static_cast<long long>(swar::load64(in)));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 2, 4, 6)), _mm256_set1_epi8(0x03));
}
template <>
inline __m256i plane256<1>(const std::uint8_t* in) {
    const std::uint64_t a = swar::load32(in);
    const __m256i v = _mm256_set1_epi64x(static_cast<long long>(a | ((a >> 1) << 32)));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 2, 4, 6)), _mm256_set1_epi8(0x01));
}

// The 32 codes of a chunk. Shifting 16-bit lanes is safe: high-plane values stay inside their byte.
template <int Bits>
inline __m256i codes256(const std::uint8_t* in, std::true_type /*two planes*/) {
    using p = plane_split<Bits>;
    return _mm256_or_si256(plane256<p::low>(in), _mm256_slli_epi16(plane256<p::high>(in + p::low_bytes), p::low));
}
template <int Bits>
inline __m256i codes256(const std::uint8_t* in, std::false_type /*one plane*/) {
    return plane256<plane_split<Bits>::low>(in);
}
template <int Bits>
inline __m256i codes256(const std::uint8_t* in) {
    return codes256<Bits>(in, std::integral_constant<bool, (plane_split<Bits>::high > 0)>{});
}

// Eight int32 partial sums of v * x over 32 lanes, v unsigned below 128 (pmaddubsw cannot overflow).
inline __m256i dot_u8s8(__m256i v, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(v, x), _mm256_set1_epi16(1));
}
// The same for signed v (|v| <= 128).
inline __m256i dot_s8s8(__m256i v, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(x, v)), _mm256_set1_epi16(1));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Chunk dot product: values of the codes against 32 int8 activations.
template <class F, bool Uniform = F::is_uniform>
struct chunk_dot {
    __m256i operator()(const std::uint8_t* in, const std::int8_t* xq) const {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
        const __m256i q = codes256<F::bits>(in);
        if (F::bits == 8) return dot_s8s8(_mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))), x);  // q - 128
        return dot_u8s8(q, x);
    }
};
// A code-book: its int8 values looked up with pshufb from a table built once per call.
template <class F>
struct chunk_dot<F, false> {
    __m256i lut;
    chunk_dot() {
        alignas(32) std::int8_t t[32];
        for (int i = 0; i < 32; ++i) t[i] = std::int8_t(F::codebook::int_value(i & 15));
        lut = _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
    }
    __m256i operator()(const std::uint8_t* in, const std::int8_t* xq) const {
        const __m256i v = _mm256_shuffle_epi8(lut, codes256<F::bits>(in));
        return dot_s8s8(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
    }
};

}  // namespace x86

template <class F>
void gemv_q8_rows(backend::avx2, const qview<F>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    constexpr int chunk_bytes = plane_split<F::bits>::chunk_bytes;
    // 8-bit codes enter as q - 128, so the zero point moves by 128 as well.
    constexpr int zero_shift = (F::is_uniform && F::bits == 8) ? 128 : 0;
    const std::size_t g = w.group_size(), ng = w.groups_per_row(), chunks = g / chunk_weights;
    const x86::chunk_dot<F> dot;
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* codes = w.row_codes(r);
        __m256 total = _mm256_setzero_ps();
        float correction = 0.0f;
        for (std::size_t j = 0; j < ng; ++j) {
            __m256 acc = _mm256_setzero_ps();
            float sx = 0.0f;
            for (std::size_t k = 0; k < chunks; ++k) {
                const std::size_t c = j * chunks + k;
                const q8_block& b = x[c];
                const __m256i s = dot(codes + c * chunk_bytes, b.qs);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(b.d), acc);
                sx += b.s;
            }
            const float d = w.scale(r, j) * F::codebook::int_unit;
            total = _mm256_fmadd_ps(_mm256_set1_ps(d), acc, total);
            correction += d * float(w.zero(r, j) - zero_shift) * sx;
        }
        y[r] = x86::hsum(total) - correction;
    }
}

}  // namespace kernel
}  // namespace edgeq
#endif
