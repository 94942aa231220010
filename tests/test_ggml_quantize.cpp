// llama.cpp's block quantizers (algo/ggml/): the bytes against digests of ggml's own
// ggml_quantize_chunk output (tests/data/ggml/quantize_digests.txt, with and without an
// importance matrix), the matrix front end against the row API, and properties: round-trip
// error within each type's budget, grids reproduced exactly, importance lowering the weighted
// error, and clear errors for bad shapes and non-finite weights. With EDGEQ_GGML_PEER set to a
// built libggml-base.so, fresh inputs are also compared with the live library.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <edgeq/algo/ggml/quantize.hpp>
#include <edgeq/edgeq.hpp>
#include <edgeq/format/ggml/decode.hpp>

#include "data/ggml/quantize_inputs.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define EDGEQ_TEST_HAS_DLOPEN 1
#endif

namespace eq = edgeq;
namespace gq = edgeq::ggml_qtest;
using namespace edgeq::ggml;

namespace {

// Relative RMS round-trip error on Gaussian weights (16 x 1024), without importance. Each
// budget is about 1.2x the largest error measured in its class; the classes follow bits per
// weight (each bit less roughly doubles the error).
constexpr double q8_0_budget = 0.0065;  // 8.5 bpw; measured 0.0053
constexpr double q6_k_budget = 0.021;   // 6.56 bpw; measured 0.0175
constexpr double q5_budget = 0.05;      // Q5_0 / Q5_1 / Q5_K, 5.5-6 bpw; measured 0.036-0.042
constexpr double q4_budget = 0.10;      // Q4_0 / Q4_1 / Q4_K / IQ4_NL / IQ4_XS, 4.25-5 bpw; 0.070-0.084
constexpr double q3_k_budget = 0.18;    // 3.44 bpw; measured 0.148
constexpr double q2_k_budget = 0.35;    // 2.63 bpw; measured 0.29

template <class B>
double budget();
template <> double budget<block_q8_0>() { return q8_0_budget; }
template <> double budget<block_q6_K>() { return q6_k_budget; }
template <> double budget<block_q5_0>() { return q5_budget; }
template <> double budget<block_q5_1>() { return q5_budget; }
template <> double budget<block_q5_K>() { return q5_budget; }
template <> double budget<block_q4_0>() { return q4_budget; }
template <> double budget<block_q4_1>() { return q4_budget; }
template <> double budget<block_q4_K>() { return q4_budget; }
template <> double budget<block_iq4_nl>() { return q4_budget; }
template <> double budget<block_iq4_xs>() { return q4_budget; }
template <> double budget<block_q3_K>() { return q3_k_budget; }
template <> double budget<block_q2_K>() { return q2_k_budget; }

template <class B>
struct tag {
    using type = B;
};

// Calls f(tag<Block>{}) for every llama.cpp type.
template <class F>
void for_each_type(F&& f) {
    f(tag<block_q4_0>{}), f(tag<block_q4_1>{}), f(tag<block_q5_0>{}), f(tag<block_q5_1>{});
    f(tag<block_q8_0>{}), f(tag<block_q2_K>{}), f(tag<block_q3_K>{}), f(tag<block_q4_K>{});
    f(tag<block_q5_K>{}), f(tag<block_q6_K>{}), f(tag<block_iq4_nl>{}), f(tag<block_iq4_xs>{});
}

template <class B>
std::vector<B> quantize_rows(const std::vector<float>& x, std::size_t rows, std::size_t cols, const float* imp) {
    std::vector<B> q(rows * cols / B::weights);
    for (std::size_t r = 0; r < rows; ++r)
        quantize_row<B>(x.data() + r * cols, q.data() + r * (cols / B::weights), cols, imp);
    return q;
}

template <class B>
std::vector<float> decode(const std::vector<B>& q) {
    std::vector<float> y(q.size() * B::weights);
    dequantize_row(q.data(), y.data(), y.size());
    return y;
}

double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
    double e = 0, n = 0;
    for (std::size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]), n += double(x[i]) * x[i];
    return std::sqrt(e / n);
}

// sum over weights of importance[column] * error^2.
double weighted_error(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& imp) {
    double e = 0;
    for (std::size_t i = 0; i < x.size(); ++i) e += imp[i % imp.size()] * double(x[i] - y[i]) * (x[i] - y[i]);
    return e;
}

