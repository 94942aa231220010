// llama.cpp's block formats: the reference decoder against ggml's own (digests of its output in
// tests/data/ggml/decode_digests.txt), the reference kernels against float64, every SIMD level
// against the reference. Blocks are random bytes with sane fp16 scales: every such block is a
// valid input, so no quantizer is needed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <edgeq/edgeq.hpp>
#include <edgeq/format/ggml/grouped_twin.hpp>
#include <edgeq/format/ggml/q4_K_paired.hpp>

#include "data/ggml/decode_blocks.hpp"

namespace eq = edgeq;
namespace gt = edgeq::ggml_test;

namespace {

// Named error budgets (relative L2 over the output vector).
constexpr double simd_vs_scalar_budget = 1e-5;   // float summation order only (integer sums are exact)
constexpr double reference_vs_f64_budget = 1e-5;  // fp32 GEMV: float accumulation against float64
// int8 GEMV against float64 with the activations it sees (dequantized): integer sums are exact,
// what is left is the float combination of block sums, scales and mins.
constexpr double q8_exact_budget = 1e-5;
// int8 GEMV against float64 with the true activations: int8 activation rounding next to the 16x
// outliers (every 97th activation); a Q8_K block shares one scale over 256 activations, so it
// sees an outlier in every block and loses more than a q8_block of 32.
constexpr double q8_activation_budget = 3e-2;
constexpr double q8k_activation_budget = 5e-2;
constexpr double gemm_vs_gemv_budget = 1e-5;

double rel_l2(const std::vector<float>& a, const std::vector<double>& ref) {
    double e = 0, n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) e += (a[i] - ref[i]) * (a[i] - ref[i]), n += ref[i] * ref[i];
    return std::sqrt(e / n);
}
std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

std::map<std::string, std::string> ggml_digests() {
#ifdef EDGEQ_SOURCE_DIR
    const std::string path = std::string(EDGEQ_SOURCE_DIR) + "/tests/data/ggml/decode_digests.txt";
#else
    std::string path = __FILE__;
    path = path.substr(0, path.find_last_of("/\\") + 1) + "data/ggml/decode_digests.txt";
#endif
    std::ifstream in(path);
    std::map<std::string, std::string> m;
    std::string name, n, hex;
    while (in >> name >> n >> hex) m[name] = n + " " + hex;
    return m;
}
std::string hex64(std::uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

template <class B>
using act_t = typename eq::activation_of<eq::ggml_format<B>>::type;

// y = W x in float64 from the rows as the reference decodes them.
template <class B>
std::vector<double> gemv_f64(const eq::qview<eq::ggml_format<B>>& w, const std::vector<float>& x) {
    std::vector<double> y(w.rows);
    std::vector<float> row(w.cols);
    for (std::size_t r = 0; r < w.rows; ++r) {
        eq::ggml::dequantize_row(w.row_blocks(r), row.data(), w.cols);
        double s = 0;
        for (std::size_t c = 0; c < w.cols; ++c) s += double(row[c]) * x[c];
        y[r] = s;
    }
    return y;
}

template <class Backend, class B>
void check_backend(const eq::qview<eq::ggml_format<B>>& w, const std::vector<float>& x, const std::vector<act_t<B>>& xq,
                   const std::vector<float>& y_ref_fp32, const std::vector<float>& y_ref_q8) {
    INFO("backend " << Backend::name());
    eq::thread_pool one(1), two(2);
    std::vector<float> y(w.rows, NAN), y2(w.rows, NAN);

    eq::gemv<Backend>(w, x.data(), y.data(), one);
    CHECK(rel_l2(y, widen(y_ref_fp32)) <= simd_vs_scalar_budget);
    eq::gemv<Backend>(w, x.data(), y2.data(), two);
    CHECK(y2 == y);  // rows are split, never a row's sum: threads change nothing

    eq::gemv_q8<Backend>(w, xq.data(), y.data(), one);
    CHECK(rel_l2(y, widen(y_ref_q8)) <= simd_vs_scalar_budget);
    eq::gemv_q8<Backend>(w, xq.data(), y2.data(), two);
    CHECK(y2 == y);

    std::vector<float> row(w.cols), ref(w.cols);
    bool same = true;
    for (std::size_t r = 0; r < w.rows; ++r) {
        eq::dequantize_row<Backend>(w, r, row.data());
        eq::dequantize_row<eq::backend::scalar>(w, r, ref.data());
        same = same && row == ref;
    }
    CHECK(same);

    // GEMM over 5 tokens against float64 GEMV per token.
    const std::size_t n = 5;
    std::vector<float> xs(n * w.cols), ys(n * w.rows, NAN);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < w.cols; ++c) xs[t * w.cols + c] = x[(c + 7 * t) % w.cols] * (t % 2 ? -1.0f : 1.0f);
    eq::gemm<Backend>(w, eq::matrix_view<const float>(xs.data(), n, w.cols), eq::matrix_view<float>(ys.data(), n, w.rows), two);
    for (std::size_t t = 0; t < n; ++t) {
        std::vector<float> xt(xs.begin() + long(t * w.cols), xs.begin() + long((t + 1) * w.cols));
        std::vector<float> yt(ys.begin() + long(t * w.rows), ys.begin() + long((t + 1) * w.rows));
        CHECK(rel_l2(yt, gemv_f64(w, xt)) <= gemm_vs_gemv_budget);
    }
}

