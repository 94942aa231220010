// The registry (names <-> static schemes, SpQR's names included), name_of, and edgeq::linear
// against the static API.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include <edgeq/edgeq.hpp>
#include <edgeq/linear.hpp>
#include <edgeq/registry.hpp>
#include <edgeq/scheme_name.hpp>

namespace eq = edgeq;
namespace reg = edgeq::registry;
using Catch::Matchers::Contains;

namespace {

std::vector<float> random_matrix(std::size_t rows, std::size_t cols, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> n(0.0f, 0.02f);
    std::vector<float> w(rows * cols);
    for (float& v : w) v = n(gen);
    w[3] = 0.4f;  // an outlier
    return w;
}

// Bitwise equality of float arrays (exactly the same kernel on the same data).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::type_index visited_type(const std::string& name) {
    return reg::visit(name, [](auto t) { return std::type_index(typeid(typename decltype(t)::type)); });
}

// One visit each (a visit inside a generic lambda would be instantiated once per scheme).
std::string visited_name(const std::string& name) {
    return reg::visit(name, [](auto t) { return eq::name_of<typename decltype(t)::type>(); });
}
bool visited_clip(const std::string& name) {
    return reg::visit(name, [](auto t) { return bool(decltype(t)::type::algorithm::clip); });
}

}  // namespace

TEST_CASE("name_of spells a scheme canonically, whatever the policy order", "[registry]") {
    CHECK(eq::name_of<eq::scheme<>>() == "int4-g128");
    CHECK(eq::name_of<eq::scheme<eq::asymmetric>>() == "int4-g128-asym");
    CHECK(eq::name_of<eq::scheme<eq::bits<8>, eq::per_row>>() == "int8-row");
    CHECK(eq::name_of<eq::scheme<eq::fp32_scale, eq::group<64>, eq::bits<6>>>() == "int6-g64-f32");
    CHECK(eq::name_of<eq::scheme<eq::nf4>>() == "nf4-g64");
    CHECK(eq::name_of<eq::scheme<eq::nf4, eq::double_quant>>() == "nf4-g64-dq");
    CHECK(eq::name_of<eq::scheme<eq::fp32_scale, eq::nf4>>() == "nf4-g64-f32");
    CHECK(eq::name_of<eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric, eq::rtn<eq::clip_search>>>() ==
          "rtn-clip-int3-g64-asym");
    CHECK(eq::name_of<eq::scheme<eq::rtn<eq::clip_search>, eq::asymmetric, eq::group<64>, eq::bits<3>>>() ==
          "rtn-clip-int3-g64-asym");
    CHECK(eq::name_of<eq::scheme<eq::rtn<>, eq::bits<4>>>() == "int4-g128");  // the default algorithm is not spelled
    CHECK(eq::name_of<eq::scheme<eq::group<512>, eq::bits<2>>>() == "int2-g512");  // not built in, still named
    CHECK(eq::format_name_of<eq::scheme<eq::rtn<eq::clip_search>, eq::bits<5>, eq::per_row, eq::asymmetric,
                                        eq::fp32_scale>>() == "int5-row-asym-f32");
}

TEST_CASE("the built-in list: every combination, each name once", "[registry]") {
    const std::vector<std::string>& names = reg::names();
    CHECK(names.size() == reg::scheme_count + reg::spqr_count);
    CHECK(reg::scheme_count == 6 * 5 * 2 * 2 + 4 * 3 + 12);
    CHECK(reg::spqr_count == 4);
    CHECK(names.size() <= 150);
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
    for (const char* n : {"int4-g128", "int4-g128-asym", "int8-row", "int8-row-f32", "int6-g64-f32", "nf4-g64",
                          "nf4-g64-dq", "nf4-g64-f32", "int2-g32-asym-f32", "int3-row-asym", "nf4-g256-dq", "q4_0",
                          "q8_0", "q2_k", "q4_k", "q6_k", "iq4_nl", "iq4_xs", "spqr-2bit-g16", "spqr-3bit-g16",
                          "spqr-4bit-g16", "spqr-4bit-g32"}) {
        INFO(n);
        CHECK(std::find(names.begin(), names.end(), std::string(n)) != names.end());
    }
    CHECK(reg::algorithm_names() == std::vector<std::string>{"rtn", "rtn-clip", "gptq", "gptq-actorder", "awq"});
}

