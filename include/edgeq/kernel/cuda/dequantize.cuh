// Dequantize kernels: a matrix of llama.cpp blocks in device memory to dense fp32 or fp16 rows in
// device memory, for the block types that have no GEMV kernel here (Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
// Q5_K, IQ4_NL, IQ4_XS; also Q4_0, Q8_0, Q4_K, Q6_K) so that a dense GEMV or cuBLAS can read them:
//
//     edgeq::cuda::dequantize(w, out_dev, stream);   // w: qview<ggml_format<Block>>, out: rows x cols
//
// Each weight is format/ggml/decode.hpp's, the reference decoder compiled for the device (the same
// float operations as ggml's dequantize_row_*; nvcc may contract a multiply-add into an fma, so
// the last bit can differ from the host's). A thread decodes one block; a load-time operation,
// not tuned. C++14 for nvcc >= 10.2.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "../../core/error.hpp"
#include "../../format/ggml/decode.hpp"
#include "../../format/ggml/format.hpp"
#include "gemv_core.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

template <class Block, class T>
__global__ void dequantize_kernel(const Block* __restrict__ blocks, std::size_t n_blocks, T* __restrict__ out) {
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_blocks; i += std::size_t(gridDim.x) * blockDim.x) {
        float v[Block::weights];
        ggml::dequantize_block(blocks[i], v);
        T* o = out + i * std::size_t(Block::weights);
#pragma unroll 8
        for (int j = 0; j < Block::weights; ++j) store_y(o + j, v[j]);
    }
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {

// out_dev[r * cols + c] = weight (r, c) of w, whose blocks are in device memory; T float or __half.
template <class Block, class T>
void dequantize(const qview<ggml_format<Block>>& w, T* out_dev, cudaStream_t stream = 0) {
    if (w.rows == 0 || w.cols == 0) return;
    if (!w.blocks || !out_dev) throw error("cuda::dequantize: a null pointer");
    if (w.cols % Block::weights) throw error("cuda::dequantize: the row length is not a multiple of the block");
    const std::size_t n = w.rows * (w.cols / Block::weights);
    const unsigned threads = 128;
    const std::size_t grid = (n + threads - 1) / threads;
    kernel::cuda::dequantize_kernel<Block, T>
        <<<unsigned(grid < 65535 ? grid : 65535), threads, 0, stream>>>(w.blocks, n, out_dev);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw error(std::string("cuda::dequantize: kernel launch failed: ") + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace edgeq