template <class B>
void check_type(std::size_t rows, std::size_t cols) {
    INFO("type " << B::name() << " " << rows << "x" << cols);
    constexpr std::size_t act_weights = sizeof(act_t<B>) == sizeof(eq::q8_block) ? 32 : 256;
    std::vector<B> blocks(rows * cols / B::weights);
    gt::fill_blocks(blocks.data(), blocks.size(), std::uint64_t(B::type_id) * 1000 + cols);
    eq::qview<eq::ggml_format<B>> w;
    w.rows = rows, w.cols = cols, w.blocks = blocks.data();

    std::vector<float> x(cols);
    gt::random_floats(x.data(), cols, cols + 1);
    std::vector<act_t<B>> xq(cols / act_weights);
    eq::quantize_activations(x.data(), cols, xq.data());
    std::vector<float> xd(cols);  // the activations the int8 path sees
    for (std::size_t c = 0; c < cols; ++c) xd[c] = xq[c / act_weights].d * float(xq[c / act_weights].qs[c % act_weights]);

    eq::thread_pool one(1);
    std::vector<float> y(rows, NAN), yq(rows, NAN);
    eq::gemv<eq::backend::scalar>(w, x.data(), y.data(), one);
    eq::gemv_q8<eq::backend::scalar>(w, xq.data(), yq.data(), one);
    const std::vector<double> ref = gemv_f64(w, x);
    CHECK(rel_l2(y, ref) <= reference_vs_f64_budget);
    CHECK(rel_l2(yq, gemv_f64(w, xd)) <= q8_exact_budget);
    CHECK(rel_l2(yq, ref) <= (act_weights == 32 ? q8_activation_budget : q8k_activation_budget));

#if XSIMD_WITH_SSE2
    check_backend<eq::backend::simd<xsimd::sse2>>(w, x, xq, y, yq);
#endif
#if XSIMD_WITH_NEON64
    check_backend<eq::backend::simd<xsimd::neon64>>(w, x, xq, y, yq);
#endif
    check_backend<eq::backend::simd<xsimd::default_arch>>(w, x, xq, y, yq);
    check_backend<eq::backend::best>(w, x, xq, y, yq);
}

