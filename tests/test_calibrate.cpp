// The calibration driver (engine/calibrate.hpp): windows, the statistics each matrix sees, and
// the block-by-block order (later blocks see what the quantized earlier blocks compute).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <edgeq/engine/calibrate.hpp>
#include <edgeq/kernel/simd/dense.hpp>

namespace eq = edgeq;
namespace engine = edgeq::engine;

namespace {

// A small random model (GQA, q_dim != dim) whose matrices are dense f32.
// loud: every 13th channel of the norms 8 times louder, as real models have a few outlier
// channels (what AWQ protects).
engine::llama_model tiny_model(unsigned seed, int n_kv_heads = 2, bool loud = false) {
    engine::llama_config c;
    c.dim = 64;
    c.hidden_dim = 96;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = n_kv_heads;
    c.head_dim = 16;
    c.vocab_size = 50;
    c.seq_len = 32;
    std::mt19937 g(seed);
    std::normal_distribution<float> nd(0.0f, 0.2f);
    engine::tensor_source src;
    src.matrix = [&](const std::string&, std::size_t r, std::size_t cols) {
        std::vector<float> w(r * cols);
        for (float& v : w) v = nd(g);
        return eq::make_dense_linear<eq::dense_f32>({w.data(), r, cols});
    };
    src.vector = [&](const std::string&, std::size_t n) {
        std::vector<float> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = (1.0f + nd(g)) * (loud && i % 13 == 0 ? 8.0f : 1.0f);
        return v;
    };
    return engine::model_from_tensors(c, src);
}

std::unique_ptr<eq::linear> dense_copy(const engine::calib_matrix& m) {
    return eq::make_dense_linear<eq::dense_f32>(m.weights);
}

std::vector<float> last_logits(const engine::llama_model& m, const std::vector<int>& ids) {
    engine::llama_session s(m);
    return s.prompt(ids);
}

}  // namespace

TEST_CASE("calibration windows: seeded, inside the text, refused when the text is short", "[calibrate]") {
    std::vector<int> text(100);
    for (int i = 0; i < 100; ++i) text[std::size_t(i)] = i;
    const auto a = engine::calibration_windows(text, 5, 16, 7), b = engine::calibration_windows(text, 5, 16, 7);
    CHECK(a == b);
    CHECK(a != engine::calibration_windows(text, 5, 16, 8));
    for (const auto& w : a) {
        REQUIRE(w.size() == 16);
        for (std::size_t i = 1; i < w.size(); ++i) CHECK(w[i] == w[i - 1] + 1);  // contiguous
    }
    CHECK_THROWS_WITH(engine::calibration_windows(text, 2, 101), Catch::Contains("fewer than one window"));
}

TEST_CASE("quantize_calibrated: every matrix once, in order, with its input statistics", "[calibrate]") {
    engine::llama_model m = tiny_model(1);
    const std::vector<int> ids = {1, 5, 9, 2, 33, 7, 7, 12};
    const std::vector<float> before = last_logits(m, ids);
    std::vector<int> text(200);
    std::mt19937 g(2);
    for (int& t : text) t = int(g() % 50);
    const auto windows = engine::calibration_windows(text, 3, 20, 1);

    std::vector<std::string> names;
    std::map<std::string, std::size_t> cols_seen;
    engine::calib_options opt;
    opt.on_stats = [&](const std::string& name, const eq::input_stats& s) { cols_seen[name] = s.cols(); };
    engine::quantize_calibrated(
        m, windows,
        [&](const engine::calib_matrix& j) {
            names.push_back(j.name);
            CHECK(j.inputs.samples() == 60);  // every token of every window, each shared input once
            CHECK(j.inputs.cols() == j.weights.cols);
            CHECK(j.inputs.has_hessian());
            return dense_copy(j);
        },
        opt);
    REQUIRE(names.size() == 14);
    CHECK(names[0] == "blk.0.attn_q");
    CHECK(names[3] == "blk.0.attn_output");
    CHECK(names[6] == "blk.0.ffn_down");
    CHECK(names[13] == "blk.1.ffn_down");
    CHECK(cols_seen["blk.1.attn_output"] == 64);  // q_dim = 4 x 16
    CHECK(cols_seen["blk.1.ffn_down"] == 96);
    CHECK(last_logits(m, ids) == before);  // exact copies change nothing

    // A quantizer's refusal names the tensor.
    engine::llama_model m2 = tiny_model(1);
    CHECK_THROWS_WITH(engine::quantize_calibrated(m2, windows,
                                                  [](const engine::calib_matrix&) -> std::unique_ptr<eq::linear> {
                                                      throw eq::error("the row length is not a multiple of the block");
                                                  }),
                      Catch::Equals("edgeq: blk.0.attn_q: the row length is not a multiple of the block"));
}

