// The dequantize kernels (kernel/cuda/dequantize.cuh) against the host reference decoder, for
// every llama.cpp block type. Part of test_cuda_kernels (its own file so that it compiles alone:
// nvcc tests/cuda/test_cuda_dequantize.cu tests/cuda/harness.cu tests/cuda/cuda_headers.cu).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <edgeq/format/ggml/decode.hpp>
#include <edgeq/kernel/cuda/dequantize.cuh>

#include "../data/ggml/decode_blocks.hpp"
#include "harness.hpp"

using namespace edgeq;
using namespace edgeq_test;

namespace {

// Dequantize kernels: every llama.cpp block type against the host reference decoder, rows of
// random blocks with valid scales; fp32 output within 1e-6 of the largest weight (nvcc may
// contract a multiply-add into an fma), fp16 output within half's rounding too. Poisoned first.
template <class Block>
void check_dequantize(std::size_t rows, std::size_t cols) {
    const std::size_t nb = rows * (cols / Block::weights);
    std::vector<Block> blocks(nb);
    edgeq::ggml_test::fill_blocks(blocks.data(), nb, std::uint64_t(Block::type_id) * 131 + cols);
    std::vector<float> ref(rows * cols);
    edgeq::ggml::dequantize_row(blocks.data(), ref.data(), rows * cols);
    device_buffer<Block> b(nb);
    device_buffer<float> f(rows * cols);
    device_buffer<__half> h(rows * cols);
    CUDA_CHECK(cudaMemcpy(b.p, blocks.data(), nb * sizeof(Block), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(f.p, 0xff, rows * cols * sizeof(float)));
    CUDA_CHECK(cudaMemset(h.p, 0xff, rows * cols * sizeof(__half)));
    qview<ggml_format<Block>> w;
    w.rows = rows, w.cols = cols, w.blocks = b.p;
    edgeq::cuda::dequantize(w, f.p);
    edgeq::cuda::dequantize(w, h.p);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> gf(rows * cols);
    std::vector<__half> gh(rows * cols);
    CUDA_CHECK(cudaMemcpy(gf.data(), f.p, gf.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(gh.data(), h.p, gh.size() * sizeof(__half), cudaMemcpyDeviceToHost));
    double max_abs = 0.0;
    for (const float r : ref) max_abs = std::max(max_abs, double(std::fabs(r)));
    const double fma_slack = 1e-6 * max_abs;  // a contracted d * q + m rounds once, not twice
    std::size_t bad_f = 0, bad_h = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double r = ref[i];
        if (!(std::fabs(gf[i] - r) <= fma_slack)) ++bad_f;
        const double hv = __half2float(gh[i]);
        // half: 2^-11 relative (3e-8 absolute among subnormals) of the device's float
        if (!(std::fabs(hv - r) <= std::ldexp(std::fabs(r), -11) + fma_slack + 3e-8)) ++bad_h;
    }
    CHECK_MSG(bad_f == 0, Block::name() << ": " << bad_f << " fp32 weights differ from the reference");
    CHECK_MSG(bad_h == 0, Block::name() << ": " << bad_h << " fp16 weights differ from the reference beyond rounding");
}

template <class... Blocks>
void check_dequantize_all(std::size_t rows, std::size_t cols) {
    const int each[] = {(check_dequantize<Blocks>(rows, cols), 0)...};
    (void)each;
}

}  // namespace

TEST("dequantize every llama.cpp block type (fp32 and fp16 rows)") {
    using namespace edgeq::ggml;
    check_dequantize_all<block_q4_0, block_q4_1, block_q5_0, block_q5_1, block_q8_0, block_iq4_nl, block_q2_K, block_q3_K,
                         block_q4_K, block_q5_K, block_q6_K, block_iq4_xs>(37, 512);
    check_dequantize<block_q6_K>(3, 256);
    qview<ggml_format<block_q4_1>> empty;  // rows == 0: nothing launched
    edgeq::cuda::dequantize(empty, static_cast<float*>(nullptr));
    CUDA_CHECK(cudaGetLastError());
}
