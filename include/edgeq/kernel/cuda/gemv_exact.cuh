// Batch-1 GEMV in exact half sums: edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y).
// C++14 for nvcc >= 10.2, sm_53 upwards: the half2 kernels of gemv_core.cuh, nothing newer.
//
// Why: the half2 kernels round x to half and add half products, about 1e-3 relative error on a
// small model's logits and 5e-3 to 8e-3 on SmolLM2-135M (docs/cuda.md), while fp32 FMAs cost a
// Maxwell twice the instructions. Where the decoded weights are small integers (q - z: uniform
// codes, Q4_0, Q8_0, Q4_K), the activations can be split so that half arithmetic is exact:
// per unit of 32 (per run of 8 for wider codes), x = step (m + l) with step a power of two, m an
// integer and |l| <= 1/2 (gemv_core.cuh, stage_x with split activations). Products q m and their sums are integers that
// half holds exactly as long as they stay within 2048, which bounds m by M_max below; only the
// run of q l rounds, on terms about M_max times smaller than q x. Cost: one more run of half2
// FMAs per unit, a few conversions and twice the staged x (docs/cuda.md, "exact half sums").
//
// Formats whose values are not integers (NF4's code book, SpQR's fractional zero points), Q6_K
// (not staged) and rows too long to stage the split x (staged_limit: 11008 columns fit) take the
// fp32 sums of launch_gemv1_accurate instead.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "gemv_core.cuh"
#include "gemv_mma.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

// An adaptor read with split activations. M_max: the largest |m| such that half_products<A>()
// products of |q| <= code_max sum to at most 2048 (32 for int4 and Q4_0, 128 for int2, 8 for
// 8-bit codes), a power of two so that max |x| / M_max is exact.
template <class A>
struct exact_sums : A {
    static_assert(A::code_max > 0, "exact_sums: this format's decoded values are not small integers (NF4, SpQR): use edgeq::cuda::fp32_sums");
    static constexpr bool split_x = true;
    static constexpr int x_shift = 0;  // step scales each unit instead of a fixed pre-scale
    static constexpr int m_max = A::code_max > 0 ? pow2_at_most(2048 / (half_products<A>() * A::code_max)) : 0;
    // A step per run of 8 for codes wider than 4 bits (their M_max is small; gemv_core.cuh,
    // combine_split), per unit otherwise (fewer conversions where the Nano's issue rate binds).
    static constexpr bool step_per_run = A::fp32_runs;
    static_assert(A::code_max == 0 || m_max >= 2, "exact_sums: codes this wide leave no room for the integer parts of x");
    explicit exact_sums(const A& a) : A(a) {}
};

template <class A>
struct takes_exact_sums : std::integral_constant<bool, (A::code_max > 0) && A::contiguous && !A::row_extra> {};

template <class Config, class A, class XT, class YT>
void launch_gemv1_exact(const A& a, const XT* x, YT* y, cudaStream_t stream, std::true_type) {
    const exact_sums<A> e(a);
    if (staged_bytes(e) <= staged_limit)
        launch_gemv1<Config>(e, x, y, stream);
    else
        launch_gemv1_accurate(a, x, y, stream);
}
template <class Config, class A, class XT, class YT>
void launch_gemv1_exact(const A& a, const XT* x, YT* y, cudaStream_t stream, std::false_type) {
    launch_gemv1_accurate(a, x, y, stream);
}
template <class Config, class A, class XT, class YT>
void launch_gemv1_exact(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (a.rows == 0) return;
    launch_gemv1_exact<Config>(a, x, y, stream, takes_exact_sums<A>{});
}

}  // namespace cuda
}  // namespace kernel
}  // namespace edgeq
