// GGUF in the engine and the converter (engine/load_gguf.hpp): every shared model converted to
// F32 GGUF must give the float32 references (reference/README.md) through the GGUF file alone,
// tokenizer included; the Q8_0 conversion of TinyStories-656K must be llama.cpp's file, tensor
// for tensor; damaged GGUF, safetensors and llama2.c models must be refused with edgeq::error.
// The shared folder: $EDGEQ_SHARED, else <repo>/../shared; the tests on it are skipped with a
// message when it is absent. EDGEQ_TEST_QUICK=1 (qemu) scores fewer perplexity windows.
#include <catch2/catch.hpp>

#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <edgeq/engine/llama.hpp>
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/engine/quantize_model.hpp>
#include <edgeq/engine/sampler.hpp>
#include <edgeq/engine/tokenizer/load.hpp>
#include <edgeq/io/gguf.hpp>
#include <edgeq/io/llama2c.hpp>
#include <edgeq/io/safetensors.hpp>

#include <nlohmann/json.hpp>

using namespace edgeq;
namespace gguf = edgeq::io::gguf;

namespace {

using test_support::contains;
using test_support::error_of;
using test_support::read_bytes;
using test_support::read_floats;
using test_support::temp_dir;
using test_support::worst_rel_l2;
using test_support::write_bytes;

// Converts a model to GGUF with the library (what `edgeq convert` does).
void convert(const std::string& in, const std::string& tokenizer, const std::string& out, const std::string& type) {
    const engine::llama_model m = engine::load_model(in);
    const auto tk = tok::load_tokenizer(tokenizer, m.config.vocab_size);
    engine::gguf_save_options o;
    REQUIRE(engine::gguf_builtin_target(type, o.target, o.encode));
    o.name = "test";
    engine::save_gguf(m, tk.get(), out, o);
}

struct shared_model {
    const char* name;
    const char* model;      // under models/
    const char* tokenizer;  // under models/
    int ppl_windows;        // perplexity windows to score (64: the reference's whole protocol)
};

}  // namespace

