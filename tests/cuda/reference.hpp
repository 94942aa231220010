// The host side of the CUDA tests: quantized test matrices and the scalar reference GEMV,
// compiled by the C++ compiler (reference.cpp), so the .cu files need no xsimd or xtensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <edgeq/scheme.hpp>

namespace edgeq_test {

using namespace edgeq;
// The formats the CUDA GEMV is tested on (reference.cpp instantiates make_case for each).
using int2_g128 = format_of<scheme<bits<2>, group<128>>>;
using int3_g128 = format_of<scheme<bits<3>, group<128>>>;
using int4_g128 = format_of<scheme<bits<4>, group<128>>>;
using int8_g128 = format_of<scheme<bits<8>, group<128>>>;
using int4_g128_asym = format_of<scheme<bits<4>, group<128>, asymmetric>>;
using int5_g64_asym_fp32 = format_of<scheme<bits<5>, group<64>, asymmetric, fp32_scale>>;
using int6_per_row = format_of<scheme<bits<6>, per_row>>;
using nf4_dq = format_of<scheme<nf4, double_quant>>;

template <class F>
struct host_case {
    std::vector<std::uint8_t> blob;  // the quantized matrix as format/grouped.hpp lays it out
    qview<F> view;                   // points into blob
    std::vector<float> x, y_ref;     // y_ref: the scalar kernel, edgeq::gemv<backend::scalar>
};

// A rows x cols Gaussian matrix quantized into F, a Gaussian x with a few large outliers, and
// the scalar GEMV of the two. `out` is filled in place so that view keeps pointing into blob.
template <class F>
void make_case(std::size_t rows, std::size_t cols, unsigned seed, host_case<F>& out);

}  // namespace edgeq_test
