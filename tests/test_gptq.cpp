// The calibration algorithms on small synthetic layers with known answers: the input statistics
// and imatrix files, GPTQ (every format family, act-order, dead inputs, H = I is RTN, the proxy
// loss it reports), AWQ (alpha 0 is RTN, folding keeps the float product).
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <edgeq/algo/awq.hpp>
#include <edgeq/algo/gptq.hpp>
#include <edgeq/algo/hessian.hpp>
#include <edgeq/edgeq.hpp>

namespace eq = edgeq;

namespace {

struct matrix {
    std::size_t rows, cols;
    std::vector<float> v;
    eq::matrix_view<const float> view() const { return {v.data(), rows, cols}; }
    eq::matrix_view<float> mview() { return {v.data(), rows, cols}; }
};

matrix gaussian(std::size_t rows, std::size_t cols, unsigned seed, float sigma = 0.02f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, sigma);
    matrix m{rows, cols, std::vector<float>(rows * cols)};
    for (float& x : m.v) x = n(rng);
    return m;
}

// Calibration inputs with correlated channels and a few loud ones, as LLM activations: each
// token mixes 16 latent factors into every channel, plus channel noise; channel c is scaled by
// 1 + 8 [c % 61 == 0].
matrix correlated_inputs(std::size_t tokens, std::size_t cols, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    constexpr std::size_t factors = 16;
    std::vector<float> mix(factors * cols);
    for (float& x : mix) x = n(rng);
    matrix x{tokens, cols, std::vector<float>(tokens * cols)};
    std::vector<float> z(factors);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (float& f : z) f = n(rng);
        for (std::size_t c = 0; c < cols; ++c) {
            float s = 0.3f * n(rng);
            for (std::size_t k = 0; k < factors; ++k) s += z[k] * mix[k * cols + c];
            x.v[t * cols + c] = s * (c % 61 == 0 ? 9.0f : 1.0f);
        }
    }
    return x;
}

template <class F>
matrix dequantize(const eq::qmatrix<F>& q) {
    matrix m{q.rows(), q.cols(), std::vector<float>(q.rows() * q.cols())};
    for (std::size_t r = 0; r < q.rows(); ++r) eq::dequantize_row<eq::backend::scalar>(q.view(), r, &m.v[r * q.cols()]);
    return m;
}

// ||X W^T - X Q^T||_F / ||X W^T||_F.
double output_error(const matrix& w, const matrix& q, const matrix& x) {
    double e = 0, s = 0;
    for (std::size_t t = 0; t < x.rows; ++t)
        for (std::size_t r = 0; r < w.rows; ++r) {
            double yw = 0, yq = 0;
            for (std::size_t c = 0; c < w.cols; ++c) {
                yw += double(x.v[t * x.cols + c]) * w.v[r * w.cols + c];
                yq += double(x.v[t * x.cols + c]) * q.v[r * q.cols + c];
            }
            e += (yw - yq) * (yw - yq), s += yw * yw;
        }
    return std::sqrt(e / s);
}

std::vector<double> hessian_of(const matrix& x) {
    eq::input_stats st(x.cols);
    st.add(x.view());
    return st.hessian();
}

std::vector<double> identity(std::size_t n) {
    std::vector<double> h(n * n, 0.0);
    for (std::size_t i = 0; i < n; ++i) h[i * n + i] = 1.0;
    return h;
}

template <class F>
bool same_bytes(const eq::qmatrix<F>& a, const eq::qmatrix<F>& b) {
    return a.storage_bytes() == b.storage_bytes() &&
           std::equal(a.blob().data(), a.blob().data() + a.storage_bytes(), b.blob().data());
}

// tr(D H D^T) with D = W - Q and H dampened as GPTQ did.
double proxy_loss(const matrix& w, const matrix& q, const std::vector<double>& h, double damp) {
    const std::size_t n = w.cols;
    double mean = 0;
    for (std::size_t i = 0; i < n; ++i) mean += h[i * n + i] / double(n);
    double l = 0;
    std::vector<double> d(n);
    for (std::size_t r = 0; r < w.rows; ++r) {
        for (std::size_t c = 0; c < n; ++c) d[c] = double(w.v[r * n + c]) - q.v[r * n + c];
        for (std::size_t i = 0; i < n; ++i) {
            double hi = damp * mean * d[i];
            for (std::size_t j = 0; j < n; ++j) hi += h[i * n + j] * d[j];
            l += d[i] * hi;
        }
    }
    return l;
}

