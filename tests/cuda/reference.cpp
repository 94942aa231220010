#include "reference.hpp"

#include <random>

// Only the plain-C++ parts: the scalar decoders are the reference by definition.
#include <edgeq/algo/ggml/quantize.hpp>
#include <edgeq/algo/rtn.hpp>
#include <edgeq/format/ggml/decode.hpp>
#include <edgeq/kernel/scalar/grouped.hpp>
#include <edgeq/kernel/scalar/spqr.hpp>

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
template <class F>
void make_spqr(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::uint32_t> row_ptr(rows + 1, 0);
    std::vector<std::uint32_t> cols_of;
    for (std::size_t r = 0; r < rows; ++r) {
        const float p = r % 11 == 0 ? 0.0f : r % 7 == 0 ? 0.2f : 0.01f;
        for (std::size_t c = 0; c < cols; ++c)
            if (uni(rng) < p) cols_of.push_back(std::uint32_t(c));
        row_ptr[r + 1] = std::uint32_t(cols_of.size());
    }
    spqr_matrix<F> q(rows, cols, cols_of.size());
    std::uint8_t* codes = q.row_codes(0);
    for (std::size_t i = 0; i < rows * F::row_code_bytes(cols); ++i) codes[i] = std::uint8_t(rng());
    for (std::size_t b = 0; b < F::n_stat_blocks(rows, cols); ++b) {
        typename F::stat_block& s = q.stats()[b];
        for (std::uint8_t& c : s.codes) c = std::uint8_t(rng());
        s.d_min = fp16_t::from_float(0.01f + 0.02f * uni(rng));
        s.d_step = fp16_t::from_float(0.004f * uni(rng));
        s.z_min = fp16_t::from_float(uni(rng));  // zero points with fractions, up to ~7
        s.z_step = fp16_t::from_float(0.2f + 0.7f * uni(rng));
    }
    for (std::size_t r = 0; r <= rows; ++r) q.row_ptr()[r] = row_ptr[r];
    for (std::size_t k = 0; k < cols_of.size(); ++k) {
        q.set_outlier_col(k, cols_of[k]);
        q.values()[k] = float_to_half(0.5f * normal(rng));
    }
    q.check();
    out.blob.assign(q.blob().data(), q.blob().data() + q.blob().size());
    const spqr_view<F> view = spqr_view<F>::from_blob(out.blob.data(), rows, cols);
    out.dense.assign(rows * cols, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) kernel::dequantize_row(backend::scalar{}, view, r, out.dense.data() + r * cols);
}
}  // namespace

template <class F>
void make_matrix(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    out.rows = rows;
    out.cols = cols;
    make<F>(rows, cols, seed, out, is_ggml_format<F>{});
}
template <>
void make_matrix<g_q4_k_paired>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    make_matrix<g_q4_k>(rows, cols, seed, out);
    const std::size_t n = out.blob.size() / sizeof(ggml::block_q4_K);
    std::vector<std::uint8_t> paired(out.blob.size());
    ggml::pair_codes(reinterpret_cast<const ggml::block_q4_K*>(out.blob.data()), n, reinterpret_cast<ggml::block_q4_K_paired*>(paired.data()));
    out.blob.swap(paired);
}
template <class M>
void make_mantissa3(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    make_matrix<typename M::plane_format>(rows, cols, seed, out);
    const std::size_t chunks = rows * cols / chunk_weights;
    std::vector<std::uint8_t> codes(out.blob.begin(), out.blob.begin() + std::ptrdiff_t(12 * chunks));
    planes_to_mantissa3(codes.data(), chunks, out.blob.data());
}
template <>
void make_matrix<m3_g128>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    make_mantissa3<m3_g128>(rows, cols, seed, out);
}
template <>
void make_matrix<m3_g64_asym>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    make_mantissa3<m3_g64_asym>(rows, cols, seed, out);
}
template <>
void make_matrix<spqr2>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    out.rows = rows, out.cols = cols;
    make_spqr<spqr2>(rows, cols, seed, out);
}
template <>
void make_matrix<spqr3>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    out.rows = rows, out.cols = cols;
    make_spqr<spqr3>(rows, cols, seed, out);
}
template <>
void make_matrix<spqr4>(std::size_t rows, std::size_t cols, unsigned seed, host_matrix& out) {
    out.rows = rows, out.cols = cols;
    make_spqr<spqr4>(rows, cols, seed, out);
}

template <class F>
void cpu_spqr_gemv(const host_matrix& m, const float* x, float* y) {
    const spqr_view<F> view = spqr_view<F>::from_blob(m.blob.data(), m.rows, m.cols);
    kernel::gemv_rows(backend::scalar{}, view, x, y, 0, m.rows);
}
template void cpu_spqr_gemv<spqr2>(const host_matrix&, const float*, float*);
template void cpu_spqr_gemv<spqr3>(const host_matrix&, const float*, float*);
template void cpu_spqr_gemv<spqr4>(const host_matrix&, const float*, float*);

template void make_matrix<int2_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int3_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int3_g64_asym>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int4_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int8_g128>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int4_g32>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int8_g32>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int4_g128_asym>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int5_g64_asym_fp32>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<int6_per_row>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<nf4_dq>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q4_0>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q8_0>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q4_k>(std::size_t, std::size_t, unsigned, host_matrix&);
template void make_matrix<g_q6_k>(std::size_t, std::size_t, unsigned, host_matrix&);

}  // namespace edgeq_test
