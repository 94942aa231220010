// Batch-1 GEMV in fp32 sums on tensor cores (sm_80 and newer): what edgeq::cuda::fp32_sums
// runs there. C++14; compiles for sm_53 (the kernel body is empty below sm_80 and never
// launched there: launch_gemv1_accurate takes gemv_fp32_kernel instead).
//
// Why: the half2 kernels (gemv_core.cuh) round x to half and sum runs of half products, about
// 1e-3 relative error on a model's logits; gemv_fp32_kernel is exact but turns every weight into
// a float and an FFMA, twice the instructions of the half2 path, so it streams slower. mma.sync
// multiplies half operands exactly into fp32 sums: the decoded weights (exact small integers,
// or NF4's code-book values as hi + lo halves, 8 more mmas per unit) times x split into
// x_hi + x_lo, two halves that hold x to 22 bits (|x| up to 65504, the half range, as any fp16
// activation; the half2 kernels' pre-scaled runs allow less). So the sums are what the CPU
// computes up to the order of the additions, and the products cost one instruction per 8
// weights of a lane.
//
// The shape (mma.m16n8k16, A row-major 16 x 16, B column-major 16 x 8, C 16 x 8 in fp32).
// A warp owns 16 rows; lane (g = lane / 4, t = lane % 4) loads unit u0 + t of rows g and g + 8,
// so the A fragment it holds for one mma (rows g, g + 8 at k slots 2t, 2t + 1, 2t + 8, 2t + 9)
// is 4 weights of each of its own two units, and the 16 k slots of an mma are the 4 units
// u0 .. u0 + 3, 4 slots each. B has 8 columns: column 2t' + h is x_h (h = 0 hi, 1 lo) of unit
// u0 + t', zero outside that unit's slots, so lane (g, t) supplies B column g only when t = g / 2. Then
// C[g][2t + h] is row g's sum over unit u0 + t alone, times x_h, and the C fragment of lane
// (g, t) is C[g][2t], C[g][2t + 1], C[g + 8][2t], C[g + 8][2t + 1]: the sums of the lane's own
// two units, to which it applies its own scales. Units never mix within a sum, so this holds for
// any group size. Eight mmas take a unit of each of 16 rows, two per run of 8 weights into a
// sum of their own (four independent chains); each stretch of one scale (A::groups) takes its
// runs' sums. What bounds it is instructions, as for the half2 kernels: the decode is theirs,
// and the whole comes to 1.3-1.4x their time on an H100's large shapes (docs/cuda.md).
//
// Blocks of Warps warps own a tile of 16 rows and split its units (4 at a time) among the warps;
// one wave of resident blocks strides over the tiles. x is staged once per block in shared
// memory as (hi, lo) chunks of 8 columns in the adaptor's staged order.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "gemv_core.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

// d += A B for one m16n8k16 tile: a0..a3, b0..b1 are f16x2 registers as PTX lays them out.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], std::uint32_t a0, std::uint32_t a1, std::uint32_t a2, std::uint32_t a3,
                                             std::uint32_t b0, std::uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// 4 activations of one token at column k (k % 4 == 0) as floats (also gemm.cuh's).
