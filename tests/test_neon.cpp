// The NEON backend (backend::neon_a57, kernel/neon/) against the scalar reference. Built for
// aarch64 (cmake/toolchains/jetson-nano.cmake, run under qemu-aarch64 -cpu cortex-a57) it
// checks every width, zero-point mode, group size and code-book; built anywhere else it only
// checks that no NEON backend was selected.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <edgeq/edgeq.hpp>

namespace eq = edgeq;

#if EDGEQ_HAS_NEON

namespace {

// Named error budgets (relative L2 over the output vector). The NEON kernels compute the same
// integer chunk sums and the same products as the reference; only the order of float
// additions differs.
constexpr double neon_q8_vs_scalar_budget = 1e-5;
constexpr double neon_fp32_vs_scalar_budget = 1e-5;
constexpr double neon_gemm_vs_scalar_budget = 1e-5;

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
    double e = 0, n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = double(a[i]) - double(ref[i]);
        e += d * d, n += double(ref[i]) * double(ref[i]);
    }
    return n > 0 ? std::sqrt(e / n) : std::sqrt(e);
}

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
    p.x[3] = 25.0f;  // an activation outlier
    return p;
}

using neon = eq::backend::neon_a57;
using scalar = eq::backend::scalar;

template <class F>
void check_view(const eq::qview<F>& w, const std::vector<float>& x) {
    const std::size_t rows = w.rows, cols = w.cols;
    std::vector<eq::q8_block> xq(cols / 32);
    eq::quantize_activations(x.data(), cols, xq.data());
    eq::thread_pool one(1), two(2);

    // int8 activations: the NEON escape.
    std::vector<float> ref(rows, NAN), y(rows, NAN), y2(rows, NAN);
    eq::gemv_q8<scalar>(w, xq.data(), ref.data(), one);
    eq::gemv_q8<neon>(w, xq.data(), y.data(), one);
    CHECK(rel_l2(y, ref) <= neon_q8_vs_scalar_budget);
    eq::gemv_q8<neon>(w, xq.data(), y2.data(), two);
    CHECK(y2 == y);  // threads split rows, never a row's sum

    // fp32 activations.
    eq::gemv<scalar>(w, x.data(), ref.data(), one);
    eq::gemv<neon>(w, x.data(), y.data(), one);
    CHECK(rel_l2(y, ref) <= neon_fp32_vs_scalar_budget);
    eq::gemv<neon>(w, x.data(), y2.data(), two);
    CHECK(y2 == y);

    // Dequantization: the same up to one rounding of d * v - d * z.
    std::vector<float> row(cols), row_ref(cols);
    double worst = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        eq::dequantize_row<neon>(w, r, row.data());
        eq::dequantize_row<scalar>(w, r, row_ref.data());
        for (std::size_t c = 0; c < cols; ++c) worst = std::max(worst, double(std::fabs(row[c] - row_ref[c])));
    }
    CHECK(worst <= 1e-6);

    // GEMM over 5 tokens (odd: exercises the two-token tail) against the scalar GEMM.
    const std::size_t n = 5;
    std::vector<float> xs(n * cols), ys(n * rows, NAN), ys_ref(n * rows, NAN);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < cols; ++c) xs[t * cols + c] = x[(c + 7 * t) % cols] * (t % 2 ? -1.0f : 1.0f);
    const eq::matrix_view<const float> xv(xs.data(), n, cols);
    eq::gemm<neon>(w, xv, eq::matrix_view<float>(ys.data(), n, rows), two);
    eq::gemm<scalar>(w, xv, eq::matrix_view<float>(ys_ref.data(), n, rows), one);
    for (std::size_t t = 0; t < n; ++t) {
        const std::vector<float> yt(ys.begin() + long(t * rows), ys.begin() + long((t + 1) * rows));
        const std::vector<float> rt(ys_ref.begin() + long(t * rows), ys_ref.begin() + long((t + 1) * rows));
        INFO("token " << t);
        CHECK(rel_l2(yt, rt) <= neon_gemm_vs_scalar_budget);
    }
}

template <class S>
void check_scheme(const std::string& name, std::size_t rows, std::size_t cols) {
    INFO("scheme " << name << " " << rows << "x" << cols);
    const problem p = make(rows, cols, unsigned(rows * 131 + cols + name.size()));
    const auto q = eq::quantize<S>(eq::matrix_view<const float>(p.w.data(), rows, cols));
    check_view(q.view(), p.x);
}

template <int B, class Zero>
void check_width(const char* zero_name) {
    using namespace eq;
    const std::string base = "int" + std::to_string(B) + "-" + zero_name;
    check_scheme<scheme<bits<B>, group<32>, Zero>>(base + "-g32", 37, 384);
    check_scheme<scheme<bits<B>, group<128>, Zero>>(base + "-g128", 37, 384);
    check_scheme<scheme<bits<B>, per_row, Zero>>(base + "-row", 21, 96);
    check_scheme<scheme<bits<B>, group<64>, Zero, fp32_scale>>(base + "-g64-f32", 19, 256);
}