using int4_g128 = eq::format_of<eq::scheme<eq::bits<4>, eq::group<128>>>;
using int3_g64 = eq::format_of<eq::scheme<eq::bits<3>, eq::group<64>>>;
using int3_g64_asym = eq::format_of<eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric>>;
using int2_g32 = eq::format_of<eq::scheme<eq::bits<2>, eq::group<32>>>;
using int8_row = eq::format_of<eq::scheme<eq::bits<8>, eq::per_row, eq::fp32_scale>>;
using nf4_g64 = eq::format_of<eq::scheme<eq::nf4>>;
using nf4_g64_dq = eq::format_of<eq::scheme<eq::nf4, eq::double_quant>>;
using q4_k = eq::ggml_format<eq::ggml::block_q4_K>;
using q4_0 = eq::ggml_format<eq::ggml::block_q4_0>;

// The shared layer: 64 x 512 weights, 2048 correlated calibration tokens.
struct problem {
    matrix w = gaussian(64, 512, 7);
    matrix x = correlated_inputs(2048, 512, 11);
    std::vector<double> h = hessian_of(x);
};
const problem& layer() {
    static const problem p;
    return p;
}

// GPTQ must beat RTN on its own calibration data, and its reported loss must be the proxy loss.
template <class F>
void check_beats_rtn(const char* name, double max_ratio) {
    const problem& p = layer();
    eq::gptq_report rep;
    const auto g = eq::gptq_quantize<F>(p.w.view(), p.h, {}, eq::default_pool(), &rep);
    const auto r = eq::format_quantizer<F>::run(p.w.view(), {}, eq::default_pool());
    const matrix gd = dequantize(g), rd = dequantize(r);
    const double eg = output_error(p.w, gd, p.x), er = output_error(p.w, rd, p.x);
    INFO(name << ": GPTQ output error " << eg << ", RTN " << er << ", ratio " << eg / er);
    CHECK(eg < max_ratio * er);
    const double direct = proxy_loss(p.w, gd, p.h, rep.damp);
    INFO("reported loss " << rep.loss << ", tr(D H D^T) " << direct);
    CHECK(std::fabs(rep.loss - direct) <= 2e-3 * direct);
}

}  // namespace

TEST_CASE("input_stats: H = 2 X^T X / n, E[x^2], E|x|, in batches", "[hessian]") {
    const matrix x = correlated_inputs(300, 96, 3);
    eq::input_stats st(96);
    st.add({x.v.data(), 100, 96});
    st.add({x.v.data() + 100 * 96, 200, 96});
    REQUIRE(st.samples() == 300);
    const auto h = st.hessian();
    const auto imp = st.importance();
    const auto ma = st.mean_abs();
    // X^T X is summed in float over slices of 256 tokens (linalg::gram_lower_add), the slices in
    // float64: each entry is within the float summation bound of a 256-term slice,
    // 256 u sum_t |x_ti x_tj| (u = 2^-24), of the float64 sum.
    const double slice_bound = 256 * std::ldexp(1.0, -24);
    double worst = 0, worst_rel = 0;
    for (std::size_t i = 0; i < 96; ++i)
        for (std::size_t j = 0; j < 96; ++j) {
            double s = 0, sa = 0;
            for (std::size_t t = 0; t < 300; ++t)
                s += double(x.v[t * 96 + i]) * x.v[t * 96 + j], sa += std::fabs(double(x.v[t * 96 + i]) * x.v[t * 96 + j]);
            const double err = std::fabs(h[i * 96 + j] - 2 * s / 300);
            worst = std::max(worst, err / (slice_bound * 2 * sa / 300));
            worst_rel = std::max(worst_rel, err / (1 + std::fabs(2 * s / 300)));
            CHECK(h[i * 96 + j] == h[j * 96 + i]);
        }
    INFO("worst error / bound " << worst << ", worst error / (1 + |H|) " << worst_rel);
    CHECK(worst <= 1.0);
    CHECK(worst_rel < 1e-5);
    for (std::size_t c = 0; c < 96; ++c) {
        double s2 = 0, sa = 0;
        for (std::size_t t = 0; t < 300; ++t) s2 += double(x.v[t * 96 + c]) * x.v[t * 96 + c], sa += std::fabs(x.v[t * 96 + c]);
        CHECK(imp[c] == Approx(s2 / 300).epsilon(1e-6));
        CHECK(ma[c] == Approx(sa / 300).epsilon(1e-6));
        CHECK(float(h[c * 96 + c] / 2) == Approx(imp[c]).epsilon(1e-6));
    }
    CHECK_THROWS_WITH(st.add({x.v.data(), 10, 95}), Catch::Contains("columns"));
}