__device__ __forceinline__ float4 load_x4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load_x4(const __half* p) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const float2 a = __half22float2(as_half2(u.x)), b = __half22float2(as_half2(u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}

// x as hi and lo halves for the mma kernel: chunk i (8 columns, as x_stager orders them) at
// xs[2i] (hi) and xs[2i + 1] (lo); the two lanes that read a unit's chunk together (its hi and
// lo) hit adjacent 16 bytes, so no swizzle. For k-quants each unit's fp32 sum in xsums.
template <class A, class XT>
__device__ __forceinline__ void stage_x_split(const A& a, const XT* x, uint4* xs, float* xsums) {
    constexpr x_order order = A::staged_order;
    constexpr bool paired = order != x_order::columns;
    const std::size_t n = a.cols / 8, whole_warps = (n + 31) / 32 * 32;
    for (std::size_t i = threadIdx.x; i < whole_warps; i += blockDim.x) {
        float sum = 0.0f;
        if (i < n) {
            // Paired orders: chunk i = 4u + m holds columns 32u + 4m .. +3 and 32u + 16 + 4m .. +3.
            const std::size_t c = paired ? 32 * (i / 4) + 4 * (i % 4) : 8 * i;
            const float4 lo = load_x4(x + c), hi = load_x4(x + c + (paired ? 16 : 4));
            const float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
            std::uint32_t h[4], l[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float p = f[chunk_column(order, j, 0)], q = f[chunk_column(order, j, 1)];
                const __half2 hp = __floats2half2_rn(p, q);
                const float2 back = __half22float2(hp);
                h[j] = h2_bits(hp);
                l[j] = h2_bits(__floats2half2_rn(p - back.x, q - back.y));
            }
            xs[2 * i] = make_uint4(h[0], h[1], h[2], h[3]);
            xs[2 * i + 1] = make_uint4(l[0], l[1], l[2], l[3]);
            sum = ((lo.x + lo.y) + (lo.z + lo.w)) + ((hi.x + hi.y) + (hi.z + hi.w));
        }
        if (A::needs_xsum) {  // a unit's four chunks are four consecutive threads' (A::contiguous)
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            if (i < n && i % 4 == 0) xsums[i / 4] = sum;
        }
    }
}

template <class A>
std::size_t mma_staged_bytes(const A& a) {
    return a.cols * 4 + 16 + (A::needs_xsum ? a.units * 4 : 0);  // x_hi and x_lo, a zero chunk, the unit sums
}

// Whether a run starts or ends a stretch of one scale (A::groups scales per unit).
template <class A>
__host__ __device__ constexpr bool scale_starts(int g) {
    return g == 0 || run_scale<A>(g) != run_scale<A>(g - 1);
}
template <class A>
__host__ __device__ constexpr bool scale_ends(int g) {
    return g == 3 || run_scale<A>(g) != run_scale<A>(g + 1);
}

// One step of a lane: units u0 + 4j + t (j < U) of its rows g and g + 8, 16 rows x 4U units of
// the warp. Checked: the warp's last step, where units may run past the row (their weights and
// x count as zero); the others skip the tests. x_lane and h: the lane's B role (below);
// zero_chunk: the index in xs of 16 zero bytes.
template <class A, int U, bool Checked>
__device__ __forceinline__ void mma_step(const A& a, const uint4* xs, const float* xsums, const __half2* table, const std::size_t (&row)[2],
                                         std::size_t u0, unsigned t, bool x_lane, unsigned h, unsigned zero_chunk, float (&acc)[2]) {
    typename A::raw raw[U][2];
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const std::size_t u = u0 + 4 * std::size_t(j) + t;
        if (!Checked || u < a.units) a.load(row[0], u, raw[j][0]), a.load(row[1], u, raw[j][1]);
    }
#pragma unroll
    for (int j = 0; j < U; ++j) {
        const std::size_t u = u0 + 4 * std::size_t(j) + t;
        const bool valid = !Checked || u < a.units;
        // B: x_hi or x_lo of the unit for the 8 lanes with a B role, the zero chunk for the rest
        // (one shared address: a broadcast, and no branch).
        std::uint32_t xv[16];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const unsigned c = x_lane && valid ? 2u * unsigned(a.x_run(u, i) / 8) + h : zero_chunk;
            const uint4 q = xs[c];
            xv[4 * i] = q.x, xv[4 * i + 1] = q.y, xv[4 * i + 2] = q.z, xv[4 * i + 3] = q.w;
        }
        __half2 v0[16], v1[16];
        float s0[A::groups], s1[A::groups], m0 = 0.0f, m1 = 0.0f;
        if (valid) {
            decode_staged(a, raw[j][0], table, v0, s0, m0);
            decode_staged(a, raw[j][1], table, v1, s1, m1);
        } else {
#pragma unroll
            for (int i = 0; i < 16; ++i) v0[i] = v1[i] = __float2half2_rn(0.0f);
#pragma unroll
            for (int i = 0; i < A::groups; ++i) s0[i] = s1[i] = 0.0f;
        }
        // A sum per run of 8 weights (2 mmas): four independent chains instead of one of 8
        // dependent mmas, then each stretch of one scale multiplies its runs' sums.
        float d[4][4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            d[r][0] = d[r][1] = d[r][2] = d[r][3] = 0.0f;
#pragma unroll
            for (int k = 2 * r; k < 2 * r + 2; ++k)
                mma_m16n8k16(d[r], h2_bits(v0[2 * k]), h2_bits(v1[2 * k]), h2_bits(v0[2 * k + 1]), h2_bits(v1[2 * k + 1]), xv[2 * k],
                             xv[2 * k + 1]);
        }
        // Code books: the values' lo halves (exact_lo_of) through the same x, into the same sums.
        if (exact_lo_of<A>::value) {
            if (valid) {
                decode_staged_lo(a, raw[j][0], table + A::table_size, v0, exact_lo_of<A>{});
                decode_staged_lo(a, raw[j][1], table + A::table_size, v1, exact_lo_of<A>{});
            }
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int k = 2 * r; k < 2 * r + 2; ++k)
                    mma_m16n8k16(d[r], h2_bits(v0[2 * k]), h2_bits(v1[2 * k]), h2_bits(v0[2 * k + 1]), h2_bits(v1[2 * k + 1]),
                                 xv[2 * k], xv[2 * k + 1]);
        }
        float t0 = 0.0f, t1 = 0.0f;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            if (scale_starts<A>(r)) t0 = t1 = 0.0f;
            t0 += d[r][0] + d[r][1];
            t1 += d[r][2] + d[r][3];
            if (scale_ends<A>(r)) {
                acc[0] = fmaf(s0[run_scale<A>(r)], t0, acc[0]);
                acc[1] = fmaf(s1[run_scale<A>(r)], t1, acc[1]);
            }
        }
        if (A::needs_xsum && valid) {
            const float xsum = xsums[u];
            acc[0] = fmaf(-m0, xsum, acc[0]);
            acc[1] = fmaf(-m1, xsum, acc[1]);
        }
    }
}