struct golden_case {
    std::string type, kind;
    int seed, imatrix;
    std::size_t rows, cols;
    std::string digest;
};

std::vector<golden_case> golden_cases() {
    std::string path = __FILE__;
    path = path.substr(0, path.find_last_of("/\\") + 1) + "data/ggml/quantize_digests.txt";
    std::ifstream in(path);
    std::vector<golden_case> cases;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream s(line);
        golden_case c;
        if (s >> c.type >> c.kind >> c.seed >> c.imatrix >> c.rows >> c.cols >> c.digest) cases.push_back(c);
    }
    return cases;
}

int kind_of(const std::string& name) {
    for (int k = 0; k < gq::n_kinds; ++k)
        if (name == gq::kind_name(k)) return k;
    return -1;
}

std::string hex64(std::uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

}  // namespace

TEST_CASE("ggml quantize: byte-identical to llama.cpp's ggml_quantize_chunk (digests)", "[ggml][quantize]") {
    const std::vector<golden_case> cases = golden_cases();
    // 12 types x 5 input kinds x 3 seeds x {no importance, importance}.
    REQUIRE(cases.size() == 360);
    int checked = 0;
    for (const golden_case& c : cases)
        for_each_type([&](auto t) {
            using B = typename decltype(t)::type;
            if (c.type != B::name()) return;
            const int kind = kind_of(c.kind);
            REQUIRE(kind >= 0);
            const std::vector<float> x = gq::make_input(kind, c.seed, c.rows, c.cols);
            const std::vector<float> imp = gq::make_importance(c.seed, c.cols);
            const std::vector<B> q = quantize_rows<B>(x, c.rows, c.cols, c.imatrix ? imp.data() : nullptr);
            INFO(c.type << " " << c.kind << " seed " << c.seed << (c.imatrix ? " with" : " without") << " importance");
            CHECK(hex64(gq::fnv1a(q.data(), q.size() * sizeof(B))) == c.digest);
            ++checked;
        });
    CHECK(checked == 360);
}

TEST_CASE("ggml quantize: quantize<scheme<...>> equals the row API, on any number of threads", "[ggml][quantize]") {
    const std::size_t rows = 37, cols = 512;
    const std::vector<float> x = gq::make_input(gq::heavy, 7, rows, cols);
    const std::vector<float> imp = gq::make_importance(7, cols);
    eq::thread_pool one(1), four(4);
    for_each_type([&](auto t) {
        using B = typename decltype(t)::type;
        using S = eq::scheme<eq::ggml_type<B>>;
        INFO(B::name());
        for (const float* importance : {static_cast<const float*>(nullptr), imp.data()}) {
            eq::quant_options opt;
            opt.importance = importance;
            const auto serial = eq::quantize<S>({x.data(), rows, cols}, opt, one);
            const auto parallel = eq::quantize<S>({x.data(), rows, cols}, opt, four);
            const std::vector<B> ref = quantize_rows<B>(x, rows, cols, importance);
            REQUIRE(serial.storage_bytes() == ref.size() * sizeof(B));
            CHECK(std::memcmp(serial.blob().data(), ref.data(), serial.storage_bytes()) == 0);
            CHECK(std::memcmp(parallel.blob().data(), ref.data(), parallel.storage_bytes()) == 0);
            // The view reads the same blocks back.
            CHECK(std::memcmp(serial.view().row_blocks(5), ref.data() + 5 * (cols / B::weights), sizeof(B)) == 0);
        }
    });
}

TEST_CASE("ggml quantize: round-trip error within each type's budget", "[ggml][quantize]") {
    const std::size_t rows = 16, cols = 1024;
    const std::vector<float> x = gq::make_input(gq::gaussian, 11, rows, cols);
    for_each_type([&](auto t) {
        using B = typename decltype(t)::type;
        const double err = rel_rms(x, decode(quantize_rows<B>(x, rows, cols, nullptr)));
        INFO(B::name() << ": relative RMS error " << err << ", budget " << budget<B>());
        CHECK(err < budget<B>());
        CHECK(err > budget<B>() / 8);  // a budget far above the error would test nothing
    });
}