template <class B>
void check_digest(const std::map<std::string, std::string>& golden) {
    INFO("type " << B::name());
    const std::size_t nb = gt::digest_blocks;
    std::vector<B> blocks(nb);
    gt::fill_blocks(blocks.data(), nb, std::uint64_t(B::type_id));
    std::vector<float> y(nb * B::weights);
    eq::ggml::dequantize_row(blocks.data(), y.data(), y.size());
    REQUIRE(golden.count(B::name()));
    CHECK(golden.at(B::name()) == std::to_string(nb) + " " + hex64(gt::fnv1a(y.data(), y.size())));
    // Every backend's dequantize_row is the same, bit for bit.
    eq::qview<eq::ggml_format<B>> w;
    w.rows = 1, w.cols = y.size(), w.blocks = blocks.data();
    std::vector<float> z(y.size());
    eq::dequantize_row<eq::backend::best>(w, 0, z.data());
    CHECK(z == y);
}

}  // namespace

TEST_CASE("ggml decode: bit-identical to llama.cpp's dequantize_row_* (digests)", "[ggml]") {
    const auto golden = ggml_digests();
    REQUIRE(golden.size() >= 13);
    using namespace eq::ggml;
    check_digest<block_q4_0>(golden);
    check_digest<block_q4_1>(golden);
    check_digest<block_q5_0>(golden);
    check_digest<block_q5_1>(golden);
    check_digest<block_q8_0>(golden);
    check_digest<block_q2_K>(golden);
    check_digest<block_q3_K>(golden);
    check_digest<block_q4_K>(golden);
    check_digest<block_q5_K>(golden);
    check_digest<block_q6_K>(golden);
    check_digest<block_iq4_nl>(golden);
    check_digest<block_iq4_xs>(golden);
}

TEST_CASE("ggml activations: Q8_K rounding identical to llama.cpp's quantize_row_q8_K_ref", "[ggml]") {
    const auto golden = ggml_digests();
    REQUIRE(golden.count("Q8_K"));
    const std::size_t nb = gt::digest_blocks;
    std::vector<float> x(nb * 256);
    gt::random_floats(x.data(), x.size(), 15);
    std::vector<eq::ggml::block_q8_K> q(nb);
    eq::quantize_activations(x.data(), x.size(), q.data());
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& b : q) {
        h = gt::fnv1a_bytes(&b.d, sizeof b.d, h);
        h = gt::fnv1a_bytes(b.qs, sizeof b.qs, h);
        h = gt::fnv1a_bytes(b.bsums, sizeof b.bsums, h);
    }
    CHECK(golden.at("Q8_K") == std::to_string(nb) + " " + hex64(h));
    static_assert(std::is_same<act_t<eq::ggml::block_q4_K>, eq::ggml::block_q8_K>::value, "k-quants take Q8_K");
    static_assert(std::is_same<act_t<eq::ggml::block_iq4_xs>, eq::ggml::block_q8_K>::value, "IQ4_XS takes Q8_K");
    static_assert(std::is_same<act_t<eq::ggml::block_q4_0>, eq::q8_block>::value, "legacy blocks take q8_block");
}

TEST_CASE("ggml kernels: legacy 32-weight blocks, every backend against the reference and float64", "[ggml]") {
    using namespace eq::ggml;
    check_type<block_q4_0>(37, 512);
    check_type<block_q4_1>(37, 512);
    check_type<block_q5_0>(37, 512);
    check_type<block_q5_1>(37, 512);
    check_type<block_q8_0>(37, 512);
    check_type<block_iq4_nl>(37, 512);
    check_type<block_q4_0>(17, 96);  // a row of three blocks
}

TEST_CASE("ggml kernels: k-quants and IQ4_XS, every backend against the reference and float64", "[ggml]") {
    using namespace eq::ggml;
    check_type<block_q2_K>(37, 512);
    check_type<block_q3_K>(37, 512);
    check_type<block_q4_K>(37, 512);
    check_type<block_q5_K>(37, 512);
    check_type<block_q6_K>(37, 512);
    check_type<block_iq4_xs>(37, 512);
    check_type<block_q4_K>(19, 256);  // one super-block per row
}