TEST_CASE("cholesky_lower: L L^T = A on a threaded, blocked 300 x 300", "[hessian]") {
    const matrix x = correlated_inputs(400, 300, 5);
    auto a = hessian_of(x);
    for (std::size_t i = 0; i < 300; ++i) a[i * 300 + i] += 0.01;
    auto l = a;
    eq::thread_pool pool(2);
    REQUIRE(eq::linalg::cholesky_lower(l.data(), 300, 300, pool));
    double worst = 0;
    for (std::size_t i = 0; i < 300; ++i)
        for (std::size_t j = 0; j <= i; ++j) {
            double s = 0;
            for (std::size_t k = 0; k <= j; ++k) s += l[i * 300 + k] * l[j * 300 + k];
            worst = std::max(worst, std::fabs(s - a[i * 300 + j]));
        }
    CHECK(worst < 1e-9);
    std::vector<double> neg(4, 0.0);
    neg[0] = 1, neg[3] = -1;
    CHECK_FALSE(eq::linalg::cholesky_lower(neg.data(), 2, 2, pool));
}

TEST_CASE("imatrix files: llama.cpp's legacy layout round trip, corrupt files refused", "[hessian]") {
    const std::string path = "test_gptq_imatrix.dat";
    eq::imatrix_file f;
    f.entries["blk.0.ffn_up.weight"] = {{0.5f, 1.25f, 3.0f, 0.0f}, 10};
    f.entries["blk.0.attn_q.weight"] = {{2.0f, 4.0f}, 1};
    f.last_call = 10;
    f.dataset = "calib.txt";
    eq::input_stats st(3, false);
    const float acts[6] = {1, 2, 3, -1, 0, 1};
    st.add({acts, 2, 3});
    st.add({acts, 1, 3});
    f.entries["blk.1.ffn_down.weight"] = eq::to_imatrix(st);
    CHECK(f.entries["blk.1.ffn_down.weight"].ncall == 2);
    CHECK(f.entries["blk.1.ffn_down.weight"].values == std::vector<float>{1.0f, 8.0f / 3.0f, 19.0f / 3.0f});
    eq::save_imatrix(path, f);
    const auto g = eq::load_imatrix(path);
    REQUIRE(g.entries.size() == 3);
    CHECK(g.entries.at("blk.1.ffn_down.weight").values[2] == Approx(19.0 / 3.0).epsilon(1e-6));
    CHECK(g.entries.at("blk.0.ffn_up.weight").values == f.entries["blk.0.ffn_up.weight"].values);
    CHECK(g.entries.at("blk.0.ffn_up.weight").ncall == 10);
    CHECK(g.entries.at("blk.0.attn_q.weight").values == f.entries["blk.0.attn_q.weight"].values);
    CHECK(g.last_call == 10);
    CHECK(g.dataset == "calib.txt");

    // The stored values are E[x^2] * ncall, as llama-imatrix writes them.
    std::string bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto write = [&](const std::string& b) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(b.data(), std::streamsize(b.size()));
    };
    // Entries are written in name order: attn_q first; its first value sits after
    // n_entries, len, name (19 bytes), ncall, nval.
    float first;
    std::memcpy(&first, bytes.data() + 4 + 4 + 19 + 4 + 4, 4);
    CHECK(first == 2.0f);

    write(bytes.substr(0, bytes.size() - 20));
    CHECK_THROWS_WITH(eq::load_imatrix(path), Catch::Contains("truncated") || Catch::Contains("bad") ||
                                                  Catch::Contains("claims"));
    std::string bad = bytes;
    bad[4] = char(0xff), bad[5] = char(0xff), bad[6] = char(0xff), bad[7] = char(0x7f);  // name length
    write(bad);
    CHECK_THROWS_WITH(eq::load_imatrix(path), Catch::Contains("name length"));
    write(bytes + "xyz");
    CHECK_THROWS_WITH(eq::load_imatrix(path), Catch::Contains("trailing"));
    write(std::string(4, '\0'));
    CHECK_THROWS_WITH(eq::load_imatrix(path), Catch::Contains("no entries"));
    std::remove(path.c_str());
    CHECK_THROWS_WITH(eq::load_imatrix(path), Catch::Contains("cannot open"));
}

