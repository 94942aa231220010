// edgeq/io/synth.hpp and the GGUF writer's streaming mode (declared tensors produced at write
// time). Real shapes are checked on the plan only; files are written for a tiny shape.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include <edgeq/io/gguf.hpp>
#include <edgeq/io/mmap.hpp>
#include <edgeq/io/synth.hpp>

namespace gguf = edgeq::io::gguf;
namespace sy = edgeq::io::synth;

namespace {

std::string temp_path(const char* name) { return "/tmp/edgeq_test_synth_" + std::to_string(::getpid()) + "_" + name; }

std::vector<std::uint8_t> file_bytes(const std::string& path) {
    const edgeq::io::mapped_file f(path);
    return std::vector<std::uint8_t>(f.data(), f.data() + f.size());
}

// A small Llama-shaped model: 2 layers, GQA, a vocabulary just above the tokenizer's minimum.
const sy::model_shape tiny = {"tiny", "Tiny", 64, 160, 2, 4, 2, 400, 128, 10000.0, 1e-5f, false, 0, 0, 0, 0};

}  // namespace

TEST_CASE("gguf writer: declared tensors stream to the same bytes as added ones", "[synth][gguf]") {
    std::vector<float> a(64 * 3), b(32);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.5f;
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = -float(i);
    const std::vector<std::uint8_t> blob(100, 7);

    gguf::writer plain;
    plain.set_string("general.architecture", "llama");
    plain.add_tensor("a", gguf::type::f32, {64, 3}, a.data(), a.size() * 4);
    plain.add_grouped("g", "int4-g32", 64, 2, blob.data(), blob.size());
    plain.add_tensor("b", gguf::type::f32, {32}, b.data(), b.size() * 4);
    const std::string p1 = temp_path("plain.gguf");
    plain.write(p1);

    gguf::writer streamed;
    streamed.set_string("general.architecture", "llama");
    streamed.declare_tensor("a", gguf::type::f32, {64, 3});
    streamed.declare_grouped("g", "int4-g32", 64, 2, blob.size());
    streamed.add_tensor("b", gguf::type::f32, {32}, b.data(), b.size() * 4);  // mixed: this one by pointer
    const std::string p2 = temp_path("streamed.gguf");
    std::vector<std::size_t> asked;
    streamed.write(p2, [&](std::size_t i, const std::string& name, const gguf::writer::sink_fn& sink) {
        asked.push_back(i);
        if (name == "a") {
            for (std::size_t r = 0; r < 3; ++r) sink(a.data() + r * 64, 64 * 4);  // in pieces
        } else {
            sink(blob.data(), 10);
            sink(blob.data() + 10, blob.size() - 10);
        }
    });
    CHECK(asked == std::vector<std::size_t>({0, 1}));
    CHECK(file_bytes(p1) == file_bytes(p2));
    std::remove(p1.c_str());
    std::remove(p2.c_str());
}

TEST_CASE("gguf writer: a source that gives the wrong size leaves no file", "[synth][gguf]") {
    const std::string p = temp_path("bad.gguf");
    std::remove(p.c_str());
    std::vector<float> x(64, 1.0f);
    gguf::writer w;
    w.declare_tensor("x", gguf::type::f32, {64});
    CHECK_THROWS_WITH(w.write(p), Catch::Contains("declared without data"));
    CHECK_THROWS_WITH(w.write(p, [&](std::size_t, const std::string&, const gguf::writer::sink_fn& sink) { sink(x.data(), 100); }),
                      Catch::Contains("gave 100 of the 256 bytes"));
    CHECK_THROWS_WITH(w.write(p, [&](std::size_t, const std::string&, const gguf::writer::sink_fn& sink) {
                          sink(x.data(), 256);
                          sink(x.data(), 4);
                      }),
                      Catch::Contains("more than the 256 bytes"));
    CHECK_FALSE(edgeq::io::file_exists(p));
    CHECK_THROWS_WITH(w.declare_tensor("q", edgeq::ggml::block_q4_0::type_id, {48, 2}), Catch::Contains("not a multiple of the 32"));
}

TEST_CASE("synth: the real models' plans have their shapes", "[synth]") {
    const sy::model_shape& t = sy::find_shape("tinyllama-1.1b");
    const std::vector<sy::tensor_plan> p = sy::plan(t);
    REQUIRE(p.size() == 22 * 9 + 3);
    CHECK(p[0].name == "token_embd.weight");
    CHECK(p[0].rows == 32000);
    CHECK(p[0].cols == 2048);
    CHECK(p[3].name == "blk.0.attn_k.weight");
    CHECK(p[3].rows == 256);  // 4 kv heads of 64
    CHECK(p[7].name == "blk.0.ffn_gate.weight");
    CHECK(p[7].rows == 5632);
    CHECK(p[9].cols == 5632);  // ffn_down
    CHECK(p.back().name == "output.weight");
    std::uint64_t weights = 0;
    for (const sy::tensor_plan& x : p) weights += x.rows * x.cols;
    CHECK(weights == 1100048384);  // TinyLlama-1.1B's parameter count

    const sy::model_shape& l3 = sy::find_shape("llama-3.2-1b");
    const std::vector<sy::tensor_plan> q = sy::plan(l3);
    CHECK(q.size() == 16 * 9 + 3);  // rope_freqs, no output (tied)
    CHECK(q[1].name == "rope_freqs.weight");
    CHECK(q.back().name == "output_norm.weight");
    const std::vector<float> f = sy::rope_freq_factors(l3);
    REQUIRE(f.size() == 32);
    CHECK(f.front() == 1.0f);   // short wavelengths: unscaled
    CHECK(f.back() == 32.0f);   // long ones: divided by the factor
    CHECK(sy::plan(sy::find_shape("llama-7b"), 1).size() == 12);
    CHECK_THROWS_WITH(sy::find_shape("gpt-5"), Catch::Contains("the models are tinyllama-1.1b, llama-3.2-1b, llama-7b"));
}