TEST_CASE("convert to F32 GGUF: logits, greedy and perplexity of the shared models match the references",
          "[convert][reference]") {
    REQUIRE_SHARED(dir);
    const bool quick = std::getenv("EDGEQ_TEST_QUICK") != nullptr;
    const std::string text = read_bytes(dir + "/data/tinystories_valid_prefix.txt");
    REQUIRE(text.size() >= 794375);
    const std::string heldout = text.substr(635620, 794375 - 635620);  // reference/README.md
    temp_dir tmp;
    // mix-llama-27M: 2 windows of 512 tokens keep the test short (each is 14 GFLOP).
    const shared_model models[] = {{"stories260K", "stories260K/stories260K.bin", "stories260K/tok512.bin", 64},
                                   {"TinyStories-656K", "TinyStories-656K", "TinyStories-656K/tokenizer.json", 64},
                                   {"mix-llama-27M", "mix-llama-27M", "mix-llama-27M/tokenizer.json", 2}};
    for (const shared_model& sm : models) {
        INFO(sm.name);
        const std::string in = dir + "/models/" + sm.model, rd = dir + "/reference/" + sm.name;
        if (!std::ifstream(rd + "/manifest.json").good() || !io::file_exists(dir + "/models/" + sm.tokenizer)) {
            WARN("skipped " << sm.name << ": not in ../shared");
            continue;
        }
        const std::string out = tmp.file(std::string(sm.name) + ".gguf");
        convert(in, dir + "/models/" + sm.tokenizer, out, "f32");

        // Everything below comes from the GGUF file alone.
        const engine::llama_model m = engine::load_model(out);
        const auto tk = tok::load_tokenizer(out);
        CHECK(m.config.pairing == engine::rope_pairing::interleaved);
        CHECK(m.token_embd->scheme_name() == "f32");
        const nlohmann::json manifest = nlohmann::json::parse(read_bytes(rd + "/manifest.json"));
        const nlohmann::json& p = manifest["prompts"][0];
        const std::vector<int> ids = p["ids"].get<std::vector<int>>();
        CHECK(tk->encode(p["text"].get<std::string>(), true, false) == ids);

        const std::size_t V = std::size_t(m.config.vocab_size);
        const std::vector<float> ref = read_floats(rd + "/prompt1_logits.f32.bin");
        REQUIRE(ref.size() == ids.size() * V);
        engine::llama_session s(m);
        std::vector<float> all(ids.size() * V);
        s.eval(ids.data(), ids.size(), all.data(), true);
        const double w = worst_rel_l2(all, ref, V);
        INFO("worst relative L2 per position " << w);
        std::printf("%s: F32 GGUF logits, worst relative L2 per position %.3g\n", sm.name, w);
        CHECK(w < 1e-4);

        const std::vector<int> want = p["greedy_new_ids"].get<std::vector<int>>();
        const std::vector<double> margin = p["greedy_top1_minus_top2_logit"].get<std::vector<double>>();
        std::vector<float> logits(all.end() - std::ptrdiff_t(V), all.end());
        std::size_t same = 0;
        for (std::size_t i = 0; i < want.size() && margin[i] >= 1e-3; ++i) {
            const int got = engine::argmax(logits.data(), V);
            INFO("greedy step " << i);
            CHECK(got == want[i]);
            same += got == want[i];
            if (i + 1 < want.size()) logits = s.decode(got);
        }
        CHECK(same > 0);

        // Perplexity, the reference protocol, with the GGUF's own tokenizer.
        const nlohmann::json& pr = manifest["perplexity"]["texts"]["tinystories_heldout"];
        const std::vector<int> ppl_ids = tk->encode(heldout, false, false);
        CHECK(ppl_ids.size() == pr["n_tokens"].get<std::size_t>());
        engine::perplexity_options o;
        o.n_ctx = 512;
        o.max_windows = quick ? std::min(sm.ppl_windows, 2) : sm.ppl_windows;
        thread_pool pool(2);
        const engine::perplexity_result r = engine::perplexity(m, ppl_ids, o, pool);
        double ref_sum = 0;
        for (std::size_t i = 0; i < r.window_mean_nll.size(); ++i) {
            const double rw = pr["per_window_mean_nll"][i].get<double>();
            CHECK(std::fabs(r.window_mean_nll[i] - rw) < 2e-5);  // the manifest's 6 decimals
            ref_sum += rw;
        }
        // The same windows' perplexity to 4 significant digits (all 64: the manifest's ppl).
        const double ref_ppl = o.max_windows == 64 ? pr["ppl"].get<double>() : std::exp(ref_sum / double(r.window_mean_nll.size()));
        std::printf("%s: perplexity over %d windows %.6f, reference %.6f\n", sm.name, r.n_windows, r.ppl, ref_ppl);
        CHECK(std::fabs(r.ppl - ref_ppl) / ref_ppl < 5e-5);
        char a[32], b[32];
        std::snprintf(a, sizeof a, "%.4g", r.ppl);
        std::snprintf(b, sizeof b, "%.4g", ref_ppl);
        CHECK(std::string(a) == std::string(b));
    }
}

