// Every backend level against the scalar reference, and the reference against float64.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <edgeq/edgeq.hpp>
#include <edgeq/kernel/simd/dense.hpp>

namespace eq = edgeq;

namespace {

// Named error budgets (relative L2 over the output vector).
// Float sums of v(q) * x lose up to (zero point) x eps when the zero point is subtracted once per
// group (the 6-bit asymmetric formats cancel the most), hence 1e-5 rather than a few eps.
constexpr double simd_vs_scalar_budget = 1e-5;     // float summation order only
constexpr double reference_vs_f64_budget = 1e-5;   // float accumulation against float64
constexpr double q8_exact_budget = 1e-5;           // q8 GEMV vs float64 with the dequantized activations
// q8 GEMV vs float64 with the true activations: int8 blocks of 32 lose resolution next to the
// 25x activation outlier below (the LLM.int8 problem; the fp32 path has no such loss).
constexpr double q8_activation_budget = 2e-2;
constexpr double gemm_vs_gemv_budget = 1e-5;

double rel_l2(const std::vector<float>& a, const std::vector<double>& ref) {
    double e = 0, n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) e += (a[i] - ref[i]) * (a[i] - ref[i]), n += ref[i] * ref[i];
    return std::sqrt(e / n);
}
std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

struct problem {
    std::size_t rows, cols;
    std::vector<float> w, x;
};

problem make(std::size_t rows, std::size_t cols, unsigned seed) {
    std::mt19937 rng(seed);
    std::student_t_distribution<float> t(4.0f);
    problem p{rows, cols, std::vector<float>(rows * cols), std::vector<float>(cols)};
    for (float& v : p.w) v = 0.02f * t(rng);
    for (float& v : p.x) v = t(rng);
    p.x[3] = 25.0f;  // an activation outlier, as LLMs have
    return p;
}

// y = W x in float64 from the stored weights as the reference decodes them.
template <class F>
std::vector<double> gemv_f64(const eq::qview<F>& w, const std::vector<float>& x) {
    std::vector<double> y(w.rows);
    std::vector<float> row(w.cols);
    for (std::size_t r = 0; r < w.rows; ++r) {
        eq::dequantize_row<eq::backend::scalar>(w, r, row.data());
        double s = 0;
        for (std::size_t c = 0; c < w.cols; ++c) s += double(row[c]) * x[c];
        y[r] = s;
    }
    return y;
}

template <class Backend, class F>
void check_backend(const eq::qview<F>& w, const problem& p, const std::vector<eq::q8_block>& xq,
                   const std::vector<float>& y_ref_fp32, const std::vector<float>& y_ref_q8) {
    INFO("backend " << Backend::name());
    eq::thread_pool one(1), two(2);
    std::vector<float> y(w.rows, NAN), y2(w.rows, NAN);

    eq::gemv<Backend>(w, p.x.data(), y.data(), one);
    CHECK(rel_l2(y, widen(y_ref_fp32)) <= simd_vs_scalar_budget);
    eq::gemv<Backend>(w, p.x.data(), y2.data(), two);
    CHECK(y2 == y);  // rows are split, never a row's sum: threads change nothing

    eq::gemv_q8<Backend>(w, xq.data(), y.data(), one);
    CHECK(rel_l2(y, widen(y_ref_q8)) <= simd_vs_scalar_budget);
    eq::gemv_q8<Backend>(w, xq.data(), y2.data(), two);
    CHECK(y2 == y);

    std::vector<float> row(w.cols), ref(w.cols);
    double worst = 0;
    for (std::size_t r = 0; r < w.rows; ++r) {
        eq::dequantize_row<Backend>(w, r, row.data());
        eq::dequantize_row<eq::backend::scalar>(w, r, ref.data());
        for (std::size_t c = 0; c < w.cols; ++c) worst = std::max(worst, double(std::fabs(row[c] - ref[c])));
    }
    CHECK(worst <= 1e-6);

    // GEMM over 5 tokens (an odd count exercises the tail) against GEMV per token.
    const std::size_t n = 5;
    std::vector<float> xs(n * w.cols), ys(n * w.rows, NAN);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < w.cols; ++c) xs[t * w.cols + c] = p.x[(c + 7 * t) % w.cols] * (t % 2 ? -1.0f : 1.0f);
    eq::gemm<Backend>(w, eq::matrix_view<const float>(xs.data(), n, w.cols), eq::matrix_view<float>(ys.data(), n, w.rows), two);
    for (std::size_t t = 0; t < n; ++t) {
        std::vector<float> xt(xs.begin() + long(t * w.cols), xs.begin() + long((t + 1) * w.cols));
        std::vector<float> yt(ys.begin() + long(t * w.rows), ys.begin() + long((t + 1) * w.rows));
        CHECK(rel_l2(yt, gemv_f64(w, xt)) <= gemm_vs_gemv_budget);
    }
}