namespace {

// What the static type says about one built-in scheme, gathered once (the checks then run in
// plain loops: Catch's macros inside a lambda instantiated 132 times cost minutes of compile time).
struct static_facts {
    std::string name, clip_name, clip_visit_name;
    std::type_index type, visited, visited_rtn;
    bool clip_visit_is_clip;
    bool same_format;
    double bits_per_weight;
    int bits, group;
    bool asymmetric;
    std::string codebook, scale;
    bool ggml;  // a llama.cpp type: no clip variant
};

// A uniform or NF4 scheme, and its rtn-clip twin.
template <class S>
static_facts facts_of(std::false_type /*llama.cpp type*/) {
    using F = eq::format_of<S>;
    using C = eq::scheme<eq::rtn<eq::clip_search>, typename S::bits_policy, typename S::group_policy,
                         typename S::zero_policy, typename S::scale_policy, typename S::codebook>;
    const std::string n = eq::name_of<S>();
    return static_facts{n,
                        eq::name_of<C>(),
                        visited_name("rtn-clip-" + n),
                        std::type_index(typeid(S)),
                        visited_type(n),
                        visited_type("rtn-" + n),
                        visited_clip("rtn-clip-" + n),
                        std::is_same<eq::format_of<C>, F>::value,
                        eq::bits_per_weight<S>(),
                        int(F::bits),
                        int(F::group),
                        bool(F::asymmetric),
                        F::is_uniform ? "int" : "nf4",
                        F::is_double_quant ? "dq8" : sizeof(typename F::scale_type) == 4 ? "fp32" : "fp16",
                        false};
}

// A llama.cpp type: bits are the width in its name, the group its block.
template <class S>
static_facts facts_of(std::true_type) {
    using B = typename eq::format_of<S>::block_type;
    const std::string n = eq::name_of<S>();
    const std::string block = B::name();
    return static_facts{n,    "", "", std::type_index(typeid(S)), visited_type(n), visited_type("rtn-" + n), false, true,
                        eq::bits_per_weight<S>(), block[block[0] == 'I' ? 2 : 1] - '0', B::weights, false, "ggml", "block",
                        true};
}

std::vector<static_facts> gather_facts() {
    std::vector<static_facts> out;
    reg::for_each_scheme([&out](auto t) {
        using S = typename decltype(t)::type;
        out.push_back(facts_of<S>(eq::is_ggml_format<eq::format_of<S>>{}));
    });
    return out;
}

}  // namespace

TEST_CASE("every name round-trips name -> type -> name_of, with and without an algorithm prefix", "[registry]") {
    const std::vector<static_facts> facts = gather_facts();
    REQUIRE(facts.size() == reg::scheme_count);
    for (std::size_t i = 0; i < facts.size(); ++i) {
        const static_facts& f = facts[i];
        INFO(f.name);
        CHECK(reg::names()[i] == f.name);
        CHECK(f.visited == f.type);
        CHECK(f.visited_rtn == f.type);  // the default prefix visits the same type
        CHECK(reg::canonical("rtn-" + f.name) == f.name);
        CHECK(reg::contains(f.name));
        for (const std::string a : {"gptq-", "gptq-actorder-", "awq-"}) CHECK(visited_name(a + f.name) == a + f.name);
        if (f.ggml) {
            CHECK_THROWS_WITH(reg::info("rtn-clip-" + f.name), Contains("drop the prefix") && Contains(f.name));
            continue;
        }
        CHECK(f.clip_name == "rtn-clip-" + f.name);
        CHECK(f.clip_visit_name == f.clip_name);
        CHECK(f.clip_visit_is_clip);
        CHECK(f.same_format);
    }
}