TEST_CASE("convert: TinyStories-656K to Q8_0 is llama.cpp's file, tensor for tensor", "[convert][reference]") {
    REQUIRE_SHARED(dir);
    const std::string golden = dir + "/models/TinyStories-656K/TinyStories-656K-Q8_0.gguf";
    if (!io::file_exists(golden)) {
        WARN("skipped: " << golden << " not found");
        return;
    }
    temp_dir tmp;
    const std::string out = tmp.file("q8.gguf");
    convert(dir + "/models/TinyStories-656K", dir + "/models/TinyStories-656K/tokenizer.json", out, "q8_0");
    const gguf::file mine(out), ref(golden);
    REQUIRE(mine.tensors().size() == ref.tensors().size());
    int identical = 0;
    for (const gguf::tensor_info& t : ref.tensors()) {
        INFO(t.name);
        const gguf::tensor_info* u = mine.find(t.name);
        REQUIRE(u);
        CHECK(u->type == t.type);
        CHECK(u->shape == t.shape);
        const bool same = u->bytes == t.bytes && std::memcmp(u->data, t.data, std::size_t(t.bytes)) == 0;
        CHECK(same);
        identical += same;
    }
    CHECK(identical == 20);
    // The metadata llama.cpp's loader reads.
    for (const char* k : {"llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
                          "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count",
                          "general.file_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
        INFO(k);
        CHECK(mine.get_uint(k) == ref.get_uint(k));
    }
    CHECK(mine.get_string("general.architecture") == "llama");
    CHECK(mine.get_u32("general.alignment") == 32);
    CHECK(mine.get_float("llama.attention.layer_norm_rms_epsilon") == ref.get_float("llama.attention.layer_norm_rms_epsilon"));
    CHECK(mine.get_strings("tokenizer.ggml.tokens") == ref.get_strings("tokenizer.ggml.tokens"));
    CHECK(mine.get_array<std::int32_t>("tokenizer.ggml.token_type") == ref.get_array<std::int32_t>("tokenizer.ggml.token_type"));

    // The Q8_0 model runs, close to the F32 one; Q8_0 -> Q8_0 through the engine changes no byte.
    const engine::llama_model q = engine::load_model(out);
    CHECK(q.token_embd->scheme_name() == "q8_0");
    const std::string again = tmp.file("again.gguf");
    convert(out, out, again, "q8_0");
    const gguf::file g2(again);
    for (const gguf::tensor_info& t : mine.tensors()) {
        INFO(t.name);
        CHECK(std::memcmp(g2.tensor(t.name).data, t.data, std::size_t(t.bytes)) == 0);
    }
    // llama.cpp's own file loads and tokenizes (its vocabulary has no merges: scores only).
    const engine::llama_model lm = engine::load_model(golden);
    CHECK(lm.config.vocab_size == 2048);
    CHECK(tok::load_tokenizer(golden)->bos() == 1);
}

TEST_CASE("convert: GGUF in, other types out; stories260K's 172-wide rows fall back to F16", "[convert]") {
    REQUIRE_SHARED(dir);
    temp_dir tmp;
    const std::string f32 = tmp.file("s.gguf"), q = tmp.file("q4k.gguf");
    const std::string in = dir + "/models/stories260K/stories260K.bin", tk = dir + "/models/stories260K/tok512.bin";
    convert(in, tk, f32, "f32");
    const engine::llama_model base = engine::load_model(in);
    // Budgets: relative L2 of the logits of a 260K model, whose errors do not average out.
    const std::pair<const char*, double> types[] = {{"f16", 5e-3}, {"bf16", 5e-2}, {"q8_0", 5e-2}, {"q4_0", 0.3}};
    for (const auto& tb : types) {
        const char* type = tb.first;
        INFO(type);
        const engine::llama_model m = engine::load_model(f32);
        const auto t = tok::load_tokenizer(f32);
        engine::gguf_save_options o;
        REQUIRE(engine::gguf_builtin_target(type, o.target, o.encode));
        std::vector<std::string> fb;
        o.fallbacks = &fb;
        engine::save_gguf(m, t.get(), q, o);
        const gguf::file g(q);
        CHECK(g.tensor("blk.0.ffn_down.weight").type == (std::string(type).compare(0, 1, "q") == 0 ? gguf::type::f16
                                                                                                   : g.tensor("blk.0.attn_q.weight").type));
        CHECK(fb.size() == (std::string(type).compare(0, 1, "q") == 0 ? 5u : 0u));
        const engine::llama_model c = engine::load_model(q);
        engine::llama_session a(base), b(c);
        const std::vector<int> ids = {1, 403, 407, 261, 378};
        const std::vector<float> la = a.prompt(ids), lb = b.prompt(ids);
        double d = 0, r = 0;
        for (std::size_t i = 0; i < la.size(); ++i) d += (la[i] - lb[i]) * (la[i] - lb[i]), r += double(la[i]) * la[i];
        INFO("relative L2 against f32 " << std::sqrt(d / r));
        CHECK(std::sqrt(d / r) < tb.second);
    }
    // With a factory, a GGUF is requantized on load.
    const engine::llama_model h = engine::load_gguf(f32, io::dense_factory("bf16"));
    CHECK(h.layers[0].wq->scheme_name() == "bf16");
}

// --- damaged files ---------------------------------------------------------------------------

namespace {

void put32(std::string& o, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) o += char((v >> (8 * i)) & 0xff);
}
void put64(std::string& o, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) o += char((v >> (8 * i)) & 0xff);
}

