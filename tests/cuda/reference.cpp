#include "reference.hpp"

#include <random>

// Only the plain-C++ parts: the scalar decoders are the reference by definition.
#include <edgeq/algo/ggml/quantize.hpp>
#include <edgeq/algo/rtn.hpp>
#include <edgeq/format/ggml/decode.hpp>
#include <edgeq/kernel/scalar/grouped.hpp>

namespace edgeq_test {

namespace {
std::vector<float> gaussian(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n);
    for (float& v : w) v = normal(rng);
    return w;
}

template <class F>
void make(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out, std::false_type /*ggml*/) {
    const std::vector<float> w = gaussian(rows * cols, seed);
    const qmatrix<F> q = quantize_format<F>(matrix_view<const float>(w.data(), rows, cols));
    out.blob.assign(q.blob().data(), q.blob().data() + q.blob().size());
    const qview<F> view = qview<F>::from_blob(out.blob.data(), rows, cols);
    out.dense.assign(rows * cols, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) kernel::dequantize_row(backend::scalar{}, view, r, out.dense.data() + r * cols);
}

template <class F>
void make(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out, std::true_type /*ggml*/) {
    using block = typename F::block_type;
    const std::vector<float> w = gaussian(rows * cols, seed);
    const std::size_t nb = cols / block::weights;
    out.blob.assign(rows * nb * sizeof(block), 0);
    out.dense.assign(rows * cols, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) {
        block* b = reinterpret_cast<block*>(out.blob.data()) + r * nb;
        ggml::quantize_row<block>(w.data() + r * cols, b, cols);
        ggml::dequantize_row<block>(b, out.dense.data() + r * cols, cols);
    }
}
}  // namespace

template <class F>
void make_matrix(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    out.rows = rows;
    out.cols = cols;
    make<F>(rows, cols, seed, out, is_ggml_format<F>{});
}

template void make_matrix<int2_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int3_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int4_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int8_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int4_g128_asym>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int5_g64_asym_fp32>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int6_per_row>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<nf4_dq>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q4_0>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q8_0>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q4_k>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q6_k>(std::size_t, std::size_t, unsigned, host_matrix&);

}  // namespace edgeq_test