TEST_CASE("quantize_calibrated: later blocks are calibrated on the quantized earlier ones", "[calibrate]") {
    // Block 0 quantized to zero matrices passes its input through (residuals only), so block 1's
    // attention input is rmsnorm(embedding) * attn_norm: its E[x^2] is known exactly.
    engine::llama_model m = tiny_model(3);
    std::vector<int> text(60);
    for (std::size_t i = 0; i < text.size(); ++i) text[i] = int(i % 50);
    const auto windows = engine::calibration_windows(text, 2, 10, 4);
    std::vector<float> seen;
    engine::calib_options opt;
    opt.hessian = false;
    engine::quantize_calibrated(m, windows, [&](const engine::calib_matrix& j) -> std::unique_ptr<eq::linear> {
        if (j.name == "blk.1.attn_q") seen = j.inputs.importance();
        if (j.layer == 0) {
            std::vector<float> zero(j.weights.rows * j.weights.cols, 0.0f);
            return eq::make_dense_linear<eq::dense_f32>({zero.data(), j.weights.rows, j.weights.cols});
        }
        return dense_copy(j);
    }, opt);
    const std::size_t dim = 64;
    std::vector<double> expect(dim, 0.0);
    std::vector<float> x(dim), xn(dim);
    std::size_t n = 0;
    for (const auto& w : windows)
        for (int t : w) {
            m.token_embd->dequantize_row(std::size_t(t), x.data());
            engine::rmsnorm(xn.data(), x.data(), m.layers[1].attn_norm.data(), dim, m.config.rms_eps);
            for (std::size_t c = 0; c < dim; ++c) expect[c] += double(xn[c]) * xn[c];
            ++n;
        }
    REQUIRE(seen.size() == dim);
    for (std::size_t c = 0; c < dim; ++c) CHECK(seen[c] == Approx(expect[c] / double(n)).epsilon(1e-5));
}

TEST_CASE("quantize_calibrated: AWQ-style scales folded into norms, v and up leave the float model unchanged", "[calibrate]") {
    for (int kv : {4, 2}) {  // without GQA o's scales fold into v; with it o is left alone
        INFO("n_kv_heads " << kv);
        engine::llama_model m = tiny_model(5, kv);
        const std::vector<int> ids = {4, 8, 15, 16, 23, 42, 1, 2};
        const std::vector<float> before = last_logits(m, ids);
        std::vector<int> text(80);
        for (std::size_t i = 0; i < text.size(); ++i) text[i] = int((i * 7) % 50);
        engine::calib_options opt;
        opt.hessian = false;
        opt.sample_rows = 8;
        std::vector<engine::layer_input> searched;
        opt.scale_search = [&](const engine::calib_group& g) {
            searched.push_back(g.input);
            CHECK(g.sample.rows == 8);
            CHECK(g.sample.cols == g.inputs.cols());
            std::vector<float> sc(g.inputs.cols());
            for (std::size_t j = 0; j < sc.size(); ++j) sc[j] = 0.5f + float(j % 7) * 0.25f;
            return sc;
        };
        int scaled = 0;
        engine::quantize_calibrated(m, engine::calibration_windows(text, 2, 12, 9), [&](const engine::calib_matrix& j) {
            scaled += j.scales.empty() ? 0 : 1;
            return dense_copy(j);
        }, opt);
        CHECK(searched.size() == std::size_t(kv == 4 ? 8 : 6));
        CHECK(scaled == (kv == 4 ? 14 : 12));
        const std::vector<float> after = last_logits(m, ids);
        double num = 0, den = 0;
        for (std::size_t i = 0; i < after.size(); ++i) {
            num += (after[i] - before[i]) * (after[i] - before[i]);
            den += before[i] * before[i];
        }
        CHECK(std::sqrt(num / den) < 1e-5);
        CHECK(after != before);  // the weights did change (rounding differs)
    }
}

