// The GEMV / small-batch GEMM skeleton shared by every CUDA weight format (grouped.cuh, ggml.cuh).
// C++14 for nvcc >= 10.2, sm_53 upwards: half2 arithmetic only where sm_53 has it.
//
// A format is described by an adaptor (see grouped.cuh, ggml.cuh) that cuts each row into units
// of 32 weights and, for one unit, loads its bytes (load), and turns them into 16 half2 values
// paired with 32 activations (decode) plus up to four fp32 scales (one per run of 8 weights) and
// a term that multiplies the sum of the unit's activations (k-quant minimums).
//
// Arithmetic. Decoded values are small integers (q - z, exact in half) or code-book values; the
// activations are converted to half once per unit, pre-scaled by 2^-x_shift so that a run of
// half products cannot overflow (|x| up to ~4000 for 4-bit codes summed over 16 products, ~16000
// for 8-bit codes summed over 4; see docs/cuda.md); each run's half2 sum goes to fp32 before the
// scale. So the multiply-adds, the costly part on a Jetson Nano's Maxwell (128 fp32 lanes at
// 0.92 GHz cannot keep up with 25.6 GB/s of 4-bit weights in fp32), are half2 FMAs at twice the
// fp32 rate, and codes become halves with one byte permute per two weights (h2_bytes) instead
// of an int->float conversion. Relative error against an fp32 reference is ~1e-3 of the largest
// output, like any fp16 GEMV. Split activations (gemv_exact.cuh: x = step (m + l), the staged
// kernels only) make the half2 products and sums of the integer parts m exact (~3e-5).
//
// Kernels. gemv_kernel: a block of Warps warps takes R rows, its threads stride over the rows'
// units, loading a unit of all R rows before decoding; NT > 1 handles NT tokens at once (small
// batches: the weights are decoded once per unit and applied to every token); batch-1 Q6_K.
// gemv_staged_kernel (batch 1 default): x staged in shared memory, each warp owns R rows, one
// wave of resident blocks striding over the row groups.
// gemv_split_kernel (batch 1, rows too long to stage x): as gemv_kernel with x staged or not.
// Launch shapes: gemv_config<SM>, measured with bench_cuda --tune.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "../../config.hpp"
#include "../../core/error.hpp"

namespace edgeq {
namespace kernel {
namespace cuda {

__device__ __forceinline__ __half2 as_half2(std::uint32_t u) {
    __half2 h;
    static_assert(sizeof(h) == 4, "half2 is 4 bytes");
    *reinterpret_cast<std::uint32_t*>(&h) = u;
    return h;
}
__device__ __forceinline__ std::uint32_t h2_bits(__half2 h) {
    return *reinterpret_cast<const std::uint32_t*>(&h);
}

// --- programmatic dependent launch (sm_90 and newer) -------------------------------------------
// A kernel launched with the PDL attribute (launch_kernel) may start while the kernel before it
// in the stream is still running: its blocks take the SMs that the previous kernel's last blocks
// free, and ask L2 for their first weights while the previous kernel's tail still streams.
// allow_next_launch() lets the next kernel start that way; wait_for_inputs() returns once the
// previous kernel has finished and its writes are visible. Before wait_for_inputs() a kernel
// touches only what no earlier kernel writes (the weights). Before sm_90 both are nothing, and a
// kernel launched without the attribute passes wait_for_inputs() at once.
__device__ __forceinline__ void allow_next_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Ask L2 for the line holding unit u of row r (adaptors with unit_bytes()); others: nothing.
template <class A>
__device__ __forceinline__ auto prefetch_unit(const A& a, std::size_t r, std::size_t u, int)
    -> decltype(a.unit_bytes(r, u), void()) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("prefetch.global.L2 [%0];" ::"l"(a.unit_bytes(r, u)));
#endif
}
template <class A>
__device__ __forceinline__ void prefetch_unit(const A&, std::size_t, std::size_t, long) {}

// half2(1024 + byte b0, 1024 + byte b1) of c: 0x64 in a half's high byte is 2^10, whose mantissa
// takes the byte exactly. Sel picks the bytes: 0x4140 bytes 0 and 1, 0x4342 bytes 2 and 3.
template <unsigned Sel>
__device__ __forceinline__ __half2 h2_bytes(std::uint32_t c) {
    return as_half2(__byte_perm(c, 0x64646464u, Sel));
}

// Four bytes (codes < 256) to two half2 of (code - offset), exact for |code - offset| <= 2048.
__device__ __forceinline__ void bytes_to_h2(std::uint32_t c, __half2 off, __half2& lo, __half2& hi) {
    lo = __hsub2(h2_bytes<0x4140u>(c), off);
    hi = __hsub2(h2_bytes<0x4342u>(c), off);
}

// 4 * N bytes starting at a 2-byte aligned address, as N words (llama.cpp blocks of 18, 34 or
// 210 bytes are only 2-byte aligned): N + 1 aligned loads and a funnel shift when p % 4 == 2.
template <int N>
__device__ __forceinline__ void load_words_a2(const std::uint8_t* p, std::uint32_t (&out)[N]) {
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    const unsigned int* base = reinterpret_cast<const unsigned int*>(a & ~std::uintptr_t(3));
    const bool odd = (a & 2u) != 0;
    std::uint32_t w[N + 1];
#pragma unroll
    for (int i = 0; i < N + 1; ++i) w[i] = (i < N || odd) ? __ldg(base + i) : 0u;
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = odd ? __funnelshift_r(w[i], w[i + 1], 16) : w[i];
}

__device__ __forceinline__ float ld_half(const std::uint8_t* p) {
    return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// --- activations -----------------------------------------------------------------------------

// The fp32 sum of 4 half2.
__device__ __forceinline__ float half2_sum(const __half2 (&h)[4]) {
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) sum += __low2float(h[i]) + __high2float(h[i]);
    return sum;
}

// 8 consecutive activations as 4 half2, times 2^-Shift; `sum` gets their fp32 sum (times the
// same factor) when the format needs it.
template <int Shift, bool Sum>
__device__ __forceinline__ void load_x8(const float* p, __half2* v, float& sum) {
    constexpr float k = 1.0f / float(1 << Shift);
    const float4 a = __ldg(reinterpret_cast<const float4*>(p));
    const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    v[0] = __floats2half2_rn(a.x * k, a.y * k);
    v[1] = __floats2half2_rn(a.z * k, a.w * k);
    v[2] = __floats2half2_rn(b.x * k, b.y * k);
    v[3] = __floats2half2_rn(b.z * k, b.w * k);
    if (Sum) sum += ((a.x + a.y) + (a.z + a.w) + ((b.x + b.y) + (b.z + b.w))) * k;
}
template <int Shift, bool Sum>
__device__ __forceinline__ void load_x8(const __half* p, __half2* v, float& sum) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const __half2 k = __float2half2_rn(1.0f / float(1 << Shift));
    v[0] = __hmul2(as_half2(u.x), k);
    v[1] = __hmul2(as_half2(u.y), k);
    v[2] = __hmul2(as_half2(u.z), k);
    v[3] = __hmul2(as_half2(u.w), k);
    if (Sum) {
#pragma unroll
        for (int i = 0; i < 4; ++i) sum += __low2float(v[i]) + __high2float(v[i]);
    }
}

// The unit's 32 activations: 4 runs of 8 starting where the adaptor says (x_run).
template <class A, class XT>
__device__ __forceinline__ float load_x(const A& a, const XT* x, std::size_t u, __half2 (&v)[16]) {
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) load_x8<A::x_shift, A::needs_xsum>(x + a.x_run(u, i), v + 4 * i, sum);
    return sum;
}

// Which of a unit's scales (A::groups: 1, 2 or 4) multiplies its run g of 8 weights.
template <class A>
__host__ __device__ constexpr int run_scale(int g) {
    return A::groups == 2 ? g / 2 : g % A::groups;
}

// Sum over the unit of value * activation: runs of 8 in half2 (4 FMAs), then fp32. One scale
// (groups == 1): the four runs are added in half unless the format asks for fp32 (8-bit codes).
template <class A>
__device__ __forceinline__ float combine(const __half2 (&v)[16], const __half2 (&x)[16], const float (&s)[A::groups],
                                         float m, float xsum) {
    __half2 acc[4];
#pragma unroll
    for (int g = 0; g < 4; ++g) {
        acc[g] = __hmul2(v[4 * g], x[4 * g]);
#pragma unroll
        for (int i = 1; i < 4; ++i) acc[g] = __hfma2(v[4 * g + i], x[4 * g + i], acc[g]);
    }
    float r;
    if (A::groups == 2) {  // a scale per 16 weights (SpQR): runs 0-1 and 2-3
        float t0, t1;
        if (A::fp32_runs) {
            t0 = __low2float(acc[0]) + __high2float(acc[0]) + (__low2float(acc[1]) + __high2float(acc[1]));
            t1 = __low2float(acc[2]) + __high2float(acc[2]) + (__low2float(acc[3]) + __high2float(acc[3]));
        } else {
            const __half2 h0 = __hadd2(acc[0], acc[1]), h1 = __hadd2(acc[2], acc[3]);
            t0 = __low2float(h0) + __high2float(h0);
            t1 = __low2float(h1) + __high2float(h1);
        }
        r = fmaf(s[0], t0, s[1 % A::groups] * t1);
    } else if (A::groups == 4) {
        r = 0.0f;
#pragma unroll
        for (int g = 0; g < 4; ++g) r = fmaf(s[g % A::groups], __low2float(acc[g]) + __high2float(acc[g]), r);
    } else if (A::fp32_runs) {
        float t = 0.0f;
#pragma unroll
        for (int g = 0; g < 4; ++g) t += __low2float(acc[g]) + __high2float(acc[g]);
        r = s[0] * t;
    } else {
        const __half2 h = __hadd2(__hadd2(acc[0], acc[1]), __hadd2(acc[2], acc[3]));
        r = s[0] * (__low2float(h) + __high2float(h));
    }
    if (A::needs_xsum) r = fmaf(-m, xsum, r);
    return r;
}