// A tiny llama model as a GGUF file (dim 64, 2 heads, 1 layer, vocab 32), with hooks to damage it.
struct tiny_gguf {
    std::uint32_t heads = 2, kv_heads = 2, q_rows = 64;
    std::uint32_t q_type = gguf::type::f32;
    std::string arch = "llama";
    float fill = 0.01f;
    bool with_norm = true;

    void write(const std::string& path) const {
        gguf::writer w;
        w.set_string("general.architecture", arch);
        w.set_u32(arch + ".block_count", 1);
        w.set_u32(arch + ".context_length", 16);
        w.set_u32(arch + ".embedding_length", 64);
        w.set_u32(arch + ".feed_forward_length", 96);
        w.set_u32(arch + ".attention.head_count", heads);
        w.set_u32(arch + ".attention.head_count_kv", kv_heads);
        static std::vector<float> data;
        data.assign(64 * 96 * 8, fill);
        static std::vector<std::uint8_t> raw(1 << 16, 0);
        auto mat = [&](const std::string& n, std::uint64_t rows, std::uint64_t cols, std::uint32_t type = gguf::type::f32) {
            if (type == gguf::type::f32) w.add_tensor(n, type, {cols, rows}, data.data(), rows * cols * 4);
            else w.add_tensor(n, type, {cols, rows}, raw.data(), rows * cols / 32 * 34);
        };
        mat("token_embd.weight", 32, 64);
        if (with_norm) w.add_tensor("blk.0.attn_norm.weight", gguf::type::f32, {64}, data.data(), 256);
        mat("blk.0.attn_q.weight", q_rows, 64, q_type);
        mat("blk.0.attn_k.weight", 64, 64);
        mat("blk.0.attn_v.weight", 64, 64);
        mat("blk.0.attn_output.weight", 64, 64);
        w.add_tensor("blk.0.ffn_norm.weight", gguf::type::f32, {64}, data.data(), 256);
        mat("blk.0.ffn_gate.weight", 96, 64);
        mat("blk.0.ffn_down.weight", 64, 96);
        mat("blk.0.ffn_up.weight", 96, 64);
        w.add_tensor("output_norm.weight", gguf::type::f32, {64}, data.data(), 256);
        w.write(path);
    }
};

}  // namespace

