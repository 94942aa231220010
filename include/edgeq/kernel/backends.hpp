// The host backends and `backend::best`, the most specific one this translation unit was
// compiled for (-march decides: a Jetson build gets neon_a57, an AVX2 build avx2).
#pragma once
#include <xsimd/xsimd.hpp>

#include "../config.hpp"
#include "../policy/backend.hpp"

namespace edgeq {
namespace backend {

#if EDGEQ_HAS_AVX2
// AVX2 + FMA, with pmaddubsw/pshufb escapes for the int8 path (kernel/x86/).
struct avx2 : simd<xsimd::fma3<xsimd::avx2>> {
    static constexpr const char* name() { return "avx2"; }
};
using best = avx2;
#elif EDGEQ_HAS_NEON
// ARMv8.0 NEON as on the Cortex-A57: no sdot, so int8 products use vmull_s8/vpadalq_s16 and
// code-book lookups vqtbl1q_s8 (kernel/neon/).
struct neon_a57 : simd<xsimd::neon64> {
    static constexpr const char* name() { return "neon_a57"; }
};
using best = neon_a57;
#elif XSIMD_WITH_SSE2
using best = simd<xsimd::default_arch>;
#else
using best = scalar;
#endif

}  // namespace backend
}  // namespace edgeq