// --- exact half sums (gemv_exact.cuh, edgeq::cuda::exact_half_sums) ------------------------
// For formats whose decoded values are integers of at most A::code_max in magnitude. Each unit's
// 32 activations are x = step (m + l): step a power of two, m an integer of at most M_max in
// magnitude, l in [-1/2, 1/2] a half. A chain of half_products<A>() products q m per lane then
// sums integers of at most 2048 in magnitude, exact in half, before it goes to fp32; only the
// run of q l rounds, and its terms are about M_max times smaller than the half2 kernels' q x.
template <class A, class = void>
struct split_x_of : std::false_type {};
template <class A>
struct split_x_of<A, typename std::enable_if<A::split_x>::type> : std::true_type {};

// Products per lane in one exact half chain: 8 for codes of up to 4 bits with one scale per unit
// (M_max 32 for int4 and Q4_0), 2 for wider codes (8-bit: M_max 8), else a run of 4 (a scale
// per run). Shorter chains allow a larger M_max (finer remainders) for one more conversion each.
template <class A>
__host__ __device__ constexpr int half_products() {
    return A::fp32_runs ? 2 : A::groups == 1 ? 8 : 4;
}
__host__ __device__ constexpr int pow2_at_most(int n, int p = 1) {
    return 2 * p > n ? p : pow2_at_most(n, 2 * p);
}

// Run g's step from a unit's word of biased exponent bytes (stage_x): 2^(byte - 127).
__device__ __forceinline__ float step_of(std::uint32_t steps, int g) {
    return __int_as_float(int((steps >> (8 * g)) & 0xffu) << 23);
}

// combine() for split activations (xm: the integer parts, xl: the remainders, times the step).
// A step per unit (steps' byte 0): with one scale per unit the remainders' chains meet in half
// (they round anyway) unless the format asks for fp32 runs. A step per run of 8
// (A::step_per_run: wide codes, whose small M_max would otherwise leave most of a unit with an
// outlier below step / 2, where l is no finer than a half): each run's sum takes its own.
template <class A>
__device__ __forceinline__ float combine_split(const __half2 (&v)[16], const __half2 (&xm)[16], const __half2 (&xl)[16],
                                               const float (&s)[A::groups], float m, float xsum, std::uint32_t steps) {
    constexpr int P = half_products<A>(), chains = 16 / P;
    float r = 0.0f, tm = 0.0f, tl = 0.0f;
    __half2 hl = __float2half2_rn(0.0f);
#pragma unroll
    for (int c = 0; c < chains; ++c) {
        __half2 am = __hmul2(v[P * c], xm[P * c]), al = __hmul2(v[P * c], xl[P * c]);
#pragma unroll
        for (int i = 1; i < P; ++i) {
            am = __hfma2(v[P * c + i], xm[P * c + i], am);
            al = __hfma2(v[P * c + i], xl[P * c + i], al);
        }
        const float t = __low2float(am) + __high2float(am);
        const int g = P * c / 4;  // the run (P <= 4) or the first of the chain's runs
        if (A::step_per_run) {
            r = fmaf(s[run_scale<A>(g)] * step_of(steps, g), t + (__low2float(al) + __high2float(al)), r);
        } else if (A::groups == 1) {
            tm += t;
            if (A::fp32_runs)
                tl += __low2float(al) + __high2float(al);
            else
                hl = c == 0 ? al : __hadd2(hl, al);
        } else {
            r = fmaf(s[run_scale<A>(g)], t + (__low2float(al) + __high2float(al)), r);
        }
    }
    if (!A::step_per_run) {
        if (A::groups == 1) {
            if (!A::fp32_runs) tl = __low2float(hl) + __high2float(hl);
            r = s[0] * (tm + tl);
        }
        r *= step_of(steps, 0);
    }
    if (A::needs_xsum) r = fmaf(-m, xsum, r);
    return r;
}

template <class YT>
__device__ __forceinline__ void store_y(YT* p, float v);
template <>
__device__ __forceinline__ void store_y<float>(float* p, float v) {
    *p = v;
}
template <>
__device__ __forceinline__ void store_y<__half>(__half* p, float v) {
    *p = __float2half_rn(v);
}

// A per-row term beyond the units (SpQR's sparse outliers, A::row_extra): thread t of the nt
// that share a row adds a.row_extra_part(r, t, nt, x), in the units of x (not pre-scaled).
template <class A, class XT>
__device__ __forceinline__ float row_extra(const A& a, std::size_t r, unsigned t, unsigned nt, const XT* x, std::true_type) {
    return a.row_extra_part(r, t, nt, x) * (1.0f / float(1 << A::x_shift));
}
template <class A, class XT>
__device__ __forceinline__ float row_extra(const A&, std::size_t, unsigned, unsigned, const XT*, std::false_type) {
    return 0.0f;
}
template <class A, class XT>
__device__ __forceinline__ float row_extra(const A& a, std::size_t r, unsigned t, unsigned nt, const XT* x) {
    return row_extra(a, r, t, nt, x, std::integral_constant<bool, A::row_extra>{});
}

template <class A>
struct table_storage {
    static constexpr int size = A::table_size > 0 ? A::table_size : 1;
};

// fp32 sums of code-book values (NF4, A::exact_lo): each value is hi + lo, hi the half that the
// half2 kernels use and lo = value - hi, also a half, so that hi + lo holds the fp32 value to 22
// bits and the fp32 kernels (gemv_fp32_kernel, the tensor-core GEMV, the tiled GEMM,
// decode_rows) compute with the code book the CPU uses. Their shared table is then A::table_size
// hi entries followed by as many lo entries (table_entry_lo).
template <class A, class = void>
struct exact_lo_of : std::false_type {};
template <class A>
struct exact_lo_of<A, typename std::enable_if<A::exact_lo>::type> : std::true_type {};
template <class A>
struct exact_table_storage {
    static constexpr int size = exact_lo_of<A>::value ? 2 * A::table_size : table_storage<A>::size;
};
template <class A>
__device__ __forceinline__ void fill_lo(__half2* lo, std::true_type) {
    for (int i = int(threadIdx.x); i < A::table_size; i += int(blockDim.x)) lo[i] = A::table_entry_lo(i);
}
template <class A>
__device__ __forceinline__ void fill_lo(__half2*, std::false_type) {}
// Fills the table of an fp32 kernel (hi, then lo); the caller synchronises.
template <class A>
__device__ __forceinline__ void fill_exact_table(__half2* table) {
    for (int i = int(threadIdx.x); i < A::table_size; i += int(blockDim.x)) table[i] = A::table_entry(i);
    fill_lo<A>(table + A::table_size, exact_lo_of<A>{});
}

// Rows r0 .. r0 + R - 1, the ones past the end clamped to the last row (loaded, not stored).
template <class A, int R>
__device__ __forceinline__ void rows_from(const A& a, std::size_t r0, std::size_t (&row)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) row[i] = r0 + std::size_t(i) < a.rows ? r0 + std::size_t(i) : a.rows - 1;
}

// y[t][r] = sum_k W[r][k] x[t][k] for t < NT; x is NT x cols, y NT x rows, both row-major.
template <class A, class XT, class YT, int Warps, int R, int NT>
__global__ void __launch_bounds__(Warps * 32)
    gemv_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y) {
    static_assert(!split_x_of<A>::value, "gemv_kernel: split activations (exact half sums) take the staged kernels");
    __shared__ __half2 table[table_storage<A>::size];
    __shared__ float partial[Warps][R * NT];
    if (A::table_size > 0) {
        for (int i = int(threadIdx.x); i < A::table_size; i += Warps * 32) table[i] = A::table_entry(i);
        __syncthreads();
    }
    const std::size_t r0 = std::size_t(blockIdx.x) * R;
    std::size_t row[R];
    rows_from(a, r0, row);

    float acc[R][NT];
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[i][t] = 0.0f;

    for (std::size_t u = threadIdx.x; u < a.units; u += Warps * 32) {
        typename A::raw raw[R];
#pragma unroll
        for (int i = 0; i < R; ++i) a.load(row[i], u, raw[i]);
        __half2 v[R][16];
        float s[R][A::groups], m[R];
#pragma unroll
        for (int i = 0; i < R; ++i) a.decode(raw[i], table, v[i], s[i], m[i]);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            __half2 xv[16];
            const float xsum = load_x(a, x + std::size_t(t) * a.cols, u, xv);
#pragma unroll
            for (int i = 0; i < R; ++i) acc[i][t] += combine<A>(v[i], xv, s[i], m[i], xsum);
        }
    }
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[i][t] += row_extra(a, row[i], threadIdx.x, Warps * 32, x + std::size_t(t) * a.cols);

    const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            float v = acc[i][t];
#pragma unroll
            for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) partial[warp][i * NT + t] = v;
        }
    __syncthreads();
    constexpr float unscale = float(1 << A::x_shift);
    for (int j = int(threadIdx.x); j < R * NT; j += Warps * 32) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < Warps; ++w) v += partial[w][j];
        const std::size_t r = r0 + std::size_t(j / NT);
        if (r < a.rows) store_y(y + std::size_t(j % NT) * a.rows + r, v * unscale);
    }
}