TEST_CASE("ggml block codes: re-encoding a block's own values under its scales gives its bytes", "[gptq]") {
    std::vector<float> x(512), y(512);
    std::mt19937 rng(5);
    std::student_t_distribution<float> t(4.0f);
    for (float& v : x) v = 0.02f * t(rng);
    auto check = [&](auto tag) {
        using B = decltype(tag);
        using codes = eq::ggml::block_codes<B>;
        std::vector<B> blocks(512 / B::weights), again;
        eq::ggml::quantize_row<B>(x.data(), blocks.data(), 512);
        again = blocks;
        eq::ggml::dequantize_row(blocks.data(), y.data(), 512);
        for (std::size_t b = 0; b < blocks.size(); ++b) {
            std::uint8_t c[256];
            for (int k = 0; k < B::weights; ++k) {
                float d, m;
                codes::scale(blocks[b], k, d, m);
                c[k] = std::uint8_t(eq::ggml::nearest_code<B>(y[b * B::weights + k], d, m));
            }
            codes::pack(again[b], c);
        }
        INFO(B::name());
        CHECK(std::memcmp(blocks.data(), again.data(), blocks.size() * sizeof(B)) == 0);
    };
    check(eq::ggml::block_q4_0{});
    check(eq::ggml::block_q4_1{});
    check(eq::ggml::block_q5_0{});
    check(eq::ggml::block_q5_1{});
    check(eq::ggml::block_q8_0{});
    check(eq::ggml::block_iq4_nl{});
    check(eq::ggml::block_q2_K{});
    check(eq::ggml::block_q3_K{});
    check(eq::ggml::block_q4_K{});
    check(eq::ggml::block_q5_K{});
    check(eq::ggml::block_q6_K{});
    check(eq::ggml::block_iq4_xs{});
}

TEST_CASE("gptq beats RTN on its calibration data, and reports tr((W-Q) H (W-Q)^T)", "[gptq]") {
    check_beats_rtn<int4_g128>("int4-g128", 0.9);
    check_beats_rtn<int3_g64>("int3-g64", 0.9);
    check_beats_rtn<nf4_g64>("nf4-g64", 0.9);
    check_beats_rtn<q4_k>("Q4_K", 0.9);
    check_beats_rtn<q4_0>("Q4_0", 0.9);
}

TEST_CASE("gptq with H = I is RTN", "[gptq]") {
    const matrix w = gaussian(24, 256, 9);
    const auto h = identity(256);
    auto same = [&](auto tag, const char* name) {
        using F = decltype(tag);
        const auto g = eq::gptq_quantize<F>(w.view(), h);
        const auto r = eq::quantize_format<F>(w.view());
        INFO(name);
        CHECK(same_bytes(g, r));
    };
    same(int4_g128{}, "int4-g128");
    same(int3_g64_asym{}, "int3-g64-asym");
    same(int2_g32{}, "int2-g32");
    same(int8_row{}, "int8-row-f32");
    same(nf4_g64{}, "nf4-g64");
    // With the clip search on as well.
    eq::gptq_options o;
    o.quant.fit.clip_search = true;
    CHECK(same_bytes(eq::gptq_quantize<int3_g64_asym>(w.view(), h, o),
                     eq::quantize_format<int3_g64_asym>(w.view(), o.quant)));
    // llama.cpp types: the same scales; codes nearest under the stored (fp16) scale.
    const auto g = dequantize(eq::gptq_quantize<q4_k>(w.view(), h));
    const auto r = dequantize(eq::format_quantizer<q4_k>::run(w.view(), {}, eq::default_pool()));
    CHECK(g.v == r.v);
    const auto g0 = dequantize(eq::gptq_quantize<q4_0>(w.view(), h));
    const auto r0 = dequantize(eq::format_quantizer<q4_0>::run(w.view(), {}, eq::default_pool()));
    std::size_t differ = 0;
    for (std::size_t i = 0; i < g0.v.size(); ++i) differ += g0.v[i] != r0.v[i];
    CHECK(differ <= g0.v.size() / 200);  // Q4_0's reference rounds against the unrounded scale
}

TEST_CASE("gptq act-order: stored in the original column order", "[gptq]") {
    const problem& p = layer();
    // A diagonal H moves no error between columns, so any order gives static-group RTN.
    std::vector<double> diag(512 * 512, 0.0);
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(0.1, 10.0);
    for (std::size_t i = 0; i < 512; ++i) diag[i * 512 + i] = u(rng);
    eq::gptq_options ao;
    ao.act_order = true;
    CHECK(same_bytes(eq::gptq_quantize<int4_g128>(p.w.view(), diag, ao), eq::quantize_format<int4_g128>(p.w.view())));
    CHECK(same_bytes(eq::gptq_quantize<int3_g64_asym>(p.w.view(), diag, ao),
                     eq::quantize_format<int3_g64_asym>(p.w.view())));

    // On the correlated layer: still better than RTN, and the loss computed in sweep order is the
    // proxy loss of the stored matrix read in the original order.
    auto check = [&](auto tag, const char* name) {
        using F = decltype(tag);
        eq::gptq_report rep;
        const auto g = eq::gptq_quantize<F>(p.w.view(), p.h, ao, eq::default_pool(), &rep);
        const matrix gd = dequantize(g);
        const matrix rd = dequantize(eq::format_quantizer<F>::run(p.w.view(), {}, eq::default_pool()));
        INFO(name);
        CHECK(output_error(p.w, gd, p.x) < 0.9 * output_error(p.w, rd, p.x));
        const double direct = proxy_loss(p.w, gd, p.h, rep.damp);
        CHECK(std::fabs(rep.loss - direct) <= 2e-3 * direct);
    };
    check(int4_g128{}, "int4-g128");
    check(q4_k{}, "Q4_K");
    eq::gptq_options st;
    st.static_groups = true;
    const auto g = dequantize(eq::gptq_quantize<int4_g128>(p.w.view(), p.h, st));
    CHECK(output_error(p.w, g, p.x) < 0.9 * output_error(p.w, dequantize(eq::quantize_format<int4_g128>(p.w.view())), p.x));
}

