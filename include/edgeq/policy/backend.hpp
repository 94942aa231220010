// Backends are empty tag types that inherit from the next more general one, as xsimd's
// architectures do. A kernel is an overload on the tag; the most specific overload that exists
// wins, so a format without a specialised kernel falls back to the next level for free, and
// tests compare every level against `scalar`.
//
//     scalar                         plain C++, the reference
//       simd<Arch>                   written once over xsimd::batch<T, Arch>
//         avx2                       + x86 intrinsic escapes (pmaddubsw, pshufb)
//         neon_a57                   + NEON escapes for the A57 (vmull_s8/vpadalq_s16, vqtbl1q_s8)
//     cuda<SM>                       device kernels (.cuh); cuda<53> is the Jetson Nano's Maxwell
#pragma once
#include "../config.hpp"

namespace edgeq {
namespace kernel {
// The host tags derive from this, so edgeq::kernel is an associated namespace of every tag: a
// kernel template that calls another kernel unqualified (gemm_rows calling dequantize_row) then
// finds, by argument-dependent lookup at instantiation, the overloads that headers included
// after it declare (NEON's, AVX2's), not only those visible where the template was written.
struct dispatch_anchor {};
}  // namespace kernel

namespace backend {

struct scalar : kernel::dispatch_anchor {
    static constexpr const char* name() { return "scalar"; }
};

template <class Arch>
struct simd : scalar {
    using arch = Arch;
    static constexpr const char* name() { return "simd"; }
};

template <int SM>
struct cuda {
    static constexpr int sm = SM;
};
using cuda_sm53 = cuda<53>;
using cuda_sm90 = cuda<90>;

}  // namespace backend
}  // namespace edgeq
