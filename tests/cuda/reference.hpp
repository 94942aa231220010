// The host side of the CUDA tests: quantized test matrices and their dequantized weights,
// compiled by the C++ compiler (reference.cpp), so the .cu files need no xsimd or xtensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <edgeq/format/ggml/q4_K_paired.hpp>
#include <edgeq/format/mantissa3.hpp>
#include <edgeq/format/spqr.hpp>
#include <edgeq/scheme.hpp>

namespace edgeq_test {

using namespace edgeq;
// The grouped formats the CUDA kernels are tested on (reference.cpp instantiates each).
using int2_g128 = format_of<scheme<bits<2>, group<128>>>;
using int3_g128 = format_of<scheme<bits<3>, group<128>>>;
using int3_g64_asym = format_of<scheme<bits<3>, group<64>, asymmetric>>;
using int4_g128 = format_of<scheme<bits<4>, group<128>>>;
using int8_g128 = format_of<scheme<bits<8>, group<128>>>;
// Q4_0's and Q8_0's twins (format/ggml/grouped_twin.hpp): what the GPU engine uploads them as.
using int4_g32 = format_of<scheme<bits<4>, group<32>>>;
using int8_g32 = format_of<scheme<bits<8>, group<32>>>;
using int4_g128_asym = format_of<scheme<bits<4>, group<128>, asymmetric>>;
using int5_g64_asym_fp32 = format_of<scheme<bits<5>, group<64>, asymmetric, fp32_scale>>;
using int6_per_row = format_of<scheme<bits<6>, per_row>>;
using nf4_dq = format_of<scheme<nf4, double_quant>>;
// llama.cpp's block types.
using g_q4_0 = ggml_format<ggml::block_q4_0>;
using g_q8_0 = ggml_format<ggml::block_q8_0>;
using g_q4_k = ggml_format<ggml::block_q4_K>;
using g_q6_k = ggml_format<ggml::block_q6_K>;
// int3 as the GPU engine uploads it (format/mantissa3.hpp), and with zero points.
using m3_g128 = mantissa3<int3_g128>;
using m3_g64_asym = mantissa3<int3_g64_asym>;
// Q4_K as the GPU engine uploads it (format/ggml/q4_K_paired.hpp).
using g_q4_k_paired = ggml_format<ggml::block_q4_K_paired>;

// SpQR (format/spqr.hpp): the registry's three, groups of 16, 3-bit statistics over 16 rows.
using spqr2 = spqr_format<2>;
using spqr3 = spqr_format<3>;
using spqr4 = spqr_format<4>;
template <class F>
struct is_spqr_format : std::false_type {};
template <int B, int G, int SB, int SG>
struct is_spqr_format<spqr_format<B, G, SB, SG>> : std::true_type {};

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
// Q4_K paired: a Q4_K matrix (as make_matrix<g_q4_k>) with its blocks repacked; the same weights.
template <>
void make_matrix<g_q4_k_paired>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);
// int3 in half mantissas: the int3 matrix (as make_matrix<int3_...>) with its chunks repacked.
template <>
void make_matrix<m3_g128>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);
template <>
void make_matrix<m3_g64_asym>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);
// SpQR: random codes, random statistics with fractional zero points, and outliers on about
// 1% of the weights (every 7th row 20%, every 11th none), dequantized by the scalar kernel.
template <>
void make_matrix<spqr2>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);
template <>
void make_matrix<spqr3>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);
template <>
void make_matrix<spqr4>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out);

// The CPU SpQR GEMV (kernel/scalar/spqr.hpp, gemv_rows) of a matrix made by make_matrix.
template <class F>
void cpu_spqr_gemv(const host_matrix& m, const float* x, float* y);

}  // namespace edgeq_test