TEST_CASE("gptq: a dead input column is zeroed and the rest still quantizes", "[gptq]") {
    const problem& p = layer();
    matrix x = p.x;
    for (std::size_t t = 0; t < x.rows; ++t) x.v[t * x.cols + 5] = 0.0f, x.v[t * x.cols + 300] = 0.0f;
    const auto h = hessian_of(x);
    eq::gptq_report rep;
    const auto g = dequantize(eq::gptq_quantize<int4_g128>(p.w.view(), h, {}, eq::default_pool(), &rep));
    CHECK(rep.dead == 2);
    for (std::size_t r = 0; r < g.rows; ++r) {
        CHECK(g.v[r * g.cols + 5] == 0.0f);
        CHECK(g.v[r * g.cols + 300] == 0.0f);
    }
    for (float v : g.v) REQUIRE(std::isfinite(v));
    CHECK(output_error(p.w, g, x) < 0.9 * output_error(p.w, dequantize(eq::quantize_format<int4_g128>(p.w.view())), x));
}

TEST_CASE("gptq: double-quantized scales, errors", "[gptq]") {
    const problem& p = layer();
    const auto g = dequantize(eq::gptq_quantize<nf4_g64_dq>(p.w.view(), p.h));
    CHECK(output_error(p.w, g, p.x) < 0.9 * output_error(p.w, dequantize(eq::quantize_format<nf4_g64_dq>(p.w.view())), p.x));
    CHECK_THROWS_WITH(eq::gptq_quantize<int4_g128>(p.w.view(), identity(256)), Catch::Contains("Hessian"));
    std::vector<double> neg = identity(512);
    for (std::size_t i = 0; i < 512; ++i) neg[i * 512 + i] = -1.0;
    CHECK_THROWS_WITH(eq::gptq_quantize<int4_g128>(p.w.view(), neg), Catch::Contains("positive definite"));
}