TEST_CASE("ggml quantize: importance weights lower the importance-weighted error", "[ggml][quantize]") {
    // A skewed imatrix: one column in 16 matters 100 times more.
    const std::size_t rows = 16, cols = 1024;
    const std::vector<float> x = gq::make_input(gq::heavy, 3, rows, cols);
    std::vector<float> imp(cols);
    for (std::size_t c = 0; c < cols; ++c) imp[c] = c % 16 == 5 ? 100.0f : 1.0f;
    for_each_type([&](auto t) {
        using B = typename decltype(t)::type;
        if (std::is_same<B, block_q8_0>::value) return;  // Q8_0 has no weighted path, as in ggml
        const double plain = weighted_error(x, decode(quantize_rows<B>(x, rows, cols, nullptr)), imp);
        const double weighted = weighted_error(x, decode(quantize_rows<B>(x, rows, cols, imp.data())), imp);
        INFO(B::name() << ": weighted error " << weighted << " with importance, " << plain << " without");
        CHECK(weighted < plain);
    });
}

TEST_CASE("ggml quantize: values on the type's grid come back exactly; scales are the extremes'", "[ggml][quantize]") {
    const float d = 1.0f / 64;  // exact in fp16
    std::vector<float> x(32);
    SECTION("Q8_0: d = absmax / 127, codes exact") {
        for (int j = 0; j < 32; ++j) x[j] = d * float((j * 37) % 255 - 127);
        x[3] = 127 * d;
        block_q8_0 b;
        quantize_row(x.data(), &b, 32);
        CHECK(b.d.to_float() == eq::fp16_t::from_float(127 * d / 127.0f).to_float());
        std::vector<float> y(32);
        dequantize_row(&b, y.data(), 32);
        for (int j = 0; j < 32; ++j) CHECK(std::fabs(y[j] - x[j]) <= 1e-6f);
    }
    SECTION("Q4_0: the signed extreme maps to code 0, d = max / -8") {
        for (int j = 0; j < 32; ++j) x[j] = d * float(j % 16 - 8);
        block_q4_0 b;
        quantize_row(x.data(), &b, 32);
        CHECK(b.d.to_float() == d);
        std::vector<float> y(32);
        dequantize_row(&b, y.data(), 32);
        CHECK(y == x);
    }
    SECTION("Q4_1 and Q5_1: m is the minimum, d spans the range") {
        for (int j = 0; j < 32; ++j) x[j] = -0.25f + d * float(j % 16);
        block_q4_1 b4;
        quantize_row(x.data(), &b4, 32);
        CHECK(b4.m.to_float() == -0.25f);
        CHECK(b4.d.to_float() == d);
        std::vector<float> y(32);
        dequantize_row(&b4, y.data(), 32);
        CHECK(y == x);
        for (int j = 0; j < 32; ++j) x[j] = 0.5f + d * float(j);
        x[0] = 0.5f;
        block_q5_1 b5;
        quantize_row(x.data(), &b5, 32);
        CHECK(b5.m.to_float() == 0.5f);
        dequantize_row(&b5, y.data(), 32);
        for (int j = 0; j < 32; ++j) CHECK(std::fabs(y[j] - x[j]) <= 1e-6f);
    }
    SECTION("k-quants and IQ4: an all-zero super-block stays zero") {
        std::vector<float> z(256, 0.0f), y(256, 1.0f);
        for_each_type([&](auto t) {
            using B = typename decltype(t)::type;
            std::vector<B> q(256 / B::weights);
            quantize_row(z.data(), q.data(), 256);
            dequantize_row(q.data(), y.data(), 256);
            INFO(B::name());
            CHECK(y == z);
        });
    }
}

TEST_CASE("ggml quantize: Q4_K / Q5_K scales and mins recover an affine sub-block", "[ggml][quantize]") {
    // Sub-block j holds 0.1 j + 0.01 * (0..15) shifted down by 0.05 j: a positive scale and a
    // non-zero min per sub-block; the 6-bit scale grids must reproduce it to a few percent.
    std::vector<float> x(256), y(256);
    for (int i = 0; i < 256; ++i) x[i] = -0.05f * float(i / 32) + (0.002f + 0.001f * float(i / 32)) * float(i % 16);
    block_q4_K q4;
    quantize_row(x.data(), &q4, 256);
    dequantize_row(&q4, y.data(), 256);
    CHECK(rel_rms(x, y) < 0.02);
    block_q5_K q5;
    quantize_row(x.data(), &q5, 256);
    dequantize_row(&q5, y.data(), 256);
    CHECK(rel_rms(x, y) < 0.01);
}