TEST_CASE("synth: the vocabulary has the specials, the byte pieces and the size asked", "[synth]") {
    const sy::vocabulary v = sy::llama_vocabulary(32000);
    REQUIRE(v.tokens.size() == 32000);
    CHECK(v.tokens[0] == "<unk>");
    CHECK(v.tokens[1] == "<s>");
    CHECK(v.tokens[2] == "</s>");
    CHECK(v.tokens[3] == "<0x00>");
    CHECK(v.tokens[258] == "<0xFF>");
    CHECK(v.types[258] == 6);
    CHECK(v.types[300] == 1);
    std::vector<std::string> sorted = v.tokens;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // no duplicates
    CHECK(sy::llama_vocabulary(128256).tokens.size() == 128256);
}

TEST_CASE("synth: chunked grouped encoding equals quantize<S> of the whole matrix", "[synth]") {
    using S = edgeq::scheme<edgeq::bits<3>, edgeq::group<64>, edgeq::asymmetric>;
    const std::size_t cols = 4096, rows = sy::chunk_rows(cols) * 2 + 5;  // three chunks, the last short
    std::vector<float> w(rows * cols);
    for (std::size_t r = 0; r < rows; ++r) sy::random_row(3, 4, r, 0.0f, 0.02f, &w[r * cols], cols);
    const auto whole = edgeq::quantize<S>(edgeq::matrix_view<const float>(w.data(), rows, cols));
    const sy::encoder e = sy::encoder_for_scheme<S>("int3-g64-asym");
    std::vector<std::uint8_t> got;
    std::size_t done = 0;
    e.encode(
        rows, cols, [&](std::size_t r0, std::size_t r1, float* out) { std::memcpy(out, &w[r0 * cols], (r1 - r0) * cols * 4); },
        [&](const void* p, std::size_t n) {
            got.insert(got.end(), static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
        },
        edgeq::default_pool(), [&](std::size_t n) { done += n; });
    CHECK(done == rows);
    REQUIRE(got.size() == whole.storage_bytes());
    CHECK(std::memcmp(got.data(), whole.blob().data(), got.size()) == 0);
}

TEST_CASE("synth: a tiny model file reads back, is deterministic and has realistic values", "[synth]") {
    sy::encoder f32;
    REQUIRE(sy::find_gguf_encoder("f32", f32));
    edgeq::thread_pool one(1), three(3);
    const std::string p1 = temp_path("tiny1.gguf"), p2 = temp_path("tiny2.gguf");
    sy::options o;
    o.seed = 9;
    std::size_t last_done = 0, last_total = 1;
    const sy::result r = sy::write(p1, tiny, f32, o, one, [&](std::size_t d, std::size_t t, const std::string&) {
        CHECK(d >= last_done);
        last_done = d;
        last_total = t;
    });
    CHECK(last_done == last_total);
    sy::write(p2, tiny, f32, o, three);
    CHECK(file_bytes(p1) == file_bytes(p2));  // the thread count does not matter

    const gguf::file f(p1);
    CHECK(r.file_bytes == f.file_size());
    CHECK(r.tensors == f.tensors().size());
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.get_u32("llama.block_count") == 2);
    CHECK(f.get_u32("llama.attention.head_count_kv") == 2);
    CHECK(f.get_strings("tokenizer.ggml.tokens").size() == 400);
    const gguf::tensor_info& q = f.tensor("blk.1.attn_q.weight");
    const float* x = reinterpret_cast<const float*>(q.data);
    double s = 0, s2 = 0;
    for (std::uint64_t i = 0; i < q.elements; ++i) s += x[i], s2 += double(x[i]) * x[i];
    const double mean = s / double(q.elements), sd = std::sqrt(s2 / double(q.elements) - mean * mean);
    CHECK(std::fabs(mean) < 0.002);
    CHECK(sd == Approx(0.02).epsilon(0.05));
    const float* norm = reinterpret_cast<const float*>(f.tensor("output_norm.weight").data);
    CHECK(norm[0] == Approx(1.0).margin(0.1));
    CHECK(f.tensor("blk.0.ffn_down.weight").shape == std::vector<std::uint64_t>({160, 64}));

    o.seed = 10;
    sy::write(p2, tiny, f32, o, one);
    CHECK(file_bytes(p1) != file_bytes(p2));
    std::remove(p1.c_str());
    std::remove(p2.c_str());
}