template <int B>
void check_unpack() {
    std::mt19937 rng(B);
    for (int trial = 0; trial < 200; ++trial) {
        std::uint8_t codes[32], fast[32];
        for (auto& c : codes) c = std::uint8_t(rng() & ((1u << B) - 1u));
        if (trial == 0)
            for (auto& c : codes) c = std::uint8_t((1u << B) - 1u);
        eq::packed_chunk<B> packed;
        eq::pack_chunk<B>(codes, packed.bytes);
        eq::kernel::neon::unpack32<B>(packed.bytes, fast);
        for (int i = 0; i < 32; ++i) REQUIRE(int(fast[i]) == int(codes[i]));
    }
}

// A matrix whose every code is `code`, scale 1, against activations that are all `xv`:
// the extremes of the int8 products.
template <class S>
void check_extreme(int code, int xv) {
    using F = eq::format_of<S>;
    INFO("bits " << F::bits << " code " << code << " x " << xv);
    const std::size_t rows = 3, cols = 256;
    eq::qmatrix<F> m(rows, cols);
    std::vector<std::uint8_t> codes(cols, std::uint8_t(code));
    for (std::size_t r = 0; r < rows; ++r) eq::pack_row(m, r, codes.data());
    for (std::size_t i = 0; i < F::n_scales(rows, cols); ++i) m.scales()[i] = F::scale_type::from_float(1.0f);
    if (F::asymmetric)
        for (std::size_t i = 0; i < F::n_scales(rows, cols); ++i) m.zeros()[i] = std::uint8_t(code / 3);
    std::vector<eq::q8_block> xq(cols / 32);
    for (auto& b : xq) {
        b.d = 0.5f;
        for (auto& v : b.qs) v = std::int8_t(xv);
        b.s = b.d * float(32 * xv);
    }
    std::vector<float> ref(rows, NAN), y(rows, NAN);
    eq::thread_pool one(1);
    eq::gemv_q8<scalar>(m.view(), xq.data(), ref.data(), one);
    eq::gemv_q8<neon>(m.view(), xq.data(), y.data(), one);
    CHECK(y == ref);  // small integers: exact in any order
}

}  // namespace

TEST_CASE("neon: backend::best is neon_a57 on aarch64", "[neon]") {
    CHECK(std::string(eq::backend::best::name()) == "neon_a57");
}

TEST_CASE("neon: NEON unpacking matches the reference for every width", "[neon]") {
    check_unpack<2>();
    check_unpack<3>();
    check_unpack<4>();
    check_unpack<5>();
    check_unpack<6>();
    check_unpack<8>();
}

TEST_CASE("neon: uniform widths, symmetric, against the scalar reference", "[neon]") {
    check_width<2, eq::symmetric>("sym");
    check_width<3, eq::symmetric>("sym");
    check_width<4, eq::symmetric>("sym");
    check_width<5, eq::symmetric>("sym");
    check_width<6, eq::symmetric>("sym");
    check_width<8, eq::symmetric>("sym");
}

TEST_CASE("neon: uniform widths, asymmetric, against the scalar reference", "[neon]") {
    check_width<2, eq::asymmetric>("asym");
    check_width<3, eq::asymmetric>("asym");
    check_width<4, eq::asymmetric>("asym");
    check_width<5, eq::asymmetric>("asym");
    check_width<6, eq::asymmetric>("asym");
    check_width<8, eq::asymmetric>("asym");
}

TEST_CASE("neon: NF4 with and without double quantization", "[neon]") {
    using namespace eq;
    check_scheme<scheme<nf4>>("nf4-g64", 37, 384);
    check_scheme<scheme<nf4, group<32>>>("nf4-g32", 37, 384);
    check_scheme<scheme<nf4, group<128>, fp32_scale>>("nf4-g128-f32", 37, 384);
    check_scheme<scheme<nf4, per_row>>("nf4-row", 21, 96);
    check_scheme<scheme<nf4, double_quant>>("nf4-g64-dq", 300, 512);  // 2400 scales: 10 dq blocks
    check_scheme<scheme<nf4, group<32>, double_quant>>("nf4-g32-dq", 37, 384);
}

TEST_CASE("neon: int8 products at the ends of their ranges do not overflow", "[neon]") {
    using namespace eq;
    for (int xv : {-128, -127, 127}) {
        check_extreme<scheme<bits<8>, group<32>>>(0, xv);    // v = -128
        check_extreme<scheme<bits<8>, group<32>>>(255, xv);  // v = 127
        check_extreme<scheme<bits<8>, group<64>, asymmetric>>(0, xv);
        check_extreme<scheme<bits<8>, group<64>, asymmetric>>(255, xv);
        check_extreme<scheme<bits<6>, group<32>, asymmetric>>(63, xv);
        check_extreme<scheme<bits<5>, group<32>, asymmetric>>(31, xv);
        check_extreme<scheme<bits<3>, group<32>, asymmetric>>(7, xv);
        check_extreme<scheme<bits<2>, group<32>, asymmetric>>(3, xv);
        check_extreme<scheme<nf4, group<32>>>(0, xv);   // -127
        check_extreme<scheme<nf4, group<32>>>(15, xv);  // 127
    }
}

#else  // not an aarch64 NEON build

TEST_CASE("neon: nothing is NEON off aarch64", "[neon]") {
    CHECK(std::string(eq::backend::best::name()) != "neon_a57");
    CHECK(std::string(eq::backend::best::name()).size() > 0);
}

#endif