TEST_CASE("awq: alpha 0 is RTN, the search never loses to it, folding keeps the product", "[awq]") {
    const problem& p = layer();
    const std::vector<float> ones = eq::awq_scales(std::vector<float>(512, 0.3f), 0.0f);
    for (float s : ones) REQUIRE(s == 1.0f);

    eq::awq_options only0;
    only0.grid = 1;
    only0.clip_search = false;
    auto r0 = eq::awq_quantize<int4_g128>(p.w.view(), p.x.view(), {}, only0);
    CHECK(r0.alpha == 0.0f);
    CHECK(same_bytes(r0.q, eq::quantize_format<int4_g128>(p.w.view())));
    auto k0 = eq::awq_quantize<q4_k>(p.w.view(), p.x.view(), {}, only0);
    CHECK(same_bytes(k0.q, eq::format_quantizer<q4_k>::run(p.w.view(), {}, eq::default_pool())));

    eq::awq_options o;
    o.clip_search = false;
    auto r = eq::awq_quantize<int3_g64>(p.w.view(), p.x.view(), {}, o);
    INFO("alpha " << r.alpha << ", error " << r.error << ", RTN " << r.error_rtn);
    CHECK(r.error <= r.error_rtn);
    CHECK(r.error < 0.95 * r.error_rtn);  // the loud channels make scaling pay
    // The stored matrix is W diag(s); divided back, its output error is the one the search saw.
    matrix q = dequantize(r.q);
    for (std::size_t i = 0; i < q.v.size(); ++i) q.v[i] /= r.scales[i % 512];
    const double e = output_error(p.w, q, p.x);
    matrix rq = dequantize(eq::quantize_format<int3_g64>(p.w.view()));
    CHECK(e < output_error(p.w, rq, p.x));
    // With the (activation-weighted) clip search, the default, it beats RTN with the clip search.
    const auto rc = eq::awq_quantize<int3_g64>(p.w.view(), p.x.view());
    matrix qc = dequantize(rc.q);
    for (std::size_t i = 0; i < qc.v.size(); ++i) qc.v[i] /= rc.scales[i % 512];
    eq::quant_options clip;
    clip.fit.clip_search = true;
    CHECK(output_error(p.w, qc, p.x) < output_error(p.w, dequantize(eq::quantize_format<int3_g64>(p.w.view(), clip)), p.x));

    // Folding: W (g . x) == (W diag s)((g / s) . x), and through a previous linear.
    matrix w = p.w;
    std::vector<float> g(512), xin(512);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    for (std::size_t c = 0; c < 512; ++c) g[c] = u(rng), xin[c] = u(rng) - 1.0f;
    auto product = [&](const matrix& m, const std::vector<float>& gain) {
        std::vector<double> y(m.rows, 0.0);
        for (std::size_t r2 = 0; r2 < m.rows; ++r2)
            for (std::size_t c = 0; c < m.cols; ++c) y[r2] += double(m.v[r2 * m.cols + c]) * gain[c] * xin[c];
        return y;
    };
    const auto before = product(w, g);
    eq::scale_columns(w.mview(), r.scales);
    eq::fold_awq_into_norm(g.data(), r.scales);
    const auto after = product(w, g);
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(after[i] == Approx(before[i]).epsilon(1e-5).margin(1e-6));

    matrix prev = gaussian(512, 32, 4);
    std::vector<float> h(32, 1.0f), mid(512);
    auto mid_of = [&](const matrix& pv) {
        for (std::size_t c = 0; c < 512; ++c) {
            double s = 0;
            for (std::size_t k = 0; k < 32; ++k) s += double(pv.v[c * 32 + k]) * h[k];
            mid[c] = float(s);
        }
    };
    mid_of(prev);
    std::vector<double> y0(64, 0.0), y1(64, 0.0);
    for (std::size_t r2 = 0; r2 < 64; ++r2)
        for (std::size_t c = 0; c < 512; ++c) y0[r2] += double(p.w.v[r2 * 512 + c]) * mid[c];
    eq::fold_awq_into_rows(prev.mview(), r.scales);
    mid_of(prev);
    for (std::size_t r2 = 0; r2 < 64; ++r2)
        for (std::size_t c = 0; c < 512; ++c) y1[r2] += double(w.v[r2 * 512 + c]) * mid[c];
    for (std::size_t i = 0; i < 64; ++i) CHECK(y1[i] == Approx(y0[i]).epsilon(1e-4).margin(1e-6));
}

TEST_CASE("gptq: the result does not depend on the thread count; importance reaches the fits", "[gptq]") {
    const problem& p = layer();
    eq::thread_pool one(1), three(3);
    eq::gptq_options ao;
    ao.act_order = true;
    CHECK(same_bytes(eq::gptq_quantize<int3_g64>(p.w.view(), p.h, {}, one),
                     eq::gptq_quantize<int3_g64>(p.w.view(), p.h, {}, three)));
    CHECK(same_bytes(eq::gptq_quantize<q4_k>(p.w.view(), p.h, ao, one), eq::gptq_quantize<q4_k>(p.w.view(), p.h, ao, three)));
    eq::input_stats st(512, false);
    st.add(p.x.view());
    const auto imp = st.importance();
    eq::gptq_options io;
    io.quant.importance = imp.data();
    io.quant.fit.clip_search = true;
    const auto plain = eq::gptq_quantize<q4_k>(p.w.view(), p.h);
    const auto weighted = eq::gptq_quantize<q4_k>(p.w.view(), p.h, io);
    CHECK_FALSE(same_bytes(plain, weighted));  // the imatrix path of the type's quantizer ran
    CHECK(output_error(p.w, dequantize(weighted), p.x) <
          0.9 * output_error(p.w, dequantize(eq::format_quantizer<q4_k>::run(p.w.view(), io.quant, eq::default_pool())), p.x));
    const auto wi = dequantize(eq::gptq_quantize<int3_g64>(p.w.view(), p.h, io));
    CHECK(output_error(p.w, wi, p.x) < 0.9 * output_error(p.w, dequantize(eq::quantize_format<int3_g64>(p.w.view())), p.x));
}