// Q4_0 / Q8_0 repacked into int4-g32 / int8-g32 (what the GPU engine uploads): every weight the
// same float, bit for bit, converted a few rows at a time as the engine does.
template <class B>
void check_twin(std::size_t rows, std::size_t cols, std::size_t rows_per_call) {
    INFO("type " << B::name() << " " << rows << "x" << cols);
    using F = typename eq::ggml::grouped_twin<B>::format;
    std::vector<B> blocks(rows * cols / B::weights);
    gt::fill_blocks(blocks.data(), blocks.size(), std::uint64_t(B::type_id) * 7 + cols);
    std::vector<std::uint8_t> blob(F::storage_bytes(rows, cols), 0xa5);
    for (std::size_t r0 = 0; r0 < rows; r0 += rows_per_call) {
        const std::size_t n = std::min(rows_per_call, rows - r0);
        eq::ggml::to_grouped_twin(blocks.data() + r0 * (cols / B::weights), n, cols,
                                  blob.data() + r0 * F::row_code_bytes(cols),
                                  reinterpret_cast<eq::fp16_t*>(blob.data() + F::scales_offset(rows, cols)) + r0 * (cols / 32));
    }
    const auto twin = eq::qview<F>::from_blob(blob.data(), rows, cols);
    std::vector<float> a(cols), b(cols);
    std::size_t differ = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        eq::ggml::dequantize_row(blocks.data() + r * (cols / B::weights), a.data(), cols);
        eq::kernel::dequantize_row(eq::backend::scalar{}, twin, r, b.data());
        for (std::size_t c = 0; c < cols; ++c) differ += std::memcmp(&a[c], &b[c], sizeof(float)) != 0;
    }
    CHECK(differ == 0);
    CHECK(F::bits_per_weight() == Approx(sizeof(B) * 8.0 / B::weights));
}

TEST_CASE("ggml Q4_0 and Q8_0 as their grouped twins int4-g32 and int8-g32: identical weights", "[ggml]") {
    using namespace eq::ggml;
    check_twin<block_q4_0>(37, 512, 5);
    check_twin<block_q8_0>(37, 512, 5);
    check_twin<block_q8_0>(3, 96, 1);
}

// Q4_K paired (what the GPU engine uploads Q4_K as): decoded by its own layout's rules (byte i of
// sub-block j holds weights 32 j + i and 32 j + 16 + i; k4_paired_scale_min gives its scale and
// minimum), every weight is the float that dequantize_row gives for the original block, bit for
// bit; unpair_codes gives the block back.
TEST_CASE("ggml Q4_K paired: the same weights, and back to Q4_K byte for byte", "[ggml]") {
    using namespace eq::ggml;
    std::vector<block_q4_K> blocks(64);
    gt::fill_blocks(blocks.data(), blocks.size(), 4242);
    std::vector<block_q4_K_paired> paired(blocks.size());
    pair_codes(blocks.data(), blocks.size(), paired.data());
    std::size_t differ = 0, bytes_differ = 0;
    for (std::size_t k = 0; k < blocks.size(); ++k) {
        float want[256];
        dequantize_row(&blocks[k], want, 256);
        const block_q4_K_paired& p = paired[k];
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            k4_paired_scale_min(j, p.scales, sc, m);
            const float dl = p.d.to_float() * float(sc), ml = p.dmin.to_float() * float(m);
            for (int i = 0; i < 16; ++i) {
                const float lo = dl * float(p.qs[16 * j + i] & 15) - ml, hi = dl * float(p.qs[16 * j + i] >> 4) - ml;
                differ += std::memcmp(&lo, &want[32 * j + i], 4) != 0;
                differ += std::memcmp(&hi, &want[32 * j + 16 + i], 4) != 0;
            }
        }
        const block_q4_K back = unpair_codes(p);
        bytes_differ += std::memcmp(&back, &blocks[k], sizeof back) != 0;
    }
    CHECK(differ == 0);
    CHECK(bytes_differ == 0);
    static_assert(sizeof(block_q4_K_paired) == 144, "the same size as Q4_K");
}