#include <edgeq/engine/mixtures.hpp>

TEST_CASE("llama.cpp mixtures: q4_k_m gives attn_v and ffn_down Q6_K where llama-quantize does", "[mixtures]") {
    // 22 layers (TinyLlama): more bits for layers < 2, >= 19, and (i - 2) % 3 == 2.
    std::vector<int> six;
    for (int i = 0; i < 22; ++i)
        if (engine::mixture_type("q4_k_m", "blk." + std::to_string(i) + ".attn_v.weight", i, 22, 8, 2048) == "q6_k")
            six.push_back(i);
    CHECK(six == std::vector<int>{0, 1, 4, 7, 10, 13, 16, 19, 20, 21});
    CHECK(engine::mixture_type("q4_k_m", "blk.4.ffn_down.weight", 4, 22, 8, 5632) == "q6_k");
    CHECK(engine::mixture_type("q4_k_m", "blk.5.ffn_down.weight", 5, 22, 8, 5632) == "q4_k");
    CHECK(engine::mixture_type("q4_k_m", "blk.5.attn_q.weight", 5, 22, 8, 2048) == "q4_k");
    CHECK(engine::mixture_type("q4_k_m", "output.weight", 0, 22, 8, 2048) == "q6_k");
    CHECK(engine::mixture_type("q4_k_m", "token_embd.weight", 0, 22, 8, 2048) == "q4_k");
    CHECK(engine::mixture_type("q4_k_m", "token_embd.weight", 0, 22, 8, 2048, true) == "q6_k");  // tied
    CHECK(engine::mixture_type("q2_k", "blk.0.attn_v.weight", 0, 22, 8, 2048) == "q4_k");       // GQA >= 4
    CHECK(engine::mixture_type("q2_k", "blk.0.attn_v.weight", 0, 22, 1, 2048) == "q3_k");
    CHECK(engine::mixture_type("q3_k_m", "blk.1.attn_v.weight", 1, 22, 1, 2048) == "q5_k");
    CHECK(engine::mixture_type("q4_k_s", "blk.3.attn_v.weight", 3, 22, 1, 2048) == "q5_k");
    // Rows of 64 (TinyStories-656K) cannot hold 256-weight blocks: llama.cpp's fallbacks.
    CHECK(engine::mixture_type("q4_k_m", "blk.5.attn_q.weight", 5, 22, 1, 64) == "q5_0");
    CHECK(engine::mixture_type("q4_k_m", "blk.0.attn_v.weight", 0, 22, 1, 64) == "q8_0");
    CHECK(engine::mixture_type("q4_k_m", "output.weight", 0, 22, 1, 64) == "q8_0");
    CHECK_THROWS_WITH(engine::mixture_type("q4_k_x", "output.weight", 0, 1, 1, 256), Catch::Contains("unknown mixture"));
}

#include <edgeq/engine/quantize_model.hpp>