TEST_CASE("gptq output is a plain qmatrix: linear_of and the kernels take it", "[gptq]") {
    const problem& p = layer();
    auto g = eq::quantize_gptq<eq::scheme<eq::bits<4>, eq::group<128>>>(p.w.view(), p.h);
    const matrix gd = dequantize(g);
    eq::linear_of<eq::scheme<eq::bits<4>, eq::group<128>>> lin(std::move(g));
    lin.set_activations(eq::activations::f32);
    auto k = eq::gptq_quantize<q4_k>(p.w.view(), p.h);
    const matrix kd = dequantize(k);
    eq::linear_of<eq::scheme<eq::q4_k>> lk(std::move(k));
    lk.set_activations(eq::activations::f32);
    std::vector<float> x(512), y(64), yk(64);
    for (std::size_t c = 0; c < 512; ++c) x[c] = std::sin(0.1f * float(c));
    lin.gemv(x.data(), y.data());
    lk.gemv(x.data(), yk.data());
    for (std::size_t r = 0; r < 64; ++r) {
        double s = 0, sk = 0;
        for (std::size_t c = 0; c < 512; ++c) s += double(gd.v[r * 512 + c]) * x[c], sk += double(kd.v[r * 512 + c]) * x[c];
        CHECK(y[r] == Approx(s).epsilon(1e-4).margin(1e-5));
        CHECK(yk[r] == Approx(sk).epsilon(1e-4).margin(1e-5));
    }
}

// The measurement of docs/algorithms.md (hidden: run `test_gptq "[.bench]"`): TinyLlama's
// ffn_down shape, 2048 x 5632, 32 x 512 calibration tokens, two threads.
TEST_CASE("gptq on a 2048 x 5632 layer: time and output error against RTN", "[.bench]") {
    const std::size_t rows = 2048, cols = 5632, tokens = 32 * 512, held = 2048, factors = 256;
    eq::thread_pool pool(2);
    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
    const matrix w = gaussian(rows, cols, 22);

    // Inputs: 256 latent factors of decaying strength (times `gain`) mixed into every channel,
    // channel noise, every 61st channel 9x louder; the last `held` tokens are not calibrated on.
    auto scenario = [&](const char* title, float gain) {
        const std::size_t all = tokens + held;
        std::mt19937 rng(21);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> z(all * factors), mix(factors * cols);
        for (std::size_t t = 0; t < all; ++t)
            for (std::size_t k = 0; k < factors; ++k)
                z[t * factors + k] = gain * nd(rng) / std::sqrt(1.0f + float(k) / 8.0f);
        for (float& v : mix) v = nd(rng);
        matrix x{all, cols, std::vector<float>(all * cols)};
        for (float& v : x.v) v = 0.5f * nd(rng);
        eq::linalg::rank_update<float>(all, cols, factors, eq::linalg::strided<float>{z.data(), factors, 1}, mix.data(),
                                       cols, x.v.data(), cols, 1.0f, false, pool);
        for (std::size_t t = 0; t < all; ++t)
            for (std::size_t c = 0; c < cols; c += 61) x.v[t * cols + c] *= 9.0f;

        auto t0 = clock::now();
        eq::input_stats st(cols);
        st.add({x.v.data(), tokens, cols}, pool);
        const auto h = st.hessian();
        std::printf("%s: Hessian of %zu tokens %.1f s\n", title, tokens, seconds(t0));

        // ||X D^T|| / ||X W^T|| on rows [first, first + 2048) of X.
        auto out_err = [&](const matrix& q, std::size_t first) {
            std::vector<float> dt(cols * rows), wt(cols * rows);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t c = 0; c < cols; ++c)
                    dt[c * rows + r] = w.v[r * cols + c] - q.v[r * cols + c], wt[c * rows + r] = w.v[r * cols + c];
            std::vector<float> yd(2048 * rows, 0.0f), yw(2048 * rows, 0.0f);
            const eq::linalg::strided<float> xa{x.v.data() + first * cols, cols, 1};
            eq::linalg::rank_update<float>(2048, rows, cols, xa, dt.data(), rows, yd.data(), rows, 1.0f, false, pool);
            eq::linalg::rank_update<float>(2048, rows, cols, xa, wt.data(), rows, yw.data(), rows, 1.0f, false, pool);
            double e = 0, s = 0;
            for (std::size_t i = 0; i < yd.size(); ++i) e += double(yd[i]) * yd[i], s += double(yw[i]) * yw[i];
            return std::sqrt(e / s);
        };
        auto run = [&](auto tag, const char* name) {
            using F = decltype(tag);
            eq::gptq_report rep;
            t0 = clock::now();
            const auto g = eq::gptq_quantize<F>(w.view(), h, {}, pool, &rep);
            const double tg = seconds(t0);
            const auto r = eq::format_quantizer<F>::run(w.view(), {}, pool);
            const matrix gd = dequantize(g), rd = dequantize(r);
            const double gc = out_err(gd, 0), rc = out_err(rd, 0), gh = out_err(gd, tokens), rh = out_err(rd, tokens);
            std::printf("  %-10s GPTQ %.1f s (factor %.1f s, sweep %.1f s); output error GPTQ / RTN: calibration "
                        "%.4f / %.4f = %.3f, held-out %.4f / %.4f = %.3f\n",
                        name, tg, rep.factor_seconds, rep.sweep_seconds, gc, rc, gc / rc, gh, rh, gh / rh);
            std::fflush(stdout);
        };
        run(int4_g128{}, "int4-g128");
        run(eq::format_of<eq::scheme<eq::bits<3>, eq::group<128>>>{}, "int3-g128");
        run(eq::format_of<eq::scheme<eq::bits<2>, eq::group<64>>>{}, "int2-g64");
        run(q4_k{}, "Q4_K");
        if (gain < 1.0f) return;
        // AWQ on the same layer: the search on the first 2048 calibration tokens, then the clip
        // search; against RTN with and without the clip search.
        auto awq = [&](auto tag, const char* name) {
            using F = decltype(tag);
            eq::awq_options o;
            o.max_tokens = 2048;
            t0 = clock::now();
            const auto a = eq::awq_quantize<F>(w.view(), {x.v.data(), tokens, cols}, st.mean_abs(), o, pool);
            const double ta = seconds(t0);
            matrix ad = dequantize(a.q);
            for (std::size_t i = 0; i < ad.v.size(); ++i) ad.v[i] /= a.scales[i % cols];
            const auto ex2 = st.importance();
            eq::quant_options clip;  // RTN with the clip search weighted by E[x^2]
            clip.fit.clip_search = true;
            clip.importance = ex2.data();
            const matrix rd = dequantize(eq::quantize_format<F>(w.view(), {}, pool));
            const matrix cd = dequantize(eq::quantize_format<F>(w.view(), clip, pool));
            const double ac = out_err(ad, 0), rc = out_err(rd, 0), cc = out_err(cd, 0), ah = out_err(ad, tokens),
                         rh = out_err(rd, tokens);
            std::printf("  AWQ %-10s %.1f s, alpha %.2f; output error AWQ / RTN / RTN-clip(E[x^2]): calibration %.4f / %.4f / "
                        "%.4f, AWQ / RTN %.3f; held-out %.3f\n",
                        name, ta, a.alpha, ac, rc, cc, ac / rc, ah / rh);
            std::fflush(stdout);
        };
        awq(int4_g128{}, "int4-g128");
        awq(eq::format_of<eq::scheme<eq::bits<3>, eq::group<128>>>{}, "int3-g128");
    };
    scenario("strongly correlated inputs (256 factors x 1)", 1.0f);
    scenario("weakly correlated inputs (256 factors x 0.25)", 0.25f);
}