// Batch 1: each warp owns R rows and reads them whole (lanes take every 32nd unit), so warps
// drift apart and keep the memory pipe full. The activations are staged once per block in shared
// memory as pre-scaled half2 (and, for k-quants, each unit's fp32 activation sum): a unit's 32
// activations are then four 16-byte shared loads instead of 8 global loads, 32 multiplies and 16
// conversions per warp and unit. Formats whose A::staged_order is not x_order::columns decode
// their codes in an order that suits their bytes (decode_paired) and the staged x is permuted to
// match, once per block instead of per weight.
//
// 4-bit words as stored (edgeq's chunks and Q4_0 alike): byte k of word m holds code 4m + k in
// its low nibble and 4m + 16 + k in its high nibble.
// - x_order::nibble_pairs: ((w & 0x000f000f) | 0x64006400) is half2(1024 + c[4m], 1024 + c[4m + 2])
//   in one lop3; the high nibbles give 1024 + 16 c, which one hfma2 by 1/16 brings back. So half2
//   slot 4m + e of a unit pairs columns c and c + 2 with c = 4m + (e & 2 ? 16 : 0) + (e & 1).
// - x_order::byte_pairs: slot 4m + k pairs the two codes of byte k, columns 4m + k and
//   4m + 16 + k (a code book looks a byte up as one pair: codebook.cuh, NF4).
enum class x_order { columns, nibble_pairs, byte_pairs };

template <class A>
__device__ __forceinline__ void decode_staged(const A& a, const typename A::raw& in, const __half2* table,
                                              __half2 (&v)[16], float (&s)[A::groups], float& m, std::true_type) {
    a.decode_paired(in, table, v, s, m);
}
template <class A>
__device__ __forceinline__ void decode_staged(const A& a, const typename A::raw& in, const __half2* table,
                                              __half2 (&v)[16], float (&s)[A::groups], float& m, std::false_type) {
    a.decode(in, table, v, s, m);
}
template <class A>
__device__ __forceinline__ void decode_staged(const A& a, const typename A::raw& in, const __half2* table,
                                              __half2 (&v)[16], float (&s)[A::groups], float& m) {
    decode_staged(a, in, table, v, s, m, std::integral_constant<bool, A::staged_order != x_order::columns>{});
}

// The lo halves (exact_lo_of) in decode_staged's order; zero for the other formats.
template <class A>
__device__ __forceinline__ void decode_staged_lo(const A& a, const typename A::raw& in, const __half2* lo, __half2 (&v)[16],
                                                 std::true_type) {
    if (A::staged_order != x_order::columns)
        a.decode_paired_lo(in, lo, v);
    else
        a.decode_lo(in, lo, v);
}
template <class A>
__device__ __forceinline__ void decode_staged_lo(const A&, const typename A::raw&, const __half2*, __half2 (&)[16], std::false_type) {}

template <class A>
__device__ __forceinline__ void add_lo(const A& a, const typename A::raw& in, const __half2* lo, float2 (&f)[16], std::true_type) {
    __half2 v[16];
    a.decode_lo(in, lo, v);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        const float2 l = __half22float2(v[i]);
        f[i].x += l.x, f[i].y += l.y;
    }
}
template <class A>
__device__ __forceinline__ void add_lo(const A&, const typename A::raw&, const __half2*, float2 (&)[16], std::false_type) {}

// A unit's values as fp32 pairs in decode()'s order (columns), code books to fp32 (hi + lo;
// `table` as fill_exact_table leaves it), with its scales and minimum term.
template <class A>
__device__ __forceinline__ void decode_f32(const A& a, const typename A::raw& in, const __half2* table, float2 (&f)[16],
                                           float (&s)[A::groups], float& m) {
    __half2 v[16];
    a.decode(in, table, v, s, m);
#pragma unroll
    for (int i = 0; i < 16; ++i) f[i] = __half22float2(v[i]);
    add_lo(a, in, table + A::table_size, f, exact_lo_of<A>{});
}

// The four nibble words of a 4-bit unit to 16 half2 of (code - z) in nibble pair order:
// per word one shift, four lop3, two hsub2, two hfma2 (exact: 1024 + 16 c and 64 + c are
// integers a half holds).
__device__ __forceinline__ void nibbles_paired(const std::uint32_t (&q)[4], float z, __half2 (&v)[16]) {
    const __half2 lo_off = __float2half2_rn(1024.0f + z);
    const __half2 sixteenth = __float2half2_rn(0.0625f), hi_off = __float2half2_rn(-64.0f - z);
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const std::uint32_t w = q[m], w8 = q[m] >> 8;
        v[4 * m] = __hsub2(as_half2((w & 0x000f000fu) | 0x64006400u), lo_off);
        v[4 * m + 1] = __hsub2(as_half2((w8 & 0x000f000fu) | 0x64006400u), lo_off);
        v[4 * m + 2] = __hfma2(as_half2((w & 0x00f000f0u) | 0x64006400u), sixteenth, hi_off);
        v[4 * m + 3] = __hfma2(as_half2((w8 & 0x00f000f0u) | 0x64006400u), sixteenth, hi_off);
    }
}

// The staged x in 16-byte chunks of 8 columns, swizzled: chunk k of a 32-column unit U sits at
// k ^ ((U / 2) % 4). A lane reads its unit's four chunks with 16-byte loads while lanes take
// consecutive units; unswizzled, the 8 lanes of a load phase (64 bytes apart) would hit the same
// 4 banks 4 times over (4-way conflicts, which made shared memory a co-bottleneck at R = 2).
__device__ __forceinline__ std::size_t staged_chunk(std::size_t c8) {
    return (c8 & ~std::size_t(3)) | ((c8 ^ (c8 >> 3)) & 3u);
}

// The column (0..7 of a chunk's lo, hi) in half h of the chunk's half2 slot j.
__host__ __device__ constexpr int chunk_column(x_order o, int j, int h) {
    return o == x_order::nibble_pairs ? (j & 2) * 2 + (j & 1) + 2 * h : o == x_order::byte_pairs ? j + 4 * h : 2 * j + h;
}

// Eight fp32 activations (lo, hi) times 2^-x_shift as a staged chunk of 4 half2: in column
// order, (nibble_pairs) (lo.x lo.z)(lo.y lo.w)(hi.x hi.z)(hi.y hi.w) or (byte_pairs)
// (lo.x hi.x)(lo.y hi.y)(lo.z hi.z)(lo.w hi.w); `sum` gets their fp32 sum, times the same
// factor, when the format needs it.
template <class A, x_order Order>
__device__ __forceinline__ uint4 stage_floats(const float4& lo, const float4& hi, float& sum) {
    constexpr float k = 1.0f / float(1 << A::x_shift);
    const float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    std::uint32_t o[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) o[j] = h2_bits(__floats2half2_rn(f[chunk_column(Order, j, 0)] * k, f[chunk_column(Order, j, 1)] * k));
    if (A::needs_xsum) sum = ((lo.x + lo.y) + (lo.z + lo.w) + ((hi.x + hi.y) + (hi.z + hi.w))) * k;
    return make_uint4(o[0], o[1], o[2], o[3]);
}

// Chunk i of the staged x (8 columns as 4 half2, times 2^-x_shift) and, in `sum`, the fp32 sum
// of those 8 scaled values.
template <class A, x_order Order = A::staged_order>
struct x_stager {
    // Paired orders: chunk i = 4u + m holds word m of unit u, i.e. columns 32u + 4m .. +3 and
    // 32u + 16 + 4m .. +3, paired as the decoder pairs them.
    static __device__ __forceinline__ uint4 chunk(const float* x, std::size_t i, float& sum) {
        const std::size_t c = 32 * (i / 4) + 4 * (i % 4);
        return stage_floats<A, Order>(__ldg(reinterpret_cast<const float4*>(x + c)), __ldg(reinterpret_cast<const float4*>(x + c + 16)), sum);
    }
    static __device__ __forceinline__ uint4 chunk(const __half* x, std::size_t i, float& sum) {
        const __half2 k = __float2half2_rn(1.0f / float(1 << A::x_shift));
        const std::size_t c = 32 * (i / 4) + 4 * (i % 4);
        const uint2 lo = __ldg(reinterpret_cast<const uint2*>(x + c));
        const uint2 hi = __ldg(reinterpret_cast<const uint2*>(x + c + 16));
        // nibble pairs: (x0 x1)(x2 x3) -> (x0 x2)(x1 x3); byte pairs: (x0 y0)(x1 y1)(x2 y2)(x3 y3)
        const bool nib = Order == x_order::nibble_pairs;
        const __half2 h[4] = {__hmul2(as_half2(nib ? __byte_perm(lo.x, lo.y, 0x5410u) : __byte_perm(lo.x, hi.x, 0x5410u)), k),
                              __hmul2(as_half2(nib ? __byte_perm(lo.x, lo.y, 0x7632u) : __byte_perm(lo.x, hi.x, 0x7632u)), k),
                              __hmul2(as_half2(nib ? __byte_perm(hi.x, hi.y, 0x5410u) : __byte_perm(lo.y, hi.y, 0x5410u)), k),
                              __hmul2(as_half2(nib ? __byte_perm(hi.x, hi.y, 0x7632u) : __byte_perm(lo.y, hi.y, 0x7632u)), k)};
        if (A::needs_xsum) sum = half2_sum(h);
        return make_uint4(h2_bits(h[0]), h2_bits(h[1]), h2_bits(h[2]), h2_bits(h[3]));
    }
};
template <class A>
struct x_stager<A, x_order::columns> {
    static __device__ __forceinline__ uint4 chunk(const float* x, std::size_t i, float& sum) {
        return stage_floats<A, x_order::columns>(__ldg(reinterpret_cast<const float4*>(x) + 2 * i), __ldg(reinterpret_cast<const float4*>(x) + 2 * i + 1), sum);
    }
    static __device__ __forceinline__ uint4 chunk(const __half* x, std::size_t i, float& sum) {
        const __half2 k = __float2half2_rn(1.0f / float(1 << A::x_shift));
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(x) + i);
        const __half2 h[4] = {__hmul2(as_half2(v.x), k), __hmul2(as_half2(v.y), k), __hmul2(as_half2(v.z), k), __hmul2(as_half2(v.w), k)};
        if (A::needs_xsum) sum = half2_sum(h);
        return make_uint4(h2_bits(h[0]), h2_bits(h[1]), h2_bits(h[2]), h2_bits(h[3]));
    }
};