template <class S>
void check_scheme(const char* name, std::size_t rows, std::size_t cols) {
    INFO("scheme " << name << " " << rows << "x" << cols);
    const problem p = make(rows, cols, unsigned(rows * 31 + cols));
    const auto q = eq::quantize<S>(eq::matrix_view<const float>(p.w.data(), rows, cols));
    const auto w = q.view();

    std::vector<eq::q8_block> xq(cols / 32);
    eq::quantize_activations(p.x.data(), cols, xq.data());
    std::vector<float> xd(cols);  // the activations the q8 path sees
    for (std::size_t c = 0; c < cols; ++c) xd[c] = xq[c / 32].d * float(xq[c / 32].qs[c % 32]);

    std::vector<float> y(rows, NAN), yq(rows, NAN);
    eq::thread_pool one(1);
    eq::gemv<eq::backend::scalar>(w, p.x.data(), y.data(), one);
    eq::gemv_q8<eq::backend::scalar>(w, xq.data(), yq.data(), one);
    const std::vector<double> ref = gemv_f64(w, p.x);
    CHECK(rel_l2(y, ref) <= reference_vs_f64_budget);
    if (eq::format_of<S>::is_uniform) CHECK(rel_l2(yq, gemv_f64(w, xd)) <= q8_exact_budget);
    CHECK(rel_l2(yq, ref) <= q8_activation_budget);

#if XSIMD_WITH_SSE2
    check_backend<eq::backend::simd<xsimd::sse2>>(w, p, xq, y, yq);
#endif
#if XSIMD_WITH_NEON64
    check_backend<eq::backend::simd<xsimd::neon64>>(w, p, xq, y, yq);
#endif
    check_backend<eq::backend::simd<xsimd::default_arch>>(w, p, xq, y, yq);
    check_backend<eq::backend::best>(w, p, xq, y, yq);
}

}  // namespace

TEST_CASE("kernels: every width, symmetric and asymmetric, against the reference and float64", "[kernels]") {
    using namespace eq;
    check_scheme<scheme<bits<2>, group<64>, asymmetric>>("int2-g64-asym", 37, 256);
    check_scheme<scheme<bits<2>, group<32>>>("int2-g32", 37, 256);
    check_scheme<scheme<bits<3>, group<128>, asymmetric>>("int3-g128-asym", 37, 512);
    check_scheme<scheme<bits<3>, group<32>>>("int3-g32", 19, 256);
    check_scheme<scheme<bits<4>, group<128>>>("int4-g128", 37, 512);
    check_scheme<scheme<bits<4>, group<32>, asymmetric, fp32_scale>>("int4-g32-asym-f32", 37, 256);
    check_scheme<scheme<bits<5>, group<64>>>("int5-g64", 37, 256);
    check_scheme<scheme<bits<5>, per_row, asymmetric>>("int5-row-asym", 17, 96);
    check_scheme<scheme<bits<6>, group<256>, asymmetric>>("int6-g256-asym", 37, 512);
    check_scheme<scheme<bits<6>, group<32>>>("int6-g32", 37, 256);
    check_scheme<scheme<bits<8>, per_row, fp32_scale>>("int8-row", 37, 96);
    check_scheme<scheme<bits<8>, group<64>, asymmetric>>("int8-g64-asym", 37, 256);
}

TEST_CASE("kernels: NF4 with and without double quantization", "[kernels]") {
    using namespace eq;
    check_scheme<scheme<nf4>>("nf4-g64", 37, 512);
    check_scheme<scheme<nf4, double_quant>>("nf4-g64-dq", 300, 512);  // 2400 scales: 10 dq blocks
    check_scheme<scheme<nf4, group<32>, fp32_scale>>("nf4-g32-f32", 37, 256);
}

TEST_CASE("gemm refuses mismatched shapes", "[kernels]") {
    using s = eq::scheme<eq::bits<4>, eq::group<32>>;
    const problem p = make(8, 64, 1);
    const auto q = eq::quantize<s>(eq::matrix_view<const float>(p.w.data(), 8, 64));
    std::vector<float> x(2 * 32), y(2 * 8);
    CHECK_THROWS_AS(eq::gemm(q.view(), eq::matrix_view<const float>(x.data(), 2, 32), eq::matrix_view<float>(y.data(), 2, 8)),
                    eq::error);
}

// ---- The packed float GEMM (kernel/packed_gemm.hpp): dense prompt path, X^T X, C += A B ----------

namespace {
// The packed kernel sums each output in 256-term slices (fma chains) then adds the slices: float
// rounding of a different order than gemv's single chain, so a relative L2 budget against float64.
constexpr double packed_vs_f64_budget = 1e-6;
// X^T X: float products summed over 256-token slices, the slices added in float64.
constexpr double gram_vs_f64_budget = 1e-6;

std::vector<float> normals(std::size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> nd;
    std::vector<float> v(n);
    for (float& x : v) x = nd(g);
    return v;
}
}  // namespace