TEST_CASE("info matches the static scheme", "[registry]") {
    for (const static_facts& f : gather_facts()) {
        const reg::scheme_info in = reg::info(f.name);
        INFO(f.name);
        CHECK(in.name == f.name);
        CHECK(in.format_name == f.name);
        CHECK(in.algorithm == "rtn");
        CHECK(in.bits_per_weight == f.bits_per_weight);  // exactly: the same constant expression
        CHECK(in.bits == f.bits);
        CHECK(in.group == f.group);
        CHECK(in.asymmetric == f.asymmetric);
        CHECK(in.codebook == f.codebook);
        CHECK(in.scale == f.scale);
        if (f.ggml) continue;

        const reg::scheme_info clip = reg::info("rtn-clip-" + f.name);
        CHECK(clip.name == "rtn-clip-" + f.name);
        CHECK(clip.format_name == f.name);
        CHECK(clip.algorithm == "rtn-clip");
        CHECK(clip.bits_per_weight == f.bits_per_weight);
    }
    CHECK(reg::info("int8-row").bits_per_weight == 8.0 + 16.0 / 4096);
    CHECK(reg::info("nf4-g64-dq").bits_per_weight == 4.0 + 8.0 / 64 + 32.0 / (64 * 256));
}

TEST_CASE("unknown and misspelled names throw edgeq::error saying what to write", "[registry]") {
    CHECK_THROWS_AS(reg::info("int4-g100"), eq::error);
    CHECK_THROWS_WITH(reg::info("int4-g100"), Contains("'g100' is not a built-in group") &&
                                                  Contains("g32, g64, g128, g256 and row") && Contains("did you mean int4-g128"));
    CHECK_THROWS_WITH(reg::info("nf4-row"), Contains("for nf4") && Contains("g32, g64, g128 and g256"));
    CHECK_THROWS_WITH(reg::info("int7-g128"), Contains("int2, int3, int4, int5, int6, int8 or nf4") &&
                                                  Contains("int6-g128, int8-g128"));
    CHECK_THROWS_WITH(reg::info("int4"), Contains("the group is missing") && Contains("did you mean int4-g128"));
    CHECK_THROWS_WITH(reg::info("int4-g128-sym"), Contains("symmetric is the default") && Contains("did you mean int4-g128?"));
    CHECK_THROWS_WITH(reg::info("int4-g128-fp16"), Contains("fp16 scales are the default"));
    CHECK_THROWS_WITH(reg::info("int4-g128-fp32"), Contains("'-f32'") && Contains("int4-g128-f32"));
    CHECK_THROWS_WITH(reg::info("int4-g128-f32-asym"), Contains("canonical") && Contains("int4-g128-asym-f32"));
    CHECK_THROWS_WITH(reg::info("int4-g064"), Contains("canonical") && Contains("int4-g64"));
    CHECK_THROWS_WITH(reg::info("int4-g128-asym-asym"), Contains("canonical"));
    CHECK_THROWS_WITH(reg::info("nf4-g64-asym"), Contains("nf4 has no zero point") && Contains("nf4-g64"));
    CHECK_THROWS_WITH(reg::info("int4-g128-dq"), Contains("nf4 only") && Contains("nf4-g128-dq"));
    CHECK_THROWS_WITH(reg::info("int4-g128-clip"), Contains("prefix") && Contains("rtn-clip-int4-g128"));
    CHECK_THROWS_WITH(reg::info("rtn-clip-int4-g100"), Contains("rtn-clip-int4-g128"));
    CHECK_THROWS_WITH(reg::info("INT4-G128"), Contains("lower case") && Contains("int4-g128"));
    CHECK_THROWS_WITH(reg::info("rtn"), Contains("follow it with a format"));
    CHECK_THROWS_WITH(reg::info("rtn-clip-"), Contains("needs a format"));
    CHECK_THROWS_WITH(reg::info(""), Contains("empty"));
    CHECK_THROWS_WITH(reg::info("int4--g128"), Contains("empty part"));
    CHECK_THROWS_WITH(reg::info("f16"), Contains("starts with the code-book"));
    CHECK_THROWS_WITH(reg::info("q4_2"), Contains("not one of the llama.cpp types") && Contains("q4_k"));
    CHECK_THROWS_WITH(reg::info("Q4_K"), Contains("lower case") && Contains("did you mean q4_k"));
    CHECK_THROWS_WITH(reg::info("rtn-clip-q4_k"), Contains("drop the prefix") && Contains("did you mean q4_k"));
    CHECK(reg::canonical("rtn-q8_0") == "q8_0");
    CHECK(reg::canonical("gptq-q4_k") == "gptq-q4_k");
    CHECK(reg::info("gptq-actorder-int3-g64").algorithm == "gptq-actorder");
    CHECK(reg::info("awq-int4-g128").format_name == "int4-g128");
    CHECK_THROWS_WITH(reg::info("gptq-int3-g64-actorder"), Contains("did you mean gptq-actorder-int3-g64"));
    const std::vector<float> w4 = random_matrix(4, 128, 1);
    CHECK_THROWS_WITH(reg::make_linear("gptq-int4-g128", {w4.data(), 4, 128}), Contains("needs calibration"));
    CHECK_THROWS_WITH(reg::info("int4-g128 "), Contains("did you mean"));
    // Every message says how to list the names.
    CHECK_THROWS_WITH(reg::info("bogus"), Contains("edgeq schemes") && Contains("names()"));
    CHECK_FALSE(reg::contains("int4-g100"));
    CHECK_FALSE(reg::contains("int4-G128"));

    const std::vector<float> w = random_matrix(4, 128, 1);
    CHECK_THROWS_WITH(reg::make_linear("int4-g100", {w.data(), 4, 128}), Contains("valid groups"));
    CHECK_THROWS_AS(reg::visit("int9-g128", [](auto) { return 0; }), eq::error);
}