template <class A, class XT, class YT, int Warps, int U>
__global__ void __launch_bounds__(Warps * 32)
    gemv_mma_kernel(const A a, const XT* __restrict__ x, YT* __restrict__ y, bool overlap) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    static_assert(!A::row_extra, "gemv_mma_kernel: no per-row term (SpQR's outliers take gemv_fp32_kernel)");
    constexpr int step = 4 * Warps * U;  // units per tile step of the block
    extern __shared__ uint4 staged[];
    const unsigned zero_chunk = unsigned(a.cols / 4);  // after the 2 chunks per 8 columns
    float* xsums = reinterpret_cast<float*>(staged + zero_chunk + 1);
    __shared__ __half2 table[exact_table_storage<A>::size];
    __shared__ float partial[2][Warps][16];
    if (A::table_size > 0) fill_exact_table<A>(table);
    if (threadIdx.x == 0) staged[zero_chunk] = make_uint4(0u, 0u, 0u, 0u);
    const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u, g = lane / 4u, t = lane % 4u;
    // This lane's B role: x_hi (h = 0) or x_lo (h = 1) of unit u0 + t, when t == g / 2.
    const bool x_lane = t == g / 2u;
    const unsigned h = g & 1u;
    allow_next_launch();
    if (overlap) {
        const std::size_t r = std::size_t(blockIdx.x) * 16 + g, u = std::size_t(warp) * 4 * U + t;
        if (r < a.rows && u < a.units) prefetch_unit(a, r, u, 0);
    }
    wait_for_inputs();
    stage_x_split(a, x, staged, xsums);
    __syncthreads();

    // Steps whose 4U units all lie in the row, then at most one that runs past its end.
    const std::size_t full = a.units / (4 * U) * (4 * U);
    int buf = 0;
    for (std::size_t base = std::size_t(blockIdx.x) * 16; base < a.rows; base += std::size_t(gridDim.x) * 16, buf ^= 1) {
        const std::size_t row[2] = {base + g < a.rows ? base + g : a.rows - 1, base + g + 8 < a.rows ? base + g + 8 : a.rows - 1};
        float acc[2] = {0.0f, 0.0f};
        std::size_t u0 = std::size_t(warp) * 4 * U;
        for (; u0 < full; u0 += step) mma_step<A, U, false>(a, staged, xsums, table, row, u0, t, x_lane, h, zero_chunk, acc);
        if (u0 < a.units) mma_step<A, U, true>(a, staged, xsums, table, row, u0, t, x_lane, h, zero_chunk, acc);
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 1);
            acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 2);
        }
        if (t == 0) partial[buf][warp][g] = acc[0], partial[buf][warp][g + 8] = acc[1];
        __syncthreads();
        if (threadIdx.x < 16u && base + threadIdx.x < a.rows) {
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < Warps; ++w) v += partial[buf][w][threadIdx.x];
            store_y(y + base + threadIdx.x, v);
        }
    }
