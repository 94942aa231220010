// Batch-1 GEMV y = W x on a CUDA device for every grouped format (format/grouped.hpp):
//
//     edgeq::cuda::gemv(w, x_dev, y_dev, stream);
//     edgeq::cuda::gemv(edgeq::backend::cuda_sm53{}, w, x_dev, y_dev, stream);  // gemv_config<53>
//
// w is a qview whose pointers are device pointers (edgeq::cuda::rebase() turns a host view of a
// blob into one of its device copy); x (cols floats) and y (rows floats) are in device memory.
// The call is asynchronous on `stream`; launch errors throw edgeq::error.
//
// C++14 for nvcc >= 10.2 (sm_53, the Jetson Nano, upwards): no Boost.Hana, no xsimd, no
// cuda_bf16.h. Each lane of a warp takes one 32-weight chunk at a time (lanes read adjacent
// chunks, so a warp's weight loads are coalesced), keeps its 32 activations in registers and
// applies them to RowsPerWarp rows, so x is read once per RowsPerWarp rows. A row's partial sums
// are reduced with warp shuffles.
//
// Arithmetic is fp32. Half2 FMA (sm_53+) would double the multiply rate, but the activations
// are fp32: rounding them to half costs 13 bits, and a half accumulator overflows once
// |x| * |q - z| * 16 > 65504, i.e. for |x| > 32 with 8-bit codes, which LLM activation
// outliers exceed. What half2 would win on Maxwell is mostly the slow int->float conversion,
// and biased_code() (unpack.cuh) avoids that in fp32 already.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../format/grouped.hpp"
#include "../../policy/backend.hpp"
#include "unpack.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

// Launch shape per SM generation: the backend tag picks it. One shape serves all for now (it
// is tested on sm_90 but tuned for none); specialise it to tune one.
template <int SM>
struct gemv_config {
    static constexpr int warps_per_block = 4;
    static constexpr int rows_per_warp = 4;
};

// A group's scale: fp16 through the read-only cache and the hardware conversion; fp32 and
// double-quantized scales as qview decodes them.
template <class F, class S>
__device__ __forceinline__ float group_scale(const qview<F>& w, std::size_t i, S) {
    return w.scale_at(i);
}
template <class F>
__device__ __forceinline__ float group_scale(const qview<F>& w, std::size_t i, fp16_t) {
    return __half2float(__ushort_as_half(__ldg(&w.scales[i].bits)));
}

// Value of byte b of four codes, minus the zero point: uniform grid from the biased float,
// a code-book (NF4, no zero point) from the block's table in shared memory.
__device__ __forceinline__ float code_value(std::uint32_t c, int b, float bias, const float*, std::true_type) {
    return biased_code(c, b) - bias;
}
__device__ __forceinline__ float code_value(std::uint32_t c, int b, float, const float* table, std::false_type) {
    return table[(c >> (8 * b)) & 0xffu];
}