namespace {
struct outputs {
    outputs(std::size_t rows, std::size_t cols) : y(rows), yq8(rows), yd(cols), yg(2 * rows), ygq8(2 * rows) {}
    std::size_t storage_bytes = 0;
    std::vector<float> y, yq8, yd, yg, ygq8;
    std::vector<std::uint8_t> blob;
};
}  // namespace

TEST_CASE("registry::make_linear runs exactly the static kernels", "[registry][linear]") {
    const std::size_t rows = 20, cols = 512;  // 20 rows: the pool splits them unevenly; 2 super-blocks
    const std::vector<float> w = random_matrix(rows, cols, 7);
    const eq::matrix_view<const float> wv(w.data(), rows, cols);
    std::vector<float> x(cols), x2(2 * cols);
    std::mt19937 gen(3);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (float& v : x) v = n(gen);
    for (float& v : x2) v = n(gen);
    eq::thread_pool pool(3);

    std::size_t checked = 0;
    for (const std::string& base : reg::names()) {
        if (reg::info(base).calibrated) continue;  // SpQR: refused, below
        for (const std::string& name : {base, "rtn-clip-" + base}) {
            INFO(name);
            if (reg::info(base).codebook == "ggml" && name != base) continue;
            const std::unique_ptr<eq::linear> l = reg::make_linear(name, wv);
            REQUIRE(l);
            CHECK(l->scheme_name() == name);
            CHECK(l->rows() == rows);
            CHECK(l->cols() == cols);
            CHECK(std::string(l->backend_name()) == eq::backend::best::name());
            CHECK(l->bits_per_weight() == reg::visit(name, [cols](auto t) {
                      return eq::bits_per_weight<typename decltype(t)::type>(long(cols));
                  }));

            // int8 activations by default; float on request.
            std::vector<float> y(rows), yq8(rows), yd(cols), yg(2 * rows), ygq8(2 * rows), yrow(rows);
            CHECK(l->activation_mode() == eq::activations::int8);
            l->gemv(x.data(), yq8.data(), pool);
            l->gemm({x2.data(), 2, cols}, {ygq8.data(), 2, rows}, pool);
            l->gemv(x2.data() + cols, yrow.data(), pool);  // a prompt's row = a decode of that token
            CHECK(std::memcmp(yrow.data(), ygq8.data() + rows, rows * sizeof(float)) == 0);
            l->set_activations(eq::activations::f32);
            l->gemv(x.data(), y.data(), pool);
            l->dequantize_row(rows - 1, yd.data());
            l->gemm({x2.data(), 2, cols}, {yg.data(), 2, rows}, pool);

            // The same through the static API, quantized with the scheme's own defaults.
            const outputs e = reg::visit(name, [&](auto t) {
                using S = typename decltype(t)::type;
                const auto q = eq::quantize<S>(wv);
                outputs o(rows, cols);
                o.storage_bytes = q.storage_bytes();
                o.blob.assign(q.blob().data(), q.blob().data() + q.storage_bytes());
                using A = typename eq::activation_of<eq::format_of<S>>::type;
                const std::size_t per_row = cols / eq::activation_block_weights<eq::format_of<S>>();
                std::vector<A> xq(per_row), x2q(2 * per_row);
                eq::quantize_activations(x.data(), cols, xq.data());
                eq::quantize_activations(x2.data(), cols, x2q.data());
                eq::quantize_activations(x2.data() + cols, cols, x2q.data() + per_row);
                eq::gemv(q.view(), x.data(), o.y.data());
                eq::gemv_q8(q.view(), xq.data(), o.yq8.data());
                eq::gemm_q8(q.view(), x2q.data(), 2, eq::matrix_view<float>(o.ygq8.data(), 2, rows));
                eq::dequantize_row(q.view(), rows - 1, o.yd.data());
                eq::gemm(q.view(), eq::matrix_view<const float>(x2.data(), 2, cols), eq::matrix_view<float>(o.yg.data(), 2, rows));
                return o;
            });
            CHECK(e.storage_bytes == l->storage_bytes());
            CHECK(std::memcmp(e.blob.data(), l->storage_data(), e.blob.size()) == 0);
            CHECK(same_bits(e.y, y));
            CHECK(same_bits(e.yq8, yq8));
            CHECK(same_bits(e.yd, yd));
            CHECK(same_bits(e.yg, yg));
            CHECK(same_bits(e.ygq8, ygq8));
            ++checked;
        }
    }
    CHECK(checked == 2 * reg::scheme_count - 12);
}