// Where a block's staged x lies in its dynamic shared memory (staged_bytes): x as half2 (split
// activations: the integer parts m), then with split activations the remainders l and each
// unit's step, then for k-quants each unit's activation sum.
template <class A>
struct staged_x {
    __half2* m;
    __half2* l;
    std::uint32_t* steps;  // per unit, byte g: run g's step as a biased exponent (step_of)
    float* sums;
    __device__ staged_x(uint4* smem, const A& a) {
        constexpr bool split = split_x_of<A>::value;
        m = reinterpret_cast<__half2*>(smem);
        l = m + (split ? a.cols / 2 : 0);
        steps = reinterpret_cast<std::uint32_t*>(l + a.cols / 2);
        sums = reinterpret_cast<float*>(steps + (split ? a.units : 0));
    }
};
template <class A>
std::size_t staged_bytes(const A& a) {
    constexpr bool split = split_x_of<A>::value;
    return a.cols * 2 * (split ? 2 : 1) + (split ? a.units * 4 : 0) + (A::needs_xsum ? a.units * 4 : 0);
}

// x into shared memory, and for k-quants each unit's activation sum. The four chunks of a unit
// are four consecutive threads' (blockDim is a multiple of 32), so the sums meet by two
// shuffles: x is read from global memory once. (Summing each unit again from global memory, as
// load_x does, cost Q4_K 3 us of 15 at 11008 x 4096: the block waits for it before streaming.)
template <class A, class XT>
__device__ __forceinline__ void stage_x(const A& a, const XT* x, const staged_x<A>& sx, std::false_type /* split */) {
    uint4* out = reinterpret_cast<uint4*>(sx.m);
    const std::size_t n = a.cols / 8;
    if (!A::needs_xsum) {
        float unused;
        for (std::size_t i = threadIdx.x; i < n; i += blockDim.x) out[staged_chunk(i)] = x_stager<A>::chunk(x, i, unused);
        return;
    }
    const std::size_t whole_warps = (n + 31) / 32 * 32;  // every lane of a warp reaches the shuffles
    for (std::size_t i = threadIdx.x; i < whole_warps; i += blockDim.x) {
        float sum = 0.0f;
        if (i < n) out[staged_chunk(i)] = x_stager<A>::chunk(x, i, sum);
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (i < n && i % 4 == 0) sx.sums[i / 4] = sum;
    }
}

// Chunk i's 8 activations in fp32 as (lo, hi), the two float4 that stage_floats pairs by Order.
template <x_order Order>
__device__ __forceinline__ void chunk_floats(const float* x, std::size_t i, float4& lo, float4& hi) {
    const std::size_t c = Order == x_order::columns ? 8 * i : 32 * (i / 4) + 4 * (i % 4);
    const std::size_t c_hi = Order == x_order::columns ? c + 4 : c + 16;
    lo = __ldg(reinterpret_cast<const float4*>(x + c));
    hi = __ldg(reinterpret_cast<const float4*>(x + c_hi));
}
__device__ __forceinline__ float4 float4_of(uint2 h) {
    const float2 a = __half22float2(as_half2(h.x)), b = __half22float2(as_half2(h.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
template <x_order Order>
__device__ __forceinline__ void chunk_floats(const __half* x, std::size_t i, float4& lo, float4& hi) {
    const std::size_t c = Order == x_order::columns ? 8 * i : 32 * (i / 4) + 4 * (i % 4);
    const std::size_t c_hi = Order == x_order::columns ? c + 4 : c + 16;
    lo = float4_of(__ldg(reinterpret_cast<const uint2*>(x + c)));
    hi = float4_of(__ldg(reinterpret_cast<const uint2*>(x + c_hi)));
}

// Split activations: step = 2^e with step > max |x| / M_max (frexp), the largest |x| of the unit
// (met across its four threads) or, with A::step_per_run, of the thread's own run of 8; each x
// becomes m = rint(x / step), l = x / step - m. A run's step is kept as its biased exponent
// byte (e + 127), the unit's four in one word.
template <class A, class XT>
__device__ __forceinline__ void stage_x(const A& a, const XT* x, const staged_x<A>& sx, std::true_type /* split */) {
    constexpr x_order order = A::staged_order;
    uint4* out_m = reinterpret_cast<uint4*>(sx.m);
    uint4* out_l = reinterpret_cast<uint4*>(sx.l);
    const std::size_t n = a.cols / 8;
    const std::size_t whole_warps = (n + 31) / 32 * 32;
    for (std::size_t i = threadIdx.x; i < whole_warps; i += blockDim.x) {
        float4 lo = make_float4(0.0f, 0.0f, 0.0f, 0.0f), hi = lo;
        if (i < n) chunk_floats<order>(x, i, lo, hi);
        const float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
        float mx = 0.0f, sum = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; ++k) mx = fmaxf(mx, fabsf(f[k]));
        if (!A::step_per_run) {
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        }
        if (A::needs_xsum) {
            sum = ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        }
        int e = 0;
        frexpf(mx * (1.0f / float(A::m_max)), &e);
        e = mx > 0.0f ? max(e, -126) : 0;  // all zero: step 1; subnormal: no infinite 1 / step
        const float inv = ldexpf(1.0f, -e);
        if (i < n) {
            std::uint32_t om[4], ol[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float q0 = f[chunk_column(order, j, 0)] * inv, q1 = f[chunk_column(order, j, 1)] * inv;
                const float m0 = rintf(q0), m1 = rintf(q1);
                om[j] = h2_bits(__floats2half2_rn(m0, m1));
                ol[j] = h2_bits(__floats2half2_rn(q0 - m0, q1 - m1));
            }
            out_m[staged_chunk(i)] = make_uint4(om[0], om[1], om[2], om[3]);
            out_l[staged_chunk(i)] = make_uint4(ol[0], ol[1], ol[2], ol[3]);
            reinterpret_cast<std::uint8_t*>(sx.steps)[i] = std::uint8_t(e + 127);
            if (A::needs_xsum && i % 4 == 0) sx.sums[i / 4] = sum;
        }
    }
}
template <class A, class XT>
__device__ __forceinline__ void stage_x(const A& a, const XT* x, const staged_x<A>& sx) {
    stage_x(a, x, sx, split_x_of<A>{});
}

template <class A>
__device__ __forceinline__ void load_staged_x(const A& a, const __half2* xs, std::size_t u, __half2 (&v)[16]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint4 q = reinterpret_cast<const uint4*>(xs)[staged_chunk(a.x_run(u, i) / 8)];
        v[4 * i] = as_half2(q.x), v[4 * i + 1] = as_half2(q.y), v[4 * i + 2] = as_half2(q.z), v[4 * i + 3] = as_half2(q.w);
    }
}

// Dynamic shared memory for the staged x: 48 KB per block without opting in (all of it on
// sm_53) holds static and dynamic shared memory together, so 2 KB are left for the kernels'
// own arrays (NF4's 1 KB code table, the team kernel's partial sums).
constexpr std::size_t staged_limit = 46 * 1024;

// One step of a lane: U units (u0, u0 + 32, ...) of R rows.
template <class A, int U, int R, int Stride = 32>
__device__ __forceinline__ void load_step(const A& a, const std::size_t (&row)[R], std::size_t u0,
                                          typename A::raw (&raw)[U][R]) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const std::size_t u = u0 + Stride * std::size_t(j);
        if (u < a.units) {
#pragma unroll
            for (int i = 0; i < R; ++i) a.load(row[i], u, raw[j][i]);
        }
    }
}
template <class A>
__device__ __forceinline__ float combine_staged(const __half2 (&v)[16], const __half2 (&xm)[16], const __half2 (&xl)[16],
                                                const float (&s)[A::groups], float m, float xsum, std::uint32_t steps, std::true_type) {
    return combine_split<A>(v, xm, xl, s, m, xsum, steps);
}
template <class A>
__device__ __forceinline__ float combine_staged(const __half2 (&v)[16], const __half2 (&x)[16], const __half2 (&)[16],
                                                const float (&s)[A::groups], float m, float xsum, std::uint32_t, std::false_type) {
    return combine<A>(v, x, s, m, xsum);
}
template <class A, int U, int R, int Stride = 32>
__device__ __forceinline__ void compute_step(const A& a, const staged_x<A>& sx, const __half2* table, std::size_t u0,
                                             const typename A::raw (&raw)[U][R], float (&acc)[R]) {
    constexpr bool split = split_x_of<A>::value;
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const std::size_t u = u0 + Stride * std::size_t(j);
        if (u < a.units) {
            __half2 xv[16], xl[16];
            load_staged_x(a, sx.m, u, xv);
            if (split) load_staged_x(a, sx.l, u, xl);
            const std::uint32_t steps = split ? sx.steps[u] : 0u;
            const float xsum = A::needs_xsum ? sx.sums[u] : 0.0f;
#pragma unroll
            for (int i = 0; i < R; ++i) {
                __half2 v[16];
                float s[A::groups], m;
                decode_staged(a, raw[j][i], table, v, s, m);
                acc[i] += combine_staged<A>(v, xv, xl, s, m, xsum, steps, split_x_of<A>{});
            }
        }
    }
}