TEST_CASE("damaged GGUF models: edgeq::error, never a crash", "[convert][damaged]") {
    temp_dir tmp;
    const std::string p = tmp.file("m.gguf");
    tiny_gguf ok;
    ok.write(p);
    {
        const engine::llama_model m = engine::load_model(p);
        CHECK(m.config.n_layers == 1);
        CHECK(m.config.vocab_size == 32);
        engine::llama_session s(m);
        CHECK(s.decode(3).size() == 32);
    }
    const std::string good = read_bytes(p);
    auto damaged = [&](const std::function<void(tiny_gguf&)>& f) {
        tiny_gguf t;
        f(t);
        t.write(p);
        return error_of([&] { engine::load_model(p); });
    };
    CHECK(contains(damaged([](tiny_gguf& t) { t.q_rows = 32; }), "attn_q.weight' has shape [64, 32], not [64, 64]"));
    CHECK(contains(damaged([](tiny_gguf& t) { t.heads = 0; }), "head_count is 0"));
    CHECK(contains(damaged([](tiny_gguf& t) { t.kv_heads = 3; }), "multiple of n_kv_heads"));
    CHECK(contains(damaged([](tiny_gguf& t) { t.heads = 0x7fffffff; }), "llama_config"));
    CHECK(contains(damaged([](tiny_gguf& t) { t.arch = "gemma"; }), "architecture 'gemma' is not supported"));
    CHECK(contains(damaged([](tiny_gguf& t) { t.with_norm = false; }), "no tensor named 'blk.0.attn_norm.weight'"));
    {  // a Q8_0 matrix among F32 ones runs
        tiny_gguf t;
        t.q_type = edgeq::ggml::block_q8_0::type_id;
        t.write(p);
        CHECK(engine::load_model(p).layers[0].wq->scheme_name() == "q8_0");
    }
    // NaN weights load (the engine runs what it is given), but refuse to be quantized.
    tiny_gguf nan;
    nan.fill = std::numeric_limits<float>::quiet_NaN();
    nan.write(p);
    const engine::llama_model m = engine::load_model(p);
    engine::gguf_save_options o;
    REQUIRE(engine::gguf_builtin_target("q8_0", o.target, o.encode));
    const std::string out = tmp.file("nan_q8.gguf");
    CHECK(!error_of([&] { engine::save_gguf(m, nullptr, out, o); }).empty());
    CHECK(!io::file_exists(out));  // no half-written file

    // Byte-level damage of the good file: bad magic, truncation, huge counts, an unknown tensor type.
    auto load_bytes = [&](const std::string& b) {
        write_bytes(p, b);
        return error_of([&] { engine::load_model(p); });
    };
    std::string b = good;
    b[0] = 'X';
    CHECK(contains(error_of([&] {
                       write_bytes(p, b);
                       engine::load_gguf(p);
                   }),
                   "bad magic"));
    for (std::size_t n : {std::size_t(3), std::size_t(20), good.size() / 2, good.size() - 1}) {
        INFO("truncated to " << n);
        CHECK(!load_bytes(good.substr(0, n)).empty());
    }
    b = good;
    for (int i = 0; i < 8; ++i) b[8 + i] = char(0xff);  // n_tensors
    CHECK(contains(load_bytes(b), "tensors, more than"));
    b = good;
    for (int i = 0; i < 8; ++i) b[16 + i] = char(0x7f);  // n_kv
    CHECK(contains(load_bytes(b), "metadata entries, more than"));
    // The first tensor's type: after the header; find "token_embd.weight" and its type field.
    const std::size_t at = good.find("token_embd.weight");
    REQUIRE(at != std::string::npos);
    b = good;
    const std::size_t type_at = at + 17 + 4 + 16;  // name, n_dims, 2 dims
    b[type_at] = char(200);
    CHECK(contains(load_bytes(b), "unknown type 200"));
    b = good;
    for (int i = 0; i < 8; ++i) b[type_at + 4 + i] = char(0x10);  // offset far past the end
    CHECK(!load_bytes(b).empty());
    // Random single-byte damage: an error or a model, never a crash.
    std::uint32_t seed = 12345;
    for (int k = 0; k < 300; ++k) {
        b = good;
        seed = seed * 1664525u + 1013904223u;
        const std::size_t pos = (seed >> 8) % std::min<std::size_t>(good.size(), 1200);
        b[pos] = char(seed & 0xff);
        write_bytes(p, b);
        try {
            const engine::llama_model mm = engine::load_model(p);
            CHECK(mm.config.n_layers >= 1);
        } catch (const edgeq::error&) {
        }
    }
}