TEST_CASE("the name's algorithm decides the clip search; other options pass through", "[registry][linear]") {
    const std::size_t rows = 8, cols = 256;
    const std::vector<float> w = random_matrix(rows, cols, 11);
    const eq::matrix_view<const float> wv(w.data(), rows, cols);
    std::vector<float> imp(cols);
    for (std::size_t c = 0; c < cols; ++c) imp[c] = 1.0f + float(c % 7);
    eq::quant_options opt;
    opt.importance = imp.data();
    opt.fit.clip_search = false;  // overridden by "rtn-clip-"

    using S = eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric, eq::rtn<eq::clip_search>>;
    eq::quant_options expect = opt;
    expect.fit.clip_search = true;
    const auto q = eq::quantize<S>(wv, expect);
    const auto l = reg::make_linear("rtn-clip-int3-g64-asym", wv, opt);
    std::vector<float> a(cols), b(cols);
    for (std::size_t r = 0; r < rows; ++r) {
        eq::dequantize_row(q.view(), r, a.data());
        l->dequantize_row(r, b.data());
        CHECK(same_bits(a, b));
    }
    // Without the prefix the search is off, even if the options ask for it.
    eq::quant_options on;
    on.fit.clip_search = true;
    const auto plain = reg::make_linear("int3-g64-asym", wv, on);
    const auto q0 = eq::quantize<eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric>>(wv);
    for (std::size_t r = 0; r < rows; ++r) {
        eq::dequantize_row(q0.view(), r, a.data());
        plain->dequantize_row(r, b.data());
        CHECK(same_bits(a, b));
    }
}