TEST_CASE("dense gemm of a batch (packed) against float64; threads change nothing; small batches equal gemv", "[kernels][packed]") {
    // 600 columns: three K slices, the last partial; 53 rows and 37 tokens: partial tiles both ways.
    const std::size_t R = 53, C = 600, T = 37;
    const std::vector<float> w = normals(R * C, 1), x = normals(T * C, 2);
    auto check = [&](auto elem) {
        using E = decltype(elem);
        INFO("dense " << E::name());
        const eq::dense_matrix<E> m = eq::dense_matrix<E>::from_float({w.data(), R, C});
        eq::dense_linear<E> lin(eq::dense_matrix<E>::from_float({w.data(), R, C}));
        eq::thread_pool one(1), two(2);
        std::vector<float> y1(T * R, NAN), y2(T * R, NAN);
        lin.gemm({x.data(), T, C}, {y1.data(), T, R}, one);
        lin.gemm({x.data(), T, C}, {y2.data(), T, R}, two);
        CHECK(y1 == y2);
        std::vector<double> ref(T * R);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t r = 0; r < R; ++r) {
                double s = 0;
                for (std::size_t c = 0; c < C; ++c) s += double(E::to_float(m.view().row(r)[c])) * x[t * C + c];
                ref[t * R + r] = s;
            }
        CHECK(rel_l2(y1, ref) <= packed_vs_f64_budget);
        // Below dense_packed_min_tokens the band kernel runs: bit-identical to gemv.
        const std::size_t few = eq::kernel::dense_packed_min_tokens - 1;
        std::vector<float> yf(few * R), yv(R);
        lin.gemm({x.data(), few, C}, {yf.data(), few, R}, two);
        for (std::size_t t = 0; t < few; ++t) {
            lin.gemv(&x[t * C], yv.data(), two);
            CHECK(std::equal(yv.begin(), yv.end(), yf.begin() + long(t * R)));
        }
    };
    check(eq::dense_f32{});
    check(eq::dense_f16{});
    check(eq::dense_bf16{});
}

TEST_CASE("X^T X in float slices added in float64 (the Hessian) against float64", "[kernels][packed]") {
    // 70 columns (not a multiple of 6 or 16), 600 tokens: three slices.
    const std::size_t n = 70, T = 600;
    std::vector<float> x = normals(T * n, 3);
    for (std::size_t t = 0; t < T; ++t) x[t * n + 5] += 20.0f;  // a channel with a large mean, as LLMs have
    std::vector<double> c1(n * n, 0.0), c2(n * n, 0.0);
    eq::thread_pool one(1), two(2);
    eq::linalg::gram_lower_add({x.data(), T, n}, c1.data(), n, one);
    eq::linalg::gram_lower_add({x.data(), T, n}, c2.data(), n, two);
    double e = 0, r = 0;
    bool same = true;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j <= i; ++j) {
            double s = 0;
            for (std::size_t t = 0; t < T; ++t) s += double(x[t * n + i]) * x[t * n + j];
            e += (c1[i * n + j] - s) * (c1[i * n + j] - s), r += s * s;
            same = same && c1[i * n + j] == c2[i * n + j];
        }
    CHECK(same);
    CHECK(std::sqrt(e / r) <= gram_vs_f64_budget);
    // input_stats takes the same route: its Hessian is 2 X^T X / n.
    eq::input_stats st(n);
    st.add({x.data(), T, n}, two);
    const std::vector<double> h = st.hessian();
    CHECK(h[5 * n + 3] == (2.0 / double(T)) * c1[5 * n + 3]);
    CHECK(h[3 * n + 5] == h[5 * n + 3]);
}

TEST_CASE("gemm_add_f32: C += A B against float64, strided operands", "[kernels][packed]") {
    const std::size_t M = 101, N = 77, K = 300, lda = 310, ldb = 90, ldc = 80;
    const std::vector<float> a = normals(M * lda, 4), b = normals(K * ldb, 5), c0 = normals(M * ldc, 6);
    std::vector<float> c = c0;
    eq::thread_pool two(2);
    eq::linalg::gemm_add_f32(M, N, K, a.data(), lda, b.data(), ldb, c.data(), ldc, two);
    double e = 0, r = 0;
    for (std::size_t i = 0; i < M; ++i) {
        for (std::size_t j = 0; j < N; ++j) {
            double s = c0[i * ldc + j];
            for (std::size_t k = 0; k < K; ++k) s += double(a[i * lda + k]) * b[k * ldb + j];
            e += (c[i * ldc + j] - s) * (c[i * ldc + j] - s), r += s * s;
        }
        for (std::size_t j = N; j < ldc; ++j) CHECK(c[i * ldc + j] == c0[i * ldc + j]);  // outside C: untouched
    }
    CHECK(std::sqrt(e / r) <= packed_vs_f64_budget);
}