TEST_CASE("gptq: one prepared factor of H serves every matrix that reads the input", "[gptq]") {
    const problem& p = layer();
    // Two matrices on one input (as q and k): the factor prepared once gives each what
    // gptq_quantize(w, H) gives it, with and without act-order, dead inputs included.
    const matrix w2 = gaussian(32, 512, 77);
    matrix x = p.x;
    for (std::size_t t = 0; t < x.rows; ++t) x.v[t * x.cols + 9] = 0.0f;
    const auto h = hessian_of(x);
    for (bool act_order : {false, true}) {
        INFO("act_order " << act_order);
        eq::gptq_options o;
        o.act_order = act_order;
        const eq::gptq_factorization f = eq::gptq_prepare(h, 512, o);
        CHECK(f.n_dead == 1);
        eq::gptq_report r1, r2;
        CHECK(same_bytes(eq::gptq_quantize<int4_g128>(p.w.view(), f, o, eq::default_pool(), &r1),
                         eq::gptq_quantize<int4_g128>(p.w.view(), h, o, eq::default_pool(), &r2)));
        CHECK(r1.loss == r2.loss);
        CHECK(r1.dead == 1);
        CHECK(same_bytes(eq::gptq_quantize<q4_k>(w2.view(), f, o), eq::gptq_quantize<q4_k>(w2.view(), h, o)));
    }
    // A factor of another size or act-order is refused.
    const eq::gptq_factorization f = eq::gptq_prepare(h, 512);
    eq::gptq_options ao;
    ao.act_order = true;
    CHECK_THROWS_WITH(eq::gptq_quantize<int4_g128>(p.w.view(), f, ao), Catch::Contains("act_order"));
    const matrix narrow = gaussian(8, 256, 5);
    CHECK_THROWS_WITH(eq::gptq_quantize<int4_g128>(narrow.view(), f), Catch::Contains("256"));
    CHECK_THROWS_WITH(eq::gptq_prepare(identity(256), 512), Catch::Contains("Hessian"));
}
