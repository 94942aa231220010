// The host side of the CUDA tests: quantized test matrices and their dequantized weights,
// compiled by the C++ compiler (reference.cpp), so the .cu files need no xsimd or xtensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <edgeq/scheme.hpp>

namespace edgeq_test {

using namespace edgeq;
// The grouped formats the CUDA kernels are tested on (reference.cpp instantiates each).
using int2_g128 = format_of<scheme<bits<2>, group<128>>>;
using int3_g128 = format_of<scheme<bits<3>, group<128>>>;
using int4_g128 = format_of<scheme<bits<4>, group<128>>>;
using int8_g128 = format_of<scheme<bits<8>, group<128>>>;
using int4_g128_asym = format_of<scheme<bits<4>, group<128>, asymmetric>>;
using int5_g64_asym_fp32 = format_of<scheme<bits<5>, group<64>, asymmetric, fp32_scale>>;
using int6_per_row = format_of<scheme<bits<6>, per_row>>;
using nf4_dq = format_of<scheme<nf4, double_quant>>;
// llama.cpp's block types.
using g_q4_0 = ggml_format<ggml::block_q4_0>;
using g_q8_0 = ggml_format<ggml::block_q8_0>;
using g_q4_k = ggml_format<ggml::block_q4_K>;
using g_q6_k = ggml_format<ggml::block_q6_K>;

struct host_matrix {
    std::size_t rows = 0, cols = 0;
    std::vector<std::uint8_t> blob;  // the quantized matrix as its format lays it out
    std::vector<float> dense;        // its weights dequantized by the CPU reference decoder
};

// A rows x cols Gaussian matrix quantized into F (edgeq's RTN for grouped formats, the
// byte-exact llama.cpp quantizers for ggml blocks) and dequantized by the scalar reference
// (kernel/scalar, format/ggml/decode.hpp).
template <class F>
void make_matrix(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);

}  // namespace edgeq_test