// Threads per block of the staged and team kernels as compiled for one GPU: Warps * 32, except
// where a block holds only 32K registers (sm_53, the Jetson Nano; sm_62): there blocks of 16 or
// 32 warps leave 64 or 32 registers per thread, and ptxas (CUDA 11.8, the engine's kernels)
// spilled up to 116 and 316 bytes per thread; with 8 warps (up to 128 registers) none. The
// launches ask each kernel how many threads it takes (launch_warps), so one set of template
// instances serves both and the narrower blocks simply take fewer rows each.
__host__ __device__ constexpr int staged_threads(int warps) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 530 || __CUDA_ARCH__ == 620)
    return (warps < 8 ? warps : 8) * 32;
#else
    return warps * 32;
#endif
}

// Warps take groups of R rows: group g = blockIdx.x * warps + warp, then g + gridDim.x * warps...
// (warps: blockDim.x / 32, at most Warps; staged_threads).
// The launch (launch_staged_rows) makes the grid only as large as what is resident at once, so x
// is staged once per resident block and the rows are dealt out evenly: with one block per row
// group, 11008 rows in blocks of 32 were 1.3 waves of 2 blocks per SM, the last third of the
// time with most SMs idle, and 4096 rows filled half the block slots.
template <class A, class XT, class YT, int Warps, int R, int U, int MinBlocks>
__global__ void __launch_bounds__(staged_threads(Warps), MinBlocks)
    gemv_staged_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y, bool overlap) {
    extern __shared__ uint4 staged[];
    const staged_x<A> sx(staged, a);
    __shared__ __half2 table[table_storage<A>::size];
    if (A::table_size > 0)
        for (int i = int(threadIdx.x); i < A::table_size; i += int(blockDim.x)) table[i] = A::table_entry(i);
    const unsigned lane = threadIdx.x % 32u, warps = blockDim.x / 32u;
    const std::size_t first = (std::size_t(blockIdx.x) * warps + threadIdx.x / 32u) * R;  // the warp's first row
    allow_next_launch();
    // The first unit of the warp's first row (more measured slower: it floods DRAM).
    if (overlap && first < a.rows && lane < a.units) prefetch_unit(a, first, lane, 0);
    wait_for_inputs();
    stage_x(a, x, sx);
    __syncthreads();

    constexpr float unscale = float(1 << A::x_shift);
    for (std::size_t r0 = first; r0 < a.rows; r0 += std::size_t(gridDim.x) * warps * R) {
        std::size_t row[R];
        rows_from(a, r0, row);
        float acc[R];
#pragma unroll
        for (int i = 0; i < R; ++i) acc[i] = 0.0f;
        // No lambdas: a captured array would live in local memory.
        for (std::size_t u0 = lane; u0 < a.units; u0 += 32 * U) {
            typename A::raw raw[U][R];
            load_step<A, U, R>(a, row, u0, raw);
            compute_step<A, U, R>(a, sx, table, u0, raw, acc);
        }
#pragma unroll
        for (int i = 0; i < R; ++i) {
            float v = acc[i] + row_extra(a, row[i], lane, 32u, x);
#pragma unroll
            for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == unsigned(i) && r0 + std::size_t(i) < a.rows) store_y(y + r0 + std::size_t(i), v * unscale);
        }
    }
}

// Batch 1, staged, each row's units shared by a team of S warps: a block of `warps` warps (Warps,
// or fewer: staged_threads) is warps / S teams and takes a tile of warps / S * R rows, R per
// team; thread s * 32 + lane of a team takes units s * 32 + lane, + 32 S, ... So a row has S times the loads in flight of
// gemv_staged_kernel (whose warps read whole rows) with the same registers per thread, and the
// work is dealt out in finer pieces. One wave of resident blocks strides over the tiles (the
// loop is uniform per block); the S partial sums of a row meet in shared memory, double
// buffered so that one barrier per tile suffices (a tile's readers finish before any thread
// passes the next tile's barrier, and only then is the buffer written again).
template <class A, class XT, class YT, int Warps, int S, int R, int U>
__global__ void __launch_bounds__(staged_threads(Warps))
    gemv_team_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y, bool overlap) {
    static_assert(Warps % S == 0 && 8 % S == 0, "gemv_team_kernel: the team size S must divide Warps and 8 (blocks of 8 warps on sm_53, staged_threads)");
    const unsigned tile = blockDim.x / 32u / unsigned(S) * unsigned(R);
    constexpr int step = 32 * S;
    extern __shared__ uint4 staged[];
    const staged_x<A> sx(staged, a);
    __shared__ __half2 table[table_storage<A>::size];
    __shared__ float partial[2][Warps][R];
    if (A::table_size > 0)
        for (int i = int(threadIdx.x); i < A::table_size; i += int(blockDim.x)) table[i] = A::table_entry(i);
    const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
    const unsigned team = warp / S, t = (warp % S) * 32u + lane;
    allow_next_launch();
    if (overlap) {  // the team's first row, a unit per thread
        const std::size_t r0 = std::size_t(blockIdx.x) * tile + std::size_t(team) * R;
        if (r0 < a.rows && t < a.units) prefetch_unit(a, r0, t, 0);
    }
    wait_for_inputs();
    stage_x(a, x, sx);
    __syncthreads();

    constexpr float unscale = float(1 << A::x_shift);
    int buf = 0;
    for (std::size_t base = std::size_t(blockIdx.x) * tile; base < a.rows; base += std::size_t(gridDim.x) * tile, buf ^= 1) {
        const std::size_t r0 = base + std::size_t(team) * R;
        std::size_t row[R];
        rows_from(a, r0, row);
        float acc[R];
#pragma unroll
        for (int i = 0; i < R; ++i) acc[i] = 0.0f;
        for (std::size_t u0 = t; u0 < a.units; u0 += std::size_t(step) * U) {
            typename A::raw raw[U][R];
            load_step<A, U, R, step>(a, row, u0, raw);
            compute_step<A, U, R, step>(a, sx, table, u0, raw, acc);
        }
#pragma unroll
        for (int i = 0; i < R; ++i) {
            float v = acc[i] + row_extra(a, row[i], t, unsigned(step), x);
#pragma unroll
            for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) partial[buf][warp][i] = v;
        }
        __syncthreads();
        if (threadIdx.x < tile && base + threadIdx.x < a.rows) {
            const unsigned tm = threadIdx.x / unsigned(R), i = threadIdx.x % unsigned(R);
            float v = 0.0f;
#pragma unroll
            for (int s = 0; s < S; ++s) v += partial[buf][tm * S + unsigned(s)][i];
            store_y(y + base + threadIdx.x, v * unscale);
        }
    }
}

// Batch 1 with the row split across the block: W warps share R rows, thread t takes units
// t, t + 32 W, ... (U of them loaded together), so a row's loads are spread over many threads
// and each thread has U * R independent loads in flight with few registers; x is staged as
// above or read from global memory (L1) per unit; partial sums meet in shared memory.
template <class A, class XT, class YT, int Warps, int R, int U, bool Staged>
__global__ void __launch_bounds__(Warps * 32)
    gemv_split_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y) {
    static_assert(!split_x_of<A>::value, "gemv_split_kernel: split activations (exact half sums) take the staged kernels");
    extern __shared__ uint4 staged[];
    const staged_x<A> sx(staged, a);
    __shared__ __half2 table[table_storage<A>::size];
    __shared__ float partial[Warps][R];
    if (A::table_size > 0)
        for (int i = int(threadIdx.x); i < A::table_size; i += Warps * 32) table[i] = A::table_entry(i);

    const std::size_t r0 = std::size_t(blockIdx.x) * R;
    std::size_t row[R];
    rows_from(a, r0, row);
    constexpr unsigned step = Warps * 32;

    if (Staged) {
        stage_x(a, x, sx);
        __syncthreads();
    }

    float acc[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.0f;
    for (std::size_t u0 = threadIdx.x; u0 < a.units; u0 += step * U) {
        typename A::raw raw[U][R];
#pragma unroll
        for (int j = 0; j < U; ++j) {
            const std::size_t u = u0 + step * std::size_t(j);
            if (u < a.units) {
#pragma unroll
                for (int i = 0; i < R; ++i) a.load(row[i], u, raw[j][i]);
            }
        }
#pragma unroll
        for (int j = 0; j < U; ++j) {
            const std::size_t u = u0 + step * std::size_t(j);
            if (u < a.units) {
                __half2 xv[16];
                float xsum;
                if (Staged) {
                    load_staged_x(a, sx.m, u, xv);
                    xsum = A::needs_xsum ? sx.sums[u] : 0.0f;
                } else {
                    xsum = load_x(a, x, u, xv);
                }
#pragma unroll
                for (int i = 0; i < R; ++i) {
                    __half2 v[16];
                    float s[A::groups], m;
                    if (Staged)
                        decode_staged(a, raw[j][i], table, v, s, m);
                    else
                        a.decode(raw[j][i], table, v, s, m);
                    acc[i] += combine<A>(v, xv, s, m, xsum);
                }
            }
        }
    }
    const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
#pragma unroll
    for (int i = 0; i < R; ++i) {
        float v = acc[i] + row_extra(a, row[i], threadIdx.x, step, x);
#pragma unroll
        for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) partial[warp][i] = v;
    }
    __syncthreads();
    if (threadIdx.x < unsigned(R) && r0 + threadIdx.x < a.rows) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < Warps; ++w) v += partial[w][threadIdx.x];
        store_y(y + r0 + threadIdx.x, v * float(1 << A::x_shift));
    }
}

// The compute capability of the current device as 10 * major + minor, asked once per device.
inline int device_sm() {
    static int cached[16] = {};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 16) return 0;
    if (cached[dev] == 0) {
        int major = 0, minor = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
            return 0;
        cached[dev] = 10 * major + minor;
    }
    return cached[dev];
}

