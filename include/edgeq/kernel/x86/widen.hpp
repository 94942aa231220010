// x86 escapes for kernel::widen: pmovzxbd + cvtdq2ps.
#pragma once
#include <cstring>

#include "../../config.hpp"

#if EDGEQ_HAS_AVX2 || EDGEQ_HAS_SSE41
#include <immintrin.h>

namespace edgeq {
namespace kernel {

#if EDGEQ_HAS_AVX2
template <>
struct widen<xsimd::fma3<xsimd::avx2>> {
    using f32 = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
    static f32 u8_to_f32(const std::uint8_t* p) {
        return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
};
template <>
struct widen<xsimd::avx2> : widen<xsimd::fma3<xsimd::avx2>> {};
#endif

#if EDGEQ_HAS_SSE41
template <>
struct widen<xsimd::sse4_1> {
    using f32 = xsimd::batch<float, xsimd::sse4_1>;
    static f32 u8_to_f32(const std::uint8_t* p) {
        int v;
        std::memcpy(&v, p, 4);
        return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(v)));
    }
};
#endif

}  // namespace kernel
}  // namespace edgeq
#endif