TEST_CASE("edgeq::make_linear<S> and the checks of linear", "[linear]") {
    using S = eq::scheme<eq::nf4, eq::double_quant>;
    const std::vector<float> w = random_matrix(16, 256, 5);
    const std::unique_ptr<eq::linear> l = eq::make_linear<S>({w.data(), 16, 256});
    CHECK(l->scheme_name() == "nf4-g64-dq");
    CHECK(l->bits_per_weight() == eq::bits_per_weight<S>(256));
    CHECK(l->storage_bytes() == eq::format_of<S>::storage_bytes(16, 256));
    CHECK(dynamic_cast<const eq::linear_of<S>*>(l.get()) != nullptr);

    std::vector<float> x(3 * 256, 1.0f), y(3 * 16);
    CHECK_THROWS_WITH(l->gemm({x.data(), 3, 256}, {y.data(), 2, 16}), Contains("nf4-g64-dq") && Contains("16 x 256"));
    CHECK_THROWS_WITH(l->dequantize_row(16, y.data()), Contains("row 16"));
    CHECK_NOTHROW(l->gemm({x.data(), 3, 256}, {y.data(), 3, 16}));

    // A shape the format cannot hold is refused when quantizing.
    CHECK_THROWS_AS(eq::make_linear<S>({w.data(), 8, 96}), eq::error);
    // A backend other than the best one.
    const auto s = eq::make_linear<S, eq::backend::scalar>({w.data(), 16, 256});
    CHECK(std::string(s->backend_name()) == "scalar");
}

namespace {
// SpQR's static facts: (is_spqr, bits, group, stat bits, stat group, name_of) of the visited type.
struct spqr_facts {
    bool spqr, calibrated;
    int bits, group, stat_bits, stat_group;
    std::string name;
};
template <class A>
spqr_facts spqr_facts_of(std::true_type, const std::string& name) {
    return spqr_facts{true, A::calibrated, A::bits, A::group, A::stat_bits, A::stat_group, name};
}
template <class A>
spqr_facts spqr_facts_of(std::false_type, const std::string& name) {
    return spqr_facts{false, A::calibrated, 0, 0, 0, 0, name};
}
spqr_facts visited_spqr(const std::string& name) {
    return reg::visit(name, [](auto t) {
        using S = typename decltype(t)::type;
        return spqr_facts_of<typename S::algorithm>(eq::is_spqr<typename S::algorithm>{}, eq::name_of<S>());
    });
}
}  // namespace