// Whether GEMVs are launched with programmatic dependent launch: on sm_90 and newer unless
// EDGEQ_CUDA_PDL=0.
inline bool pdl_enabled() {
#if CUDART_VERSION >= 11080
    static const bool off = [] {
        const char* env = std::getenv("EDGEQ_CUDA_PDL");
        return env && std::string(env) == "0";
    }();
    return !off && device_sm() >= 90;
#else
    return false;
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when `overlap` and
// pdl_enabled(). Measured per launch path (docs/cuda.md): not every path gains.
template <class... P, class... Args>
void launch_kernel(void (*kernel)(P...), unsigned grid, unsigned block, std::size_t smem, cudaStream_t stream, bool overlap,
                   const Args&... args) {
#if CUDART_VERSION >= 11080
    if (overlap && pdl_enabled()) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(grid);
        cfg.blockDim = dim3(block);
        cfg.dynamicSmemBytes = smem;
        cfg.stream = stream;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, args...);
        if (e != cudaSuccess) throw error(std::string("cuda::gemv: kernel launch failed: ") + cudaGetErrorString(e));
        return;
    }
#endif
    kernel<<<grid, block, smem, stream>>>(args...);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::gemv: kernel launch failed: ") + cudaGetErrorString(e));
}

template <int Warps, int R, int U, bool Staged = false, class A, class XT, class YT>
void launch_split_rows(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    const std::size_t blocks = (a.rows + R - 1) / R;
    launch_kernel(gemv_split_kernel<A, XT, YT, Warps, R, U, Staged>, unsigned(blocks), Warps * 32,
                  Staged ? staged_bytes(a) : 0, stream, false, a, x, y);
}

// The last answers of a query about a kernel on the current device, kept per kernel, device and
// key (the queries cost about what a launch does): ask() runs only on a miss.
template <class K>
struct kernel_answers {
    struct entry {
        K k;
        int dev;
        std::size_t key;
        int n;
    };
    static constexpr int slots = 16;
    entry cache[slots] = {};
    int next = 0;

    template <class Ask>
    int get(K kernel, std::size_t key, Ask ask) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
        for (const entry& e : cache)
            if (e.n > 0 && e.k == kernel && e.dev == dev && e.key == key) return e.n;
        const int n = ask(dev);
        cache[next] = entry{kernel, dev, key, n};
        next = (next + 1) % slots;
        return n;
    }
};

// Blocks of `kernel` (threads each, smem bytes of dynamic shared memory) resident at once on
// the current device; smem changes with the row length, threads with block_warps_cap().
template <class K>
std::size_t resident_of(K kernel, int threads, std::size_t smem) {
    static kernel_answers<K> answers;
    return std::size_t(answers.get(kernel, smem * 2048 + std::size_t(threads), [&](int dev) {
        int sms = 0, per_sm = 0;
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess)
            throw error("cuda::gemv: the occupancy query failed");
        return sms * (per_sm > 0 ? per_sm : 1);
    }));
}

// A cap on the warps per block of the staged and team launches, 0 for none: from
// EDGEQ_CUDA_BLOCK_WARPS, or set here (the tests do). 8 runs the Jetson Nano's block widths on any
// GPU. Rounded down to a power of two, at least 4, so that teams of 2 and 4 warps still tile a block.
inline int& block_warps_cap() {
    static int cap = [] {
        const char* env = std::getenv("EDGEQ_CUDA_BLOCK_WARPS");
        return env ? std::atoi(env) : 0;
    }();
    return cap;
}
inline int capped_warps(int warps) {
    int cap = block_warps_cap();
    if (cap <= 0) return warps;
    int p = 4;
    while (2 * p <= cap) p *= 2;
    return p < warps ? p : warps;
}

// Warps per block for `kernel` compiled for up to Warps (staged_threads): what the device's own
// code takes, within block_warps_cap().
template <class K>
int launch_warps(K kernel, int warps) {
    static kernel_answers<K> answers;
    return capped_warps(answers.get(kernel, std::size_t(warps), [&](int) {
        cudaFuncAttributes attr;
        if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) throw error("cuda::gemv: the kernel attribute query failed");
        return attr.maxThreadsPerBlock / 32 < warps ? attr.maxThreadsPerBlock / 32 : warps;
    }));
}

// Warps of gemv_staged_kernel<...> with `smem` bytes of staged x that fit on the device at once.
template <class A, class XT, class YT, int Warps, int R, int U, int MinBlocks>
std::size_t resident_warps(std::size_t smem) {
    const auto kernel = &gemv_staged_kernel<A, XT, YT, Warps, R, U, MinBlocks>;
    const int warps = launch_warps(kernel, Warps);
    return std::size_t(warps) * resident_of(kernel, warps * 32, smem);
}

// Persist: one wave of resident blocks striding over the row groups; otherwise a block per
// warps * R rows (the first version; --tune compares them). Blocks of Warps warps, or fewer where
// the kernel was compiled for fewer (staged_threads).
template <int Warps, int R, int U, bool Persist = true, int MinBlocks = 1, class A, class XT, class YT>
void launch_staged_rows(const A& a, const XT* x, YT* y, cudaStream_t stream, bool overlap = true) {
    const auto kernel = &gemv_staged_kernel<A, XT, YT, Warps, R, U, MinBlocks>;
    const std::size_t warps = std::size_t(launch_warps(kernel, Warps));
    std::size_t blocks = (a.rows + warps * R - 1) / (warps * R);
    const std::size_t smem = staged_bytes(a);
    if (Persist) {
        const std::size_t resident = resident_of(kernel, int(warps) * 32, smem);
        if (blocks > resident) blocks = resident;
    }
    launch_kernel(kernel, unsigned(blocks), unsigned(warps) * 32, smem, stream, overlap, a, x, y, overlap);
}

// Batch 1, staged: the fewest rows per warp (R = 1..4) whose row groups all fit in one wave of
// resident warps, so that no warp takes a second group while others idle (11008 rows: R = 3 on
// an H100, every warp 3 rows, instead of R = 2 with a third of the warps taking two groups);
// beyond 4 rows per warp, R = 4 and the warps stride.
template <int Warps, int U, class A, class XT, class YT>
void launch_staged_auto(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    const std::size_t smem = staged_bytes(a);
    const auto fits = [&](std::size_t r, std::size_t resident) { return (a.rows + r - 1) / r <= resident; };
    if (fits(1, resident_warps<A, XT, YT, Warps, 1, U, 1>(smem)))
        launch_staged_rows<Warps, 1, U>(a, x, y, stream);
    else if (fits(2, resident_warps<A, XT, YT, Warps, 2, U, 1>(smem)))
        launch_staged_rows<Warps, 2, U>(a, x, y, stream);
    else if (fits(3, resident_warps<A, XT, YT, Warps, 3, U, 1>(smem)))
        launch_staged_rows<Warps, 3, U>(a, x, y, stream);
    else
        launch_staged_rows<Warps, 4, U>(a, x, y, stream);
}


template <int Warps, int S, int R, int U, class A, class XT, class YT>
std::size_t team_resident(const A& a) {  // teams of S warps resident at once
    const auto kernel = &gemv_team_kernel<A, XT, YT, Warps, S, R, U>;
    const int warps = launch_warps(kernel, Warps);
    return std::size_t(warps / S) * resident_of(kernel, warps * 32, staged_bytes(a));
}

// gemv_team_kernel with R rows per team, one wave of resident blocks striding over the tiles.
template <int Warps, int S, int R, int U, class A, class XT, class YT>
void launch_team_rows(const A& a, const XT* x, YT* y, cudaStream_t stream, bool overlap = true) {
    const auto kernel = &gemv_team_kernel<A, XT, YT, Warps, S, R, U>;
    const int warps = launch_warps(kernel, Warps);
    const std::size_t tile = std::size_t(warps / S * R);
    std::size_t blocks = (a.rows + tile - 1) / tile;
    const std::size_t resident = resident_of(kernel, warps * 32, staged_bytes(a));
    if (blocks > resident) blocks = resident;
    launch_kernel(kernel, unsigned(blocks), unsigned(warps) * 32, staged_bytes(a), stream, overlap, a, x, y, overlap);
}

// The fewest rows per team (1..4) whose tiles all fit in one wave of resident blocks (as
// launch_staged_auto: no block takes a second tile while others idle); beyond, R = 4 and stride.
template <int Warps, int S, int U, class A, class XT, class YT>
void launch_team_auto(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    const auto fits = [&](std::size_t r, std::size_t teams) { return (a.rows + r - 1) / r <= teams; };
    if (fits(1, team_resident<Warps, S, 1, U, A, XT, YT>(a)))
        launch_team_rows<Warps, S, 1, U>(a, x, y, stream);
    else if (fits(2, team_resident<Warps, S, 2, U, A, XT, YT>(a)))
        launch_team_rows<Warps, S, 2, U>(a, x, y, stream);
    else if (fits(3, team_resident<Warps, S, 3, U, A, XT, YT>(a)))
        launch_team_rows<Warps, S, 3, U>(a, x, y, stream);
    else
        launch_team_rows<Warps, S, 4, U>(a, x, y, stream);
}