#endif
}

// Whether `kernel` can have `smem` bytes of dynamic shared memory: beyond 48 KB with its static
// shared memory (x as hi and lo halves of long rows) it is opted into, up to the device's limit.
// The answers are kept per kernel, device and size (kernel_answers, gemv_core.cuh).
template <class K>
bool allow_smem(K kernel, std::size_t smem) {
    static kernel_answers<K> answers;  // 2: allowed, 1: refused
    return answers.get(kernel, smem, [&](int dev) {
        cudaFuncAttributes fa;
        int max_optin = 0;
        bool ok = cudaFuncGetAttributes(&fa, kernel) == cudaSuccess;
        const std::size_t total = smem + (ok ? fa.sharedSizeBytes : 0);
        if (ok && total > 48 * 1024)
            ok = cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess &&
                 total <= std::size_t(max_optin) &&
                 cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) == cudaSuccess;
        if (!ok) cudaGetLastError();  // a refusal is an answer, not an error for the next launch to find
        return ok ? 2 : 1;
    }) == 2;
}

template <int Warps, int U, class A, class XT, class YT>
bool launch_mma_rows(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    const auto kernel = gemv_mma_kernel<A, XT, YT, Warps, U>;
    const std::size_t smem = mma_staged_bytes(a);
    if (!allow_smem(kernel, smem)) return false;
    std::size_t blocks = (a.rows + 15) / 16;
    const std::size_t resident = resident_of(kernel, Warps * 32, smem);
    if (blocks > resident) blocks = resident;
    launch_kernel(kernel, unsigned(blocks), Warps * 32, smem, stream, true, a, x, y, true);
    return true;
}

// Whether the tensor-core GEMV may run: sm_80 and newer (mma.m16n8k16), unless EDGEQ_CUDA_MMA=0.
inline bool mma_enabled() {
    static const bool off = [] {
        const char* env = std::getenv("EDGEQ_CUDA_MMA");
        return env && std::string(env) == "0";
    }();
    return !off && device_sm() >= 80;
}

// Launch shape, measured on an H100 (docs/cuda.md, "fp32 sums on tensor cores"): 8 warps per
// 16-row tile, 16 when there are fewer tiles than SMs (2048 rows: 5.7 us against 8.7 at 2048 x
// 5632); 2 units per lane in flight when every warp still takes at least two steps (4096 x 11008:
// 13.3 us against 16.6), else 1 (5632 x 2048: 4.7 against 5.8).
template <class A, class XT, class YT>
bool launch_gemv1_mma(const A& a, const XT* x, YT* y, cudaStream_t stream, std::true_type /* usable */) {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) sms = 1;
    if ((a.rows + 15) / 16 < std::size_t(sms)) return launch_mma_rows<16, 1>(a, x, y, stream);
    const bool two = a.units >= 2 * (4 * 8 * 2);
    return two ? launch_mma_rows<8, 2>(a, x, y, stream) : launch_mma_rows<8, 1>(a, x, y, stream);
}
template <class A, class XT, class YT>
bool launch_gemv1_mma(const A&, const XT*, YT*, cudaStream_t, std::false_type) {
    return false;
}

// edgeq::cuda::fp32_sums at batch 1: tensor cores where there are some (fp32 activations and
// outputs, as the engine's; formats without a per-row term), else fp32 FMAs.
template <class A, class XT, class YT>
void launch_gemv1_accurate(const A& a, const XT* x, YT* y, cudaStream_t stream) {
    if (a.rows == 0) return;
    check_activations(a, x, y);
    using usable = std::integral_constant<bool, !A::row_extra && std::is_same<XT, float>::value && std::is_same<YT, float>::value>;
    if (mma_enabled() && launch_gemv1_mma(a, x, y, stream, usable{})) return;
    launch_gemv1_fp32(a, x, y, stream);
}

}  // namespace cuda
}  // namespace kernel
}  // namespace edgeq