namespace {
// Relative L2 distance of the logits of every calibration token from the float model's.
double logits_error(const engine::llama_model& q, const engine::llama_model& f, const std::vector<std::vector<int>>& windows) {
    double num = 0, den = 0;
    for (const auto& w : windows) {
        engine::llama_session a(q), b(f);
        std::vector<float> la(w.size() * 50), lb(w.size() * 50);
        a.eval(w.data(), w.size(), la.data(), true);
        b.eval(w.data(), w.size(), lb.data(), true);
        for (std::size_t i = 0; i < la.size(); ++i) num += (la[i] - lb[i]) * (la[i] - lb[i]), den += lb[i] * lb[i];
    }
    return std::sqrt(num / den);
}

template <class S>
double calibrated_error(const std::vector<std::vector<int>>& windows, std::string& scheme_seen) {
    engine::llama_model m = tiny_model(21, 4, true);
    const engine::llama_model f = tiny_model(21, 4, true);
    const engine::calib_plan p = engine::plan_of<S>();
    engine::quantize_calibrated(m, windows, p.quantize, p.options);
    scheme_seen = m.layers[1].w2->scheme_name();
    return logits_error(m, f, windows);
}
}  // namespace

TEST_CASE("plan_of: GPTQ and AWQ through the calibration driver beat RTN on their calibration tokens", "[calibrate][gptq]") {
    std::vector<int> text(400);
    std::mt19937 g(5);
    for (int& t : text) t = int(g() % 50);
    const auto windows = engine::calibration_windows(text, 4, 24, 2);
    using rtn3 = eq::scheme<eq::bits<3>, eq::group<32>>;
    using gptq3 = eq::scheme<eq::gptq<>, eq::bits<3>, eq::group<32>>;
    using awq3 = eq::scheme<eq::awq<>, eq::bits<3>, eq::group<32>>;
    std::string n_rtn, n_gptq, n_awq;
    const double e_rtn = calibrated_error<rtn3>(windows, n_rtn);
    const double e_gptq = calibrated_error<gptq3>(windows, n_gptq);
    const double e_awq = calibrated_error<awq3>(windows, n_awq);
    CHECK(n_rtn == "int3-g32");
    CHECK(n_gptq == "gptq-int3-g32");
    CHECK(n_awq == "awq-int3-g32");
    INFO("logits error: rtn " << e_rtn << ", gptq " << e_gptq << ", awq " << e_awq);
    CHECK(e_gptq < 0.9 * e_rtn);
    CHECK(e_awq < e_rtn);
    CHECK_FALSE(engine::plan_of<rtn3>().needs_calibration);
    CHECK(engine::plan_of<gptq3>().options.hessian);
}

TEST_CASE("a long prompt (packed attention and products) agrees with decoding token by token", "[calibrate][engine]") {
    // 300 tokens: several query blocks of the packed attention, and a P V product over more than
    // one 256-key slice.
    const engine::llama_model m = tiny_model(17);
    std::mt19937 g(3);
    std::uniform_int_distribution<int> tok(0, 49);
    std::vector<int> ids(300);
    for (int& t : ids) t = tok(g);
    eq::thread_pool one(1), two(2);
    const std::size_t V = 50;
    std::vector<float> all1(ids.size() * V), all2(ids.size() * V);
    engine::llama_session p1(m, one, 300), p2(m, two, 300);
    p1.eval(ids.data(), ids.size(), all1.data(), true);
    p2.eval(ids.data(), ids.size(), all2.data(), true);
    CHECK(all1 == all2);  // the thread count changes nothing
    engine::llama_session d(m, two, 300);
    double worst = 0;
    for (std::size_t t = 0; t < ids.size(); ++t) {
        const std::vector<float>& l = d.decode(ids[t]);
        double e = 0, r = 0;
        for (std::size_t i = 0; i < V; ++i) e += double(l[i] - all1[t * V + i]) * (l[i] - all1[t * V + i]), r += double(l[i]) * l[i];
        worst = std::max(worst, std::sqrt(e / r));
    }
    INFO("worst relative L2 of a token's logits, prompt against decode: " << worst);
    CHECK(worst <= 1e-5);  // float summation order only
}