// Launch shapes. The backend tag's SM picks one (gemv_config<SM>); 0 is the untagged default.
template <int SM>
struct gemv_config {
    static constexpr int warps = 4;      // batched kernel: threads of a block stride over a row's units
    static constexpr int rows = 4;       // batched kernel: rows per block
    // Batch 1 (measured on an H100 with bench_cuda --tune, docs/cuda.md; sm_53 untuned, its blocks
    // at most 8 warps wide: staged_threads): x staged
    // in shared memory per block; a row per warp when all rows fit in one wave (4096 rows on an
    // H100), in blocks of 16 warps (32 for adaptors with wide_rows: 8-bit codes); beyond,
    // formats with A::auto_rows (edgeq's grouped formats) take 2..4 rows per warp as
    // launch_staged_auto picks, in blocks of 32 warps (with PDL, 11008 x 4096: int3 1828 GB/s
    // against 1665 with 8 warps, int4 2218 against 2152, int8-g32 2548 against 2504), the others
    // 2 rows per warp in blocks of 16 warps. Rows too long to stage x in 48 KB of shared memory
    // take the split kernel with 8 rows per block.
    static constexpr int staged_warps = 16, wide_warps = 32, staged_rows = 2, staged_unroll = 1;
    static constexpr int auto_warps = 32;
    // Split activations (exact half sums) in blocks of 16 warps: at 32 (64 registers per thread)
    // their R = 3 and 4 spill 28 and 92 bytes on sm_90. (sm_53 takes blocks of 8: staged_threads.)
    static constexpr int exact_auto_warps = 16;
    static constexpr int split_warps = 4, split_rows = 8, split_unroll = 1;
    // Teams of warps per row (gemv_team_kernel, launch_team_auto, blocks of 16 warps; measured
    // per shape, docs/cuda.md): 2 warps per row for every format when the rows fill at most a
    // quarter of one wave of one-warp rows (2048 x 5632: a row per warp leaves most warp slots
    // empty); otherwise as the adaptor's team_mode allows: >= 1, 4 warps per row when the rows
    // fit one wave and have at least team_long_units units (4096 x 11008); 2, 2 warps per row
    // for the other rows that fit one wave too; 3 (int3 in half mantissas, 2- and 4-bit codes),
    // 4 warps per row already from team_mid_units units (2048 x 5632, int3: 5.5 us against 6.4
    // with 2), and 2 for rows of at most team_short_units units that fit two waves but not one
    // (5632 x 2048: 4.5 us against 4.9 a warp per row; 32000 x 2048 stays a warp per row, 13.2
    // us against 14.6). Adaptors with long_teams_of_two (Q4_K paired) take 2 warps per row in
    // blocks of 32 instead of 4 in blocks of 16 on rows of team_long_units (launch_long_teams).
    static constexpr std::size_t team_long_units = 256, team_mid_units = 128, team_short_units = 64;
    // Rows of more than team_mid_units and at most team_wide_units units that fit one wave take
    // teams of 8 warps (launch_wide_teams): a lane reads one unit per row instead of two in turn.
    static constexpr std::size_t team_wide_units = 256;
    // Batch-1 decoding of 4-bit codes that can be read in nibble pair order (int4, Q4_0, Q4_K
    // paired): per 8 weights 1 shift, 4 lop3, 2 hsub2 and 2 hfma2 against 4 shifts and masks, 4
    // byte permutes and 4 hsub2 in column order. Fewer instructions matter where the SM cannot
    // issue enough of them to keep up with DRAM (a Jetson Nano: 28 bytes per clock for one SM,
    // an H100 13); on an H100 column order measured faster all the same (11008 x 4096: int4-g128
    // 75% of the copy bandwidth against 71%, Q4_K paired 72% against 68%). So: column order from
    // sm_90 up (measured), nibble pairs below (not measured: no such GPU here). SM 0 asks the
    // device.
    static bool nibble_pairs(int device_sm) { return (SM ? SM : device_sm) < 90; }
};

// An adaptor read in column order at batch 1 (its decode() instead of decode_paired()).
template <class A>
struct in_columns : A {
    static constexpr x_order staged_order = x_order::columns;
    explicit in_columns(const A& a) : A(a) {}
};

template <int Warps, int R, int NT, class A, class XT, class YT>
void launch_rows(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    const std::size_t blocks = (a.rows + R - 1) / R;
    gemv_kernel<A, XT, YT, Warps, R, NT><<<unsigned(blocks), Warps * 32, 0, stream>>>(a, x, y);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::gemv: kernel launch failed: ") + cudaGetErrorString(e));
}

template <class A, class XT>
void check_activations(const A& a, const XT* x, const void* y) {
    if (!x || !y) throw error("cuda::gemv: a null activation or output pointer");
    if (reinterpret_cast<std::uintptr_t>(x) % 16 || (a.cols * sizeof(XT)) % 16)
        throw error("cuda::gemv: x must be 16-byte aligned (cudaMalloc gives 256) and rows of x a multiple of 16 bytes");
}

// --- batch 1 with fp32 products and sums (edgeq::cuda::fp32_sums) ---------------------------
// The fast kernels above round x to half and sum runs of half products: about 1e-3 relative
// error of a small model's logits (docs/cuda.md), the price of the Nano's half2 rate. This kernel
// is the accurate one: the same adaptors decode each unit to half2 (exact small integers for
// integer codes; NF4's code book as hi + lo halves, decode_f32; SpQR's fractional zero points
// rounded to half), each pair goes to fp32 and meets fp32 activations in fp32 FMAs, scales in
// fp32. So it computes what the CPU engine computes up to the order of the sums. Every format
// and row length: x is read through the read-only cache (no staging, no length limit); a warp
// takes 4 rows (each x serves 4 weights), one wave of resident blocks striding over the rows.
// edgeq::cuda::fp32_sums runs it below sm_80, for SpQR and for fp16 activations; on sm_80 and
// newer the others take the tensor-core kernel of gemv_mma.cuh (the same sums, faster).


__device__ __forceinline__ void load_f32x8(const float* p, float (&v)[8]) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void load_f32x8(const __half* p, float (&v)[8]) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(as_half2(w[i]));
        v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
}

// A unit's 32 activations in fp32 (runs of 8 where the adaptor says) and, for k-quants, their sum.
template <class A, class XT>
__device__ __forceinline__ float unit_x_fp32(const A& a, std::size_t u, const XT* x, float (&xv)[32]) {
    float xsum = 0.0f;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
        float v[8];
        load_f32x8(x + a.x_run(u, g), v);
#pragma unroll
        for (int i = 0; i < 8; ++i) xv[8 * g + i] = v[i];
        if (A::needs_xsum) xsum += ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
    }
    return xsum;
}

// One unit of row r: sum over its 32 weights of value * x in fp32 (scales and k-quant minimum
// applied), in the units of x.
template <class A>
__device__ __forceinline__ float unit_fp32(const A& a, const __half2* table, std::size_t r, std::size_t u,
                                           const float (&xv)[32], float xsum) {
    typename A::raw raw;
    a.load(r, u, raw);
    float2 v[16];
    float s[A::groups], m;
    decode_f32(a, raw, table, v, s, m);
    float t[4];
#pragma unroll
    for (int g = 0; g < 4; ++g) {
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = v[4 * g + i];
            acc = fmaf(f.x, xv[8 * g + 2 * i], acc);
            acc = fmaf(f.y, xv[8 * g + 2 * i + 1], acc);
        }
        t[g] = acc;
    }
    float res;
    if (A::groups == 4)
        res = fmaf(s[0], t[0], fmaf(s[1 % A::groups], t[1], fmaf(s[2 % A::groups], t[2], s[3 % A::groups] * t[3])));
    else if (A::groups == 2)
        res = fmaf(s[0], t[0] + t[1], s[1 % A::groups] * (t[2] + t[3]));
    else
        res = s[0] * ((t[0] + t[1]) + (t[2] + t[3]));
    if (A::needs_xsum) res = fmaf(-m, xsum, res);
    return res;
}

// Rows rows[t] of the matrix for t < n (device memory), each in fp32 at out + t * cols, every
// weight as unit_fp32 multiplies it (scale * value - minimum): a token's embedding read from a
// quantized table, what the CPU decodes to fp32 rounding. A thread per unit, a row per blockIdx.y.
template <class A>
__global__ void decode_rows_kernel(const A a, const int* __restrict__ rows, float* __restrict__ out) {
    __shared__ __half2 table[exact_table_storage<A>::size];
    if (A::table_size > 0) {
        fill_exact_table<A>(table);
        __syncthreads();
    }
    const std::size_t u = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (u >= a.units) return;
    float* o = out + std::size_t(blockIdx.y) * a.cols;
    typename A::raw raw;
    a.load(std::size_t(rows[blockIdx.y]), u, raw);
    float2 v[16];
    float s[A::groups], m;
    decode_f32(a, raw, table, v, s, m);
    if (!A::needs_xsum) m = 0.0f;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
        const float sg = s[g * A::groups / 4];
        const std::size_t c = a.x_run(u, g);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = v[4 * g + i];
            o[c + 2 * i] = sg * f.x - m;
            o[c + 2 * i + 1] = sg * f.y - m;
        }
    }
}

template <class A>
void launch_decode_rows(const A& a, const int* rows, std::size_t n, float* out, cudaStream_t stream) {
    static_assert(!A::row_extra, "decode_rows: this format adds a per-row term (SpQR's outliers) that the unit decoder does not give");
    if (n == 0 || a.units == 0) return;
    if (n > 65535) throw error("cuda::decode_rows: at most 65535 rows per call");
    constexpr unsigned threads = 128;
    decode_rows_kernel<A><<<dim3(unsigned((a.units + threads - 1) / threads), unsigned(n)), threads, 0, stream>>>(a, rows, out);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::decode_rows: kernel launch failed: ") + cudaGetErrorString(e));
}