TEST_CASE("damaged llama2.c and safetensors models: edgeq::error, never a crash", "[convert][damaged]") {
    temp_dir tmp;
    const std::string p = tmp.file("m.bin");
    // llama2.c: a header with huge sizes, zero sizes, a header alone.
    auto header = [](std::vector<std::int32_t> h) {
        std::string o;
        for (std::int32_t v : h) put32(o, std::uint32_t(v));
        return o;
    };
    write_bytes(p, header({1 << 24, 1 << 24, 1 << 24, 1 << 22, 1 << 22, 1 << 24, 1 << 24}));  // sizes overflow 64 bits
    CHECK(contains(error_of([&] { engine::load_model(p); }), "needs"));
    write_bytes(p, header({64, 0, 1, 2, 2, 32, 16}));
    CHECK(contains(error_of([&] { engine::load_model(p); }), "not plausible"));
    write_bytes(p, header({64, 96, 1, 2, 2, 32, 16}));
    CHECK(contains(error_of([&] { engine::load_model(p); }), "truncated"));
    write_bytes(p, "abc");
    CHECK(contains(error_of([&] { engine::load_model(p); }), "not even a header"));
    write_bytes(p, header({64, 96, 1, 3, 2, 32, 16}) + std::string(1000, '\0'));
    CHECK(contains(error_of([&] { engine::load_model(p); }), "do not divide"));

    // A Hugging Face folder with a damaged safetensors file or a config that disagrees with it.
    const std::string d = tmp.path;
    write_bytes(d + "/config.json",
                R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "vocab_size": 32, "tie_word_embeddings": true})");
    std::string st;
    const std::string hdr = R"({"model.embed_tokens.weight": {"dtype": "F32", "shape": [32, 64], "data_offsets": [0, 8192]}})";
    put64(st, hdr.size());
    st += hdr + std::string(8192, '\0');
    write_bytes(d + "/model.safetensors", st);
    CHECK(contains(error_of([&] { engine::load_model(d); }), "no tensor named 'model.layers.0.input_layernorm.weight'"));
    write_bytes(d + "/model.safetensors", st.substr(0, st.size() - 100));
    CHECK(contains(error_of([&] { engine::load_model(d); }), "outside the"));
    std::string huge;
    put64(huge, 1ull << 62);
    write_bytes(d + "/model.safetensors", huge + "{}");
    CHECK(contains(error_of([&] { engine::load_model(d); }), "header"));
    std::string shape;
    const std::string h2 = R"({"model.embed_tokens.weight": {"dtype": "F32", "shape": [33, 64], "data_offsets": [0, 8448]}})";
    put64(shape, h2.size());
    shape += h2 + std::string(8448, '\0');
    write_bytes(d + "/model.safetensors", shape);
    CHECK(contains(error_of([&] { engine::load_model(d); }), "should be [32, 64]"));
    std::string dtype;
    const std::string h3 = R"({"model.embed_tokens.weight": {"dtype": "I32", "shape": [32, 64], "data_offsets": [0, 8192]}})";
    put64(dtype, h3.size());
    dtype += h3 + std::string(8192, '\0');
    write_bytes(d + "/model.safetensors", dtype);
    CHECK(contains(error_of([&] { engine::load_model(d); }), "I32"));
    write_bytes(d + "/config.json", "{\"hidden_size\": 64");
    CHECK(contains(error_of([&] { engine::load_model(d); }), "not valid JSON"));
}