template <class F, int WarpsPerBlock, int RowsPerWarp>
__global__ void __launch_bounds__(WarpsPerBlock * 32)
    gemv_kernel(const qview<F> w, const float* __restrict__ x, float* __restrict__ y) {
    constexpr int bits = F::bits;
    constexpr int chunk_bytes = plane_split<bits>::chunk_bytes;
    using uniform = std::integral_constant<bool, F::is_uniform>;

    __shared__ float table[F::is_uniform ? 1 : 1 << bits];
    if (!F::is_uniform) {
        for (int i = int(threadIdx.x); i < (1 << bits); i += int(blockDim.x)) table[i] = F::code_value(i);
        __syncthreads();
    }

    const unsigned lane = threadIdx.x % 32u;
    const std::size_t r0 = (std::size_t(blockIdx.x) * WarpsPerBlock + threadIdx.x / 32u) * RowsPerWarp;
    if (r0 >= w.rows) return;  // the whole warp: r0 is the same in every lane
    const std::size_t n_chunks = w.cols / chunk_weights;
    const std::size_t chunks_per_group = w.group_size() / chunk_weights;
    const std::size_t ng = w.groups_per_row();

    float acc[RowsPerWarp];
#pragma unroll
    for (int i = 0; i < RowsPerWarp; ++i) acc[i] = 0.0f;

    for (std::size_t ch = lane; ch < n_chunks; ch += 32) {
        // The chunk's 32 activations, shared by the warp's rows; element 4t + j is xv[t].j,
        // matching codes4(t) byte j.
        float4 xv[8];
#pragma unroll
        for (int t = 0; t < 8; ++t) xv[t] = __ldg(reinterpret_cast<const float4*>(x) + ch * 8 + t);
        const std::size_t g = ch / chunks_per_group;
#pragma unroll
        for (int i = 0; i < RowsPerWarp; ++i) {
            const std::size_t r = r0 + std::size_t(i);
            if (r >= w.rows) break;  // warp-uniform
            std::uint32_t words[bits];
            load_chunk<bits>(w.row_codes(r) + ch * chunk_bytes, words);
            const float bias = code_bias + float(w.zero(r, g));
            float s = 0.0f;
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                const std::uint32_t c = codes4<bits>(words, t);
                s = fmaf(code_value(c, 0, bias, table, uniform{}), xv[t].x, s);
                s = fmaf(code_value(c, 1, bias, table, uniform{}), xv[t].y, s);
                s = fmaf(code_value(c, 2, bias, table, uniform{}), xv[t].z, s);
                s = fmaf(code_value(c, 3, bias, table, uniform{}), xv[t].w, s);
            }
            acc[i] = fmaf(group_scale(w, r * ng + g, typename F::scale_type{}), s, acc[i]);
        }
    }

#pragma unroll
    for (int i = 0; i < RowsPerWarp; ++i) {
        float v = acc[i];
#pragma unroll
        for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0 && r0 + std::size_t(i) < w.rows) y[r0 + std::size_t(i)] = v;
    }
}

template <class Config, class F>
void launch_gemv(const qview<F>& w, const float* x, float* y, cudaStream_t stream) {
    if (w.rows == 0) return;
    if (!w.codes || !w.scales || !x || !y) throw error("cuda::gemv: a null matrix or vector pointer");
    // The vector loads of load_chunk() and of the activations need this alignment.
    if (reinterpret_cast<std::uintptr_t>(w.codes) % 16 || reinterpret_cast<std::uintptr_t>(x) % 16)
        throw error("cuda::gemv: the codes and x must be 16-byte aligned (cudaMalloc gives 256)");
    constexpr int rows_per_block = Config::warps_per_block * Config::rows_per_warp;
    const std::size_t blocks = (w.rows + rows_per_block - 1) / rows_per_block;
    gemv_kernel<F, Config::warps_per_block, Config::rows_per_warp>
        <<<unsigned(blocks), Config::warps_per_block * 32, 0, stream>>>(w, x, y);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::gemv: kernel launch failed: ") + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {

// y = W x on the device, asynchronously on `stream`. W's pointers, x and y are device pointers.
template <class F>
void gemv(const qview<F>& w, const float* x_dev, float* y_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_gemv<kernel::cuda::gemv_config<0>>(w, x_dev, y_dev, stream);
}

// The same with the launch shape tuned for one SM generation (backend::cuda_sm53, cuda_sm90).
template <int SM, class F>
void gemv(backend::cuda<SM>, const qview<F>& w, const float* x_dev, float* y_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_gemv<kernel::cuda::gemv_config<SM>>(w, x_dev, y_dev, stream);
}

// A view of the copy of a blob at `to` (e.g. a device buffer) from a view of the blob at `from`:
// every section keeps its offset. dq_mean, read from the host blob, is kept.
template <class F>
qview<F> rebase(qview<F> v, const void* from, const void* to) {
    const auto moved = [&](const void* p) -> const void* {
        return p ? static_cast<const std::uint8_t*>(to) + (static_cast<const std::uint8_t*>(p) - static_cast<const std::uint8_t*>(from))
                 : nullptr;
    };
    v.codes = static_cast<const std::uint8_t*>(moved(v.codes));
    v.scales = static_cast<const typename F::scale_type*>(moved(v.scales));
    v.zeros = static_cast<const std::uint8_t*>(moved(v.zeros));
    v.dq_factors = static_cast<const float*>(moved(v.dq_factors));
    return v;
}

}  // namespace cuda
}  // namespace edgeq