TEST_CASE("SpQR by name: spqr-2bit-g16, spqr-3bit-g16, spqr-4bit-g16", "[registry][spqr]") {
    for (int bits : {2, 3, 4}) {
        const std::string n = "spqr-" + std::to_string(bits) + "bit-g16";
        INFO(n);
        CHECK(reg::contains(n));
        CHECK(reg::canonical(n) == n);
        const reg::scheme_info in = reg::info(n);
        CHECK(in.name == n);
        CHECK(in.format_name == n);
        CHECK(in.algorithm == "spqr");
        CHECK(in.calibrated);
        CHECK(in.bits == bits);
        CHECK(in.group == 16);
        CHECK(in.asymmetric);
        CHECK(in.codebook == "int");
        CHECK(in.scale == "spqr");
        // The dense part exactly: codes + (3-bit scale + 3-bit zero) / 16 + 4 fp16 per 16 x 16.
        CHECK(in.bits_per_weight == bits + 6.0 / 16 + 64.0 / 256);
        const spqr_facts f = visited_spqr(n);
        CHECK(f.spqr);
        CHECK(f.calibrated);
        CHECK(f.bits == bits);
        CHECK(f.group == 16);
        CHECK(f.stat_bits == 3);
        CHECK(f.stat_group == 16);
        CHECK(f.name == n);  // name_of<scheme<spqr<bits>>>
        CHECK(reg::names()[reg::scheme_count + std::size_t(bits - 2)] == n);
        const std::vector<float> w = random_matrix(16, 128, 2);
        CHECK_THROWS_WITH(reg::make_linear(n, {w.data(), 16, 128}), Contains("needs calibration") && Contains(n));
    }
    {  // the 4-bit base in groups of 32
        const reg::scheme_info in = reg::info("spqr-4bit-g32");
        CHECK(in.algorithm == "spqr");
        CHECK(in.bits == 4);
        CHECK(in.group == 32);
        CHECK(in.bits_per_weight == 4 + 6.0 / 32 + 64.0 / 512);
        const spqr_facts f = visited_spqr("spqr-4bit-g32");
        CHECK(f.spqr);
        CHECK(f.group == 32);
        CHECK(f.stat_group == 16);
        CHECK(f.name == "spqr-4bit-g32");
        CHECK(reg::names()[reg::scheme_count + 3] == "spqr-4bit-g32");
        // g32 is built in at 4 bits only
        CHECK_THROWS_WITH(reg::info("spqr-2bit-g32"), Contains("not a built-in SpQR group at 2 bits") &&
                                                          Contains("did you mean spqr-2bit-g16?"));
        CHECK_THROWS_WITH(reg::info("spqr-4bit-g64"), Contains("g16 and g32") && Contains("spqr-4bit-g32"));
    }
    CHECK(visited_spqr("gptq-int4-g128").name == "gptq-int4-g128");
    CHECK_FALSE(visited_spqr("gptq-int4-g128").spqr);
    CHECK(reg::info("gptq-int4-g128").calibrated);
    CHECK(reg::info("awq-int4-g128").calibrated);
    CHECK_FALSE(reg::info("rtn-clip-int4-g128").calibrated);
    CHECK_FALSE(reg::info("q4_k").calibrated);

    // Misspellings: what is wrong, and the name meant.
    CHECK_THROWS_WITH(reg::info("spqr-3bit-g32"), Contains("'g32' is not a built-in SpQR group") && Contains("g16") &&
                                                      Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("spqr-3bit"), Contains("the group is missing") && Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("spqr-5bit-g16"), Contains("not a built-in SpQR width") && Contains("2bit, 3bit and 4bit") &&
                                                      Contains("did you mean spqr-4bit-g16"));
    CHECK_THROWS_WITH(reg::info("spqr-int3-g16"), Contains("'3bit'") && Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("spqr-3-g16"), Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("spqr-3bit-g16-asym"), Contains("drop '-asym'") && Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("spqr-3bit-g16-f32"), Contains("ends with the group") && Contains("spqr-3bit-g16"));
    CHECK_THROWS_WITH(reg::info("spqr"), Contains("width and the group") && Contains("spqr-3bit-g16"));
    CHECK_THROWS_WITH(reg::info("gptq-spqr-3bit-g16"), Contains("drop the prefix 'gptq-'") && Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("rtn-spqr-3bit-g16"), Contains("drop the prefix 'rtn-'"));
    CHECK_THROWS_WITH(reg::info("SpQR-3bit-g16"), Contains("lower case") && Contains("did you mean spqr-3bit-g16?"));
    CHECK_THROWS_WITH(reg::info("sqpr-3bit-g16"), Contains("did you mean spqr-3bit-g16"));
    CHECK_THROWS_WITH(reg::info("spqr3bit-g16"), Contains("did you mean spqr-3bit-g16"));
    CHECK_THROWS_WITH(reg::info("spqr-3bit-g016"), Contains("canonical") && Contains("spqr-3bit-g16"));
    CHECK_FALSE(reg::contains("spqr-3bit-g32"));
    CHECK_FALSE(reg::contains("spqr-int3-g16"));
    CHECK_THROWS_AS(reg::visit("spqr-8bit-g16", [](auto) { return 0; }), eq::error);
}