TEST_CASE("tokenizers through GGUF metadata encode as the originals", "[convert][tokenizer]") {
    REQUIRE_SHARED(dir);
    std::vector<std::string> texts = {"a <unk> b x<unk> <|start_story|>Hi", "Hi there, \xC3\xA9! \xE2\x80\x9Cquoted\xE2\x80\x9D  two  spaces"};
    for (const char* f : {"data/tinystories_valid_prefix.txt", "data/wikitext2_test_hfrows_join2nl.txt", "data/ptb.test.txt"}) {
        const std::string t = read_bytes(dir + "/" + f);
        const std::size_t from = t.find('\n', t.size() / 2) + 1;  // whole lines: no code point cut in two
        const std::string part = t.substr(from, 20000);
        texts.push_back(part.substr(0, part.rfind('\n') + 1));
    }
    for (const char* path : {"stories260K/tok512.bin", "TinyStories-656K/tokenizer.json"}) {
        INFO(path);
        const auto a = tok::load_tokenizer(dir + "/models/" + path, std::string(path).find("tok512") != std::string::npos ? 512 : 0);
        const auto b = tok::from_gguf_metadata(tok::to_gguf_metadata(*a));
        CHECK(b->bos() == a->bos());
        CHECK(b->eos() == a->eos());
        CHECK(b->add_bos_default() == a->add_bos_default());
        for (std::size_t i = 0; i < texts.size(); ++i) {
            INFO("text " << i);
            const std::vector<int> x = a->encode(texts[i], true, false), y = b->encode(texts[i], true, false);
            CHECK(x == y);
            CHECK(b->decode(y) == a->decode(x));
        }
    }
}

TEST_CASE("convert: llama3 RoPE scaling, qwen2 biases and mistral through GGUF match the references",
          "[convert][reference]") {
    REQUIRE_SHARED(dir);
    temp_dir tmp;
    for (const char* name : {"arch/llama3-tiny", "arch/qwen2-tiny", "arch/mistral-tiny"}) {
        const std::string md = dir + "/models/" + name, rd = dir + "/reference/" + name;
        if (!io::file_exists(md + "/config.json")) {
            WARN("skipped " << name << ": not in ../shared");
            continue;
        }
        INFO(name);
        const std::string out = tmp.file("arch.gguf");
        engine::gguf_save_options o;
        REQUIRE(engine::gguf_builtin_target("f32", o.target, o.encode));
        engine::save_gguf(engine::load_model(md), nullptr, out, o);  // these models have no tokenizer
        const gguf::file g(out);
        const bool qwen2 = std::string(name) == "arch/qwen2-tiny";
        CHECK(g.get_string("general.architecture") == (qwen2 ? "qwen2" : "llama"));
        CHECK((g.find("rope_freqs.weight") != nullptr) == (std::string(name) == "arch/llama3-tiny"));
        const engine::llama_model m = engine::load_model(out);
        CHECK(m.config.pairing == (qwen2 ? engine::rope_pairing::neox : engine::rope_pairing::interleaved));
        const nlohmann::json p = nlohmann::json::parse(read_bytes(rd + "/manifest.json"))["prompts"][0];
        const std::vector<int> ids = p["ids"].get<std::vector<int>>();
        const std::size_t V = std::size_t(m.config.vocab_size);
        const std::vector<float> ref = read_floats(rd + "/prompt1_logits.f32.bin");
        REQUIRE(ref.size() == ids.size() * V);
        engine::llama_session s(m);
        std::vector<float> all(ids.size() * V);
        s.eval(ids.data(), ids.size(), all.data(), true);
        const double w = worst_rel_l2(all, ref, V);
        INFO("worst relative L2 per position " << w);
        CHECK(w < 1e-4);
    }
}