// A warp takes R rows, so each activation read from the cache serves R weights.
template <class A, class XT, class YT, int Warps, int R>
__global__ void __launch_bounds__(Warps * 32) gemv_fp32_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y) {
    __shared__ __half2 table[exact_table_storage<A>::size];
    if (A::table_size > 0) {
        fill_exact_table<A>(table);
        __syncthreads();
    }
    const unsigned lane = threadIdx.x % 32u;
    for (std::size_t r0 = (std::size_t(blockIdx.x) * Warps + threadIdx.x / 32u) * R; r0 < a.rows;
         r0 += std::size_t(gridDim.x) * Warps * R) {
        std::size_t row[R];
        rows_from(a, r0, row);
        float acc[R];
#pragma unroll
        for (int i = 0; i < R; ++i) acc[i] = 0.0f;
        for (std::size_t u = lane; u < a.units; u += 32) {
            float xv[32];
            const float xsum = unit_x_fp32(a, u, x, xv);
#pragma unroll
            for (int i = 0; i < R; ++i) acc[i] += unit_fp32(a, table, row[i], u, xv, xsum);
        }
#pragma unroll
        for (int i = 0; i < R; ++i) {
            // row_extra() is in the units of the pre-scaled x: a power of two brings it back exactly.
            float v = acc[i] + row_extra(a, row[i], lane, 32u, x) * float(1 << A::x_shift);
#pragma unroll
            for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == unsigned(i) && r0 + std::size_t(i) < a.rows) store_y(y + r0 + std::size_t(i), v);
        }
    }
}

template <class A, class XT, class YT>
void launch_gemv1_fp32(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (a.rows == 0) return;
    check_activations(a, x, y);
    constexpr int W = 8, R = 4;
    std::size_t blocks = (a.rows + W * R - 1) / (W * R);
    const std::size_t resident = resident_of(gemv_fp32_kernel<A, XT, YT, W, R>, W * 32, 0);
    if (blocks > resident) blocks = resident;
    gemv_fp32_kernel<A, XT, YT, W, R><<<unsigned(blocks), W * 32, 0, stream>>>(a, x, y);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::gemv: kernel launch failed: ") + cudaGetErrorString(e));
}

// Batch 1 without staging x: Q6_K (units gather four runs of 8 columns) streams fastest from
// the block kernel; rows too long to stage x take the split kernel.
template <class Config, class A, class XT, class YT>
void launch_unstaged(const A& a, const XT* x, YT* y, cudaStream_t stream, std::false_type /* split x */) {
    if (!A::contiguous)
        launch_rows<Config::warps, Config::rows, 1>(a, x, y, stream);
    else
        launch_split_rows<Config::split_warps, Config::split_rows, Config::split_unroll>(a, x, y, stream);
}
template <class Config, class A, class XT, class YT>
void launch_unstaged(const A&, const XT*, YT*, cudaStream_t, std::true_type) {
    throw error("cuda::gemv: exact half sums need x staged in shared memory (launch_gemv1_exact checks)");
}

// Rows that fit one wave and are long enough for teams of warps: 4 warps per row in blocks of 16,
// or, for adaptors with A::long_teams_of_two and rows of at least team_long_units units, 2 warps
// per row in blocks of 32 (Q4_K paired at 4096 x 11008 on an H100: 11.8 us against 12.1; at
// 4096 x 4096, 128 units, 5.2 against 5.0). Not with split activations (exact half sums), whose
// blocks stay at 16 warps (exact_auto_warps). Dispatched on the type, so that only the adaptors
// that ask for it instantiate the wider team kernel.
template <class A, class = void>
struct long_teams_of_two : std::false_type {};
template <class A>
struct long_teams_of_two<A, typename std::enable_if<A::long_teams_of_two && !split_x_of<A>::value>::type> : std::true_type {};
template <class Config, int U, class A, class XT, class YT>
void launch_long_teams(const A& a, const XT* x, YT* y, cudaStream_t stream, std::true_type) {
    if (a.units >= Config::team_long_units)
        launch_team_auto<32, 2, U>(a, x, y, stream);
    else
        launch_team_auto<16, 4, U>(a, x, y, stream);
}
template <class Config, int U, class A, class XT, class YT>
void launch_long_teams(const A& a, const XT* x, YT* y, cudaStream_t stream, std::false_type) {
    launch_team_auto<16, 4, U>(a, x, y, stream);
}

// Rows of team_mid_units < units <= team_wide_units (2048 x 5632: 176) that fit one wave: a team
// of 4 warps (128 lanes) needs two passes of a unit per lane, each a DRAM round trip, at sizes
// where latency rather than bandwidth sets the time; a team of 8 needs one, with up to 4 rows
// per team (a lane's loads of those rows all in flight at once). Blocks of 32 warps
// (4 teams) where the rows fit one wave of those at a row per team (x is then staged by half
// as many blocks), else blocks of 16 with the fewest rows per team that fit; false where none do.
// H100 (docs/cuda.md, "Teams of 8 warps"), us before -> after: 2048 x 5632 (16 warps, 4 rows a
// team) int4-g128 4.8 -> 4.2, NF4 6.0 -> 5.5, Q4_K paired 5.5 -> 4.8; 1024 x 8192 (32 warps, a
// row a team) int4-g128 5.5 -> 3.6, Q4_K paired 8.0 -> 4.0.
template <class Config, int U, class A, class XT, class YT>
bool launch_wide_teams(const A& a, const XT* x, YT* y, cudaStream_t stream, std::false_type /* split */) {
    if (a.units <= Config::team_mid_units || a.units > Config::team_wide_units) return false;
    if (a.rows <= team_resident<32, 8, 1, U, A, XT, YT>(a)) {
        launch_team_rows<32, 8, 1, U>(a, x, y, stream);
        return true;
    }
    if ((a.rows + 3) / 4 > team_resident<16, 8, 4, U, A, XT, YT>(a)) return false;
    launch_team_auto<16, 8, U>(a, x, y, stream);
    return true;
}
template <class Config, int U, class A, class XT, class YT>
bool launch_wide_teams(const A&, const XT*, YT*, cudaStream_t, std::true_type) {
    return false;  // exact half sums: not measured
}

// One token: only the single-token kernel is instantiated.
template <class Config, class A, class XT, class YT>
void launch_gemv1_shapes(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (A::contiguous && staged_bytes(a) <= staged_limit) {
        constexpr int W = Config::staged_warps, U = Config::staged_unroll;
        const std::size_t wave = resident_warps<A, XT, YT, W, 1, U, 1>(staged_bytes(a));
        const bool one_wave = a.rows <= wave;
        const std::size_t long_units = A::team_mode >= 3 ? Config::team_mid_units : Config::team_long_units;
        if (A::team_mode >= 3 && one_wave && launch_wide_teams<Config, U>(a, x, y, stream, split_x_of<A>{}))
            return;
        if (A::team_mode >= 1 && one_wave && a.units >= long_units)
            launch_long_teams<Config, U>(a, x, y, stream, long_teams_of_two<A>{});
        else if (one_wave && (4 * a.rows <= wave || A::team_mode == 2))
            launch_team_auto<16, 2, U>(a, x, y, stream);
        else if (A::team_mode >= 3 && !one_wave && a.rows <= 2 * wave && a.units <= Config::team_short_units)
            launch_team_auto<16, 2, U>(a, x, y, stream);
        else if (one_wave)  // a row per warp, one wave
            launch_staged_rows<A::wide_rows ? Config::wide_warps : W, 1, U>(a, x, y, stream);
        else if (A::auto_rows)
            launch_staged_auto<split_x_of<A>::value ? Config::exact_auto_warps : Config::auto_warps, U>(a, x, y, stream);
        else
            launch_staged_rows<W, Config::staged_rows, U>(a, x, y, stream, false);  // Q4_0, Q8_0 measured slower with PDL
    } else {
        launch_unstaged<Config>(a, x, y, stream, split_x_of<A>{});
    }
}
template <class Config, class A, class XT, class YT>
void launch_gemv1_ordered(const A& a, const XT* x, YT* y, cudaStream_t stream, std::true_type /* nibble pairs */) {
    if (Config::nibble_pairs(device_sm()))
        launch_gemv1_shapes<Config>(a, x, y, stream);
    else
        launch_gemv1_shapes<Config>(in_columns<A>(a), x, y, stream);
}
template <class Config, class A, class XT, class YT>
void launch_gemv1_ordered(const A& a, const XT* x, YT* y, cudaStream_t stream, std::false_type) {
    launch_gemv1_shapes<Config>(a, x, y, stream);
}
template <class Config, class A, class XT, class YT>
void launch_gemv1(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (a.rows == 0) return;
    check_activations(a, x, y);
    launch_gemv1_ordered<Config>(a, x, y, stream, std::integral_constant<bool, A::staged_order == x_order::nibble_pairs>{});
}

// x: n x cols activations, y: n x rows outputs. Batches are cut into launches of 16, 8, 4, 2, 1
// tokens; each launch streams the weights once.
template <class Config, class A, class XT, class YT>
void launch_gemv(const A& a, const XT* x, YT* y, std::size_t n, cudaStream_t stream) {
    if (a.rows == 0 || n == 0) return;
    check_activations(a, x, y);
    constexpr int W = Config::warps, R = Config::rows;
    while (n > 0) {
        const std::size_t step = n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
        switch (step) {
            case 16: launch_rows<2, 4, 16>(a, x, y, stream); break;
            case 8: launch_rows<2, 4, 8>(a, x, y, stream); break;
            case 4: launch_rows<W, R, 4>(a, x, y, stream); break;
            case 2: launch_rows<W, R, 2>(a, x, y, stream); break;
            default: launch_rows<W, R, 1>(a, x, y, stream); break;
        }
        x += step * a.cols;
        y += step * a.rows;
        n -= step;
    }
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {
// The accuracy policy of a batch-1 GEMV: edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y)
// takes gemv_fp32_kernel (fp32 products and sums) instead of the half2 kernels.
struct fp32_sums_t {};
constexpr fp32_sums_t fp32_sums{};
// Half2 arithmetic with exact products and sums of the activations' integer parts
// (gemv_exact.cuh); fp32 sums where a format's values are not integers.
struct exact_half_sums_t {};
constexpr exact_half_sums_t exact_half_sums{};
}  // namespace cuda
}  // namespace edgeq