TEST_CASE("quantize_calibrated: the statistics pass (float32 copies, no ffn_down product) sees the float model's inputs",
          "[calibrate]") {
    // The driver's first pass runs block l on float32 copies of its weights and skips ffn_down's
    // product (its output is thrown away): every matrix must still get exactly what a plain
    // forward pass of the float model feeds it.
    engine::llama_model m = tiny_model(7, 2, true);
    std::vector<int> text(300);
    std::mt19937 g(9);
    for (int& t : text) t = int(g() % 50);
    const auto windows = engine::calibration_windows(text, 3, 24, 5);
    const std::size_t dim = 64;
    // Expected: layer 0 statistics from the plain model (the driver only replaces layer 0's
    // matrices with exact copies, so layer 1 sees the float model too).
    std::map<std::string, eq::input_stats> expect;
    {
        engine::llama_session s(m);
        s.set_observer([&](std::size_t layer, engine::layer_matrix w, eq::matrix_view<const float> x) {
            const std::string n = engine::matrix_name(layer, w);
            auto it = expect.find(n);
            if (it == expect.end()) it = expect.emplace(n, eq::input_stats(x.cols)).first;
            it->second.add(x);
        });
        for (const auto& w : windows) {
            std::vector<float> h(w.size() * dim);
            s.reset();
            s.embed(w.data(), w.size(), h.data());
            s.forward_layers(h.data(), w.size(), 0, 2);
        }
    }
    std::size_t checked = 0;
    engine::quantize_calibrated(m, windows, [&](const engine::calib_matrix& j) {
        INFO(j.name);
        const eq::input_stats& e = expect.at(j.name);
        CHECK(j.inputs.samples() == e.samples());
        CHECK(j.inputs.importance() == e.importance());
        CHECK(j.inputs.hessian() == e.hessian());
        ++checked;
        return dense_copy(j);
    });
    CHECK(checked == 14);
}

TEST_CASE("plan_of<gptq>: q, k and v (gate and up) share one factor of H, with GPTQ's bytes for each", "[calibrate][gptq]") {
    std::vector<int> text(400);
    std::mt19937 g(11);
    for (int& t : text) t = int(g() % 50);
    const auto windows = engine::calibration_windows(text, 4, 24, 3);
    using S = eq::scheme<eq::gptq<>, eq::bits<3>, eq::group<32>>;
    const engine::calib_plan plan = engine::plan_of<S>();
    engine::llama_model m = tiny_model(4);
    std::size_t same = 0;
    std::uint64_t last_version = 0;
    std::size_t versions = 0;
    engine::quantize_calibrated(
        m, windows,
        [&](const engine::calib_matrix& j) {
            if (j.inputs.version() != last_version) ++versions, last_version = j.inputs.version();
            std::unique_ptr<eq::linear> q = plan.quantize(j);
            eq::gptq_options o;
            o.quant = eq::default_options<S>();
            const eq::qmatrix<eq::format_of<S>> alone = eq::gptq_quantize<eq::format_of<S>>(j.weights, j.inputs.hessian(), o);
            INFO(j.name);
            REQUIRE(q->storage_bytes() == alone.storage_bytes());
            const bool equal = std::equal(alone.blob().data(), alone.blob().data() + alone.storage_bytes(), q->storage_data());
            CHECK(equal);
            same += equal;
            return q;
        },
        plan.options);
    CHECK(same == 14);
    CHECK(versions == 8);  // four inputs per block, each a new state of the statistics
    // A copy keeps its version; adding to it gives a new one.
    eq::input_stats a(4), b(4);
    CHECK(a.version() != b.version());
    eq::input_stats c = a;
    CHECK(c.version() == a.version());
    const float x[4] = {1, 2, 3, 4};
    c.add({x, 1, 4});
    CHECK(c.version() != a.version());
}