TEST_CASE("save_gguf as stored: a mixed Q8_0 / F16 model keeps its bytes, q/k blocks permuted by rows", "[convert]") {
    REQUIRE_SHARED(dir);
    // Q8_0 for attention and the embedding, F16 for the feed-forward: what a quantizer leaves.
    const io::matrix_factory mixed = [](const std::string& name, matrix_view<const float> w) -> std::unique_ptr<linear> {
        if (name.find("ffn") != std::string::npos) return make_dense_linear<dense_f16>(w);
        const std::vector<std::uint8_t> b = engine::detail::ggml_bytes<edgeq::ggml::block_q8_0>(w);
        return engine::detail::ggml_linear<edgeq::ggml::block_q8_0>(b.data(), w.rows, w.cols);
    };
    const engine::llama_model m = engine::load_model(dir + "/models/TinyStories-656K", mixed);  // NeoX rows
    temp_dir tmp;
    const std::string out = tmp.file("mixed.gguf");
    engine::save_gguf(m, nullptr, out, engine::gguf_save_options());  // no encoder: as stored
    const gguf::file g(out);
    CHECK(g.tensor("blk.0.attn_q.weight").type == +edgeq::ggml::block_q8_0::type_id);
    CHECK(g.tensor("blk.0.ffn_up.weight").type == gguf::type::f16);
    CHECK(!g.has("edgeq.rope.pairing"));  // row-major blocks were permuted to GGUF order
    const engine::llama_model r = engine::load_model(out);
    CHECK(r.config.pairing == engine::rope_pairing::interleaved);
    for (std::size_t row : {std::size_t(0), std::size_t(1), std::size_t(9), std::size_t(127)}) {  // the same blocks, reordered
        std::vector<float> a(128), b(128);
        m.layers[1].wq->dequantize_row(io::qk_source_row(row, 128, 8, io::qk_direction::hf_to_gguf), a.data());
        r.layers[1].wq->dequantize_row(row, b.data());
        CHECK(a == b);
    }
    const std::vector<int> ids = {1, 403, 407, 261, 378, 432, 383};
    engine::llama_session sa(m), sb(r);
    const std::vector<float> la = sa.prompt(ids), lb = sb.prompt(ids);
    double d = 0, n = 0;
    for (std::size_t i = 0; i < la.size(); ++i) d += (la[i] - lb[i]) * (la[i] - lb[i]), n += double(la[i]) * la[i];
    INFO("relative L2 " << std::sqrt(d / n));
    CHECK(std::sqrt(d / n) < 1e-5);  // only RoPE's order of operations differs
}

TEST_CASE("save_gguf as stored: GPTQ-calibrated llama.cpp blocks are written as the llama.cpp type", "[convert][gptq]") {
    REQUIRE_SHARED(dir);
    engine::llama_model m = engine::load_model(dir + "/models/TinyStories-656K", io::dense_factory("f32"));
    // GPTQ chose the codes, the storage is plain Q8_0: llama.cpp must see type Q8_0, not an edgeq blob.
    const engine::calib_plan p = engine::plan_of<edgeq::scheme<edgeq::gptq<>, edgeq::q8_0>>();
    std::vector<int> ids(256);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int(3 + (i * 7919) % 2000);
    engine::quantize_calibrated(m, engine::calibration_windows(ids, 2, 64, 1), p.quantize, p.options);
    REQUIRE(m.layers[0].wq->scheme_name() == "gptq-q8_0");
    temp_dir tmp;
    const std::string out = tmp.file("gptq_q8_0.gguf");
    engine::save_gguf(m, nullptr, out, engine::gguf_save_options());
    const gguf::file g(out);
    CHECK(g.tensor("blk.0.attn_q.weight").type == +edgeq::ggml::block_q8_0::type_id);
    CHECK(g.tensor("blk.1.ffn_down.weight").type == +edgeq::ggml::block_q8_0::type_id);
    CHECK(!g.has("edgeq.tensor.blk.0.attn_q.weight.scheme"));
    const engine::llama_model r = engine::load_model(out);
    engine::llama_session sa(m), sb(r);
    const std::vector<int> prompt = {1, 403, 407, 261, 378, 432, 383};
    CHECK(worst_rel_l2(sb.prompt(prompt), sa.prompt(prompt), std::size_t(m.config.vocab_size)) < 1e-4);
}
