#include "reference.hpp"

#include <random>

// Only the plain-C++ parts: the scalar kernel is the reference by definition.
#include <edgeq/algo/rtn.hpp>
#include <edgeq/kernel/scalar/grouped.hpp>

namespace edgeq_test {

template <class F>
void make_case(std::size_t rows, std::size_t cols, unsigned seed, host_case<F>& out) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(rows * cols);
    for (float& v : w) v = normal(rng);
    out.x.resize(cols);
    for (float& v : out.x) v = normal(rng);
    // Activation outliers, as LLMs have: far beyond what a half accumulator could hold.
    for (std::size_t c = 7; c < cols; c += 97) out.x[c] *= 300.0f;

    const qmatrix<F> q = quantize_format<F>(matrix_view<const float>(w.data(), rows, cols));
    out.blob.assign(q.blob().data(), q.blob().data() + q.blob().size());
    out.view = qview<F>::from_blob(out.blob.data(), rows, cols);
    out.y_ref.assign(rows, 0.0f);
    kernel::gemv_rows(backend::scalar{}, out.view, out.x.data(), out.y_ref.data(), 0, rows);
}

template void make_case(std::size_t, std::size_t, unsigned, host_case<int2_g128>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int3_g128>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int4_g128>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int8_g128>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int4_g128_asym>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int5_g64_asym_fp32>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<int6_per_row>&);
template void make_case(std::size_t, std::size_t, unsigned, host_case<nf4_dq>&);

}  // namespace edgeq_test
