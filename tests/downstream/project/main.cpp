// Quantizes a random matrix with an installed edgeq and checks edgeq::gemv against plain loops:
// exactly (up to float rounding) against the dequantized weights, and loosely against the
// original float weights. Exits non-zero on any mismatch.
#include <edgeq/edgeq.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
    using S = edgeq::scheme<edgeq::bits<4>, edgeq::group<64>>;
    const std::size_t rows = 48, cols = 256;

    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(rows * cols), x(cols);
    for (float& v : w) v = normal(rng);
    for (float& v : x) v = normal(rng);

    const auto q = edgeq::quantize<S>(edgeq::matrix_view<const float>(w.data(), rows, cols));
    std::vector<float> y(rows, NAN);
    edgeq::gemv(q.view(), x.data(), y.data());

    // Relative errors in the 2-norm over all rows.
    std::vector<float> deq(cols);
    double e_deq = 0, e_orig = 0, norm = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        edgeq::dequantize_row<edgeq::backend::scalar>(q.view(), r, deq.data());
        double ref_deq = 0, ref_orig = 0;
        for (std::size_t c = 0; c < cols; ++c) ref_deq += double(deq[c]) * x[c], ref_orig += double(w[r * cols + c]) * x[c];
        e_deq += (y[r] - ref_deq) * (y[r] - ref_deq);
        e_orig += (y[r] - ref_orig) * (y[r] - ref_orig);
        norm += ref_orig * ref_orig;
    }
    e_deq = std::sqrt(e_deq / norm), e_orig = std::sqrt(e_orig / norm);
    // float sums of 256 terms: ~1e-6; 4-bit g64 RTN of Gaussian weights: ~0.1 (0.2 is a bug).
    const double tol_deq = 1e-4, tol_orig = 0.2;
    std::printf("edgeq downstream: %zu x %zu, %.2f bits/weight: error %.2e vs dequantized (tol %.0e), %.3f vs float (tol %.1f)\n",
                rows, cols, edgeq::bits_per_weight<S>(cols), e_deq, tol_deq, e_orig, tol_orig);
    const bool ok = e_deq < tol_deq && e_orig < tol_orig;  // also false for NaN
    if (!ok) std::printf("FAILED\n");
    return ok ? 0 : 1;
}