TEST_CASE("ggml quantize: a row length that is not a multiple of the block is refused by name", "[ggml][quantize]") {
    std::vector<float> x(4 * 96, 0.1f);
    CHECK_THROWS_WITH(eq::quantize<eq::scheme<eq::q4_k>>({x.data(), 4, 96}),
                      Catch::Contains("256-weight super-block") && Catch::Contains("Q4_K"));
    CHECK_THROWS_WITH(eq::quantize<eq::scheme<eq::iq4_xs>>({x.data(), 4, 96}), Catch::Contains("256-weight"));
    std::vector<float> y(3 * 48, 0.1f);
    CHECK_THROWS_WITH(eq::quantize<eq::scheme<eq::q8_0>>({y.data(), 3, 48}), Catch::Contains("32-weight block"));
    block_q4_0 b[2];
    CHECK_THROWS_WITH(quantize_row(y.data(), b, 48), Catch::Contains("32-weight block") && Catch::Contains("48"));
    CHECK_NOTHROW(eq::quantize<eq::scheme<eq::q8_0>>({x.data(), 4, 96}));
}

TEST_CASE("ggml quantize: NaN and Inf are refused with their position", "[ggml][quantize]") {
    std::vector<float> x(2 * 256, 0.1f);
    x[256 + 7] = std::nanf("");
    CHECK_THROWS_WITH(eq::quantize<eq::scheme<eq::q6_k>>({x.data(), 2, 256}),
                      Catch::Contains("NaN") && Catch::Contains("row 1") && Catch::Contains("column 7"));
    x[256 + 7] = INFINITY;
    CHECK_THROWS_WITH(eq::quantize<eq::scheme<eq::q4_0>>({x.data(), 2, 256}), Catch::Contains("Inf"));
}

#ifdef EDGEQ_TEST_HAS_DLOPEN
TEST_CASE("ggml quantize: byte-identical to a live libggml-base (EDGEQ_GGML_PEER)", "[ggml][quantize][peer]") {
    const char* lib = std::getenv("EDGEQ_GGML_PEER");
    if (!lib || !*lib) {
        WARN("EDGEQ_GGML_PEER is not set (path of llama.cpp's libggml-base.so): live comparison skipped");
        return;
    }
    void* handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(handle != nullptr);
    // size_t ggml_quantize_chunk(enum ggml_type, const float*, void*, int64_t start, int64_t nrows,
    //                            int64_t n_per_row, const float* imatrix); the enum values are type_id.
    using chunk_fn = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t, std::int64_t, const float*);
    const auto chunk = reinterpret_cast<chunk_fn>(dlsym(handle, "ggml_quantize_chunk"));
    REQUIRE(chunk != nullptr);
    const std::size_t rows = 8, cols = 1024;
    int cases = 0;
    for (int seed = 1000; seed < 1010; ++seed)
        for (int kind = 0; kind < gq::n_kinds; ++kind) {
            const std::vector<float> x = gq::make_input(kind, seed, rows, cols);
            const std::vector<float> imp = gq::make_importance(seed, cols);
            for_each_type([&](auto t) {
                using B = typename decltype(t)::type;
                for (const float* importance : {static_cast<const float*>(nullptr), imp.data()}) {
                    const std::vector<B> mine = quantize_rows<B>(x, rows, cols, importance);
                    std::vector<B> theirs(mine.size());
                    chunk(B::type_id, x.data(), theirs.data(), 0, std::int64_t(rows), std::int64_t(cols), importance);
                    INFO(B::name() << " " << gq::kind_name(kind) << " seed " << seed << (importance ? " with" : " without")
                                   << " importance");
                    CHECK(std::memcmp(mine.data(), theirs.data(), mine.size() * sizeof(B)) == 0);
                    ++cases;
                }
            });
        }
    CHECK(cases == 10 * gq::n_kinds * 12 * 2);
    dlclose(handle);
}
#endif
