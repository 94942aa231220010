// Decode speed of the GPU engine on a TinyLlama-1.1B-shaped model with random weights, built in
// memory (no model file, so it runs where a 600 MB GGUF cannot be carried): each format's
// tokens/s over N tokens of eval() (one token, the logits copied back: what `edgeq run --device
// cuda` does per generated token, without the host's sampling), bytes of weights per token, and
// the GB/s that makes; and the same N tokens as one prompt (prefill), tokens/s. One markdown
// table on stdout.
//
//     gpu_decode [N [FORMAT]]   (default 256 tokens per format; FORMAT: int4-g128, q4_k, ...)
//
// Built against the engine library that nvcc compiled (examples/edgeq/cuda_engine.cu):
//     g++ -std=c++14 -O2 -Iinclude bench/gpu_decode.cpp build/examples/libedgeq_cuda_engine.a
//         -L/usr/local/cuda/lib64 -lcudart_static -lrt -ldl -lpthread -o build/gpu_decode
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <edgeq/core/error.hpp>
#include <edgeq/core/half.hpp>
#include <edgeq/engine/cuda/gpu_model.hpp>
#include <edgeq/format/ggml/blocks.hpp>
#include <edgeq/format/grouped.hpp>

namespace {

using namespace edgeq;
namespace gpu = edgeq::engine::gpu;

// Random bytes whose scales are small finite fp16 values: the kernels' speed does not depend on
// the values, only on their layout.
struct blob_maker {
    std::mt19937 rng{7};
    std::vector<std::uint8_t> random(std::size_t n) {
        std::vector<std::uint8_t> b(n);
        for (std::uint8_t& v : b) v = std::uint8_t(rng());
        return b;
    }
    static void put_half(std::uint8_t* p, float v) {
        const std::uint16_t h = float_to_half(v);
        std::memcpy(p, &h, 2);
    }
    template <class Block>
    std::vector<std::uint8_t> blocks(std::size_t rows, std::size_t cols, std::size_t d_offsets, std::size_t d_at = 0) {
        std::vector<std::uint8_t> b = random(rows * cols / Block::weights * sizeof(Block));
        for (std::size_t i = 0; i < b.size(); i += sizeof(Block))
            for (std::size_t k = 0; k < d_offsets; ++k) put_half(&b[i + d_at + 2 * k], 0.001f);
        return b;
    }
    template <class F>
    std::vector<std::uint8_t> grouped(std::size_t rows, std::size_t cols) {
        std::vector<std::uint8_t> b = random(F::storage_bytes(rows, cols));
        for (std::size_t i = 0; i < F::n_scales(rows, cols); ++i) put_half(&b[F::scales_offset(rows, cols) + 2 * i], 0.001f);
        return b;
    }
    std::vector<std::uint8_t> f16(std::size_t rows, std::size_t cols) {
        std::vector<std::uint8_t> b(rows * cols * 2);
        std::normal_distribution<float> normal(0.0f, 0.02f);
        for (std::size_t i = 0; i < rows * cols; ++i) put_half(&b[2 * i], normal(rng));
        return b;
    }
    std::vector<std::uint8_t> make(const std::string& scheme, std::size_t rows, std::size_t cols) {
        if (scheme == "q4_0") return blocks<ggml::block_q4_0>(rows, cols, 1);
        if (scheme == "q8_0") return blocks<ggml::block_q8_0>(rows, cols, 1);
        if (scheme == "q4_k") return blocks<ggml::block_q4_K>(rows, cols, 2);
        if (scheme == "q6_k") return blocks<ggml::block_q6_K>(rows, cols, 1, offsetof(ggml::block_q6_K, d));
        if (scheme == "int3-g128") return grouped<grouped_format<uniform_grid, 3, 128, false, fp16_t>>(rows, cols);
        if (scheme == "int4-g128") return grouped<grouped_format<uniform_grid, 4, 128, false, fp16_t>>(rows, cols);
        if (scheme == "int8-g128") return grouped<grouped_format<uniform_grid, 8, 128, false, fp16_t>>(rows, cols);
        if (scheme == "f16") return f16(rows, cols);
        throw error("gpu_decode: no generator for " + scheme);
    }
};

engine::llama_config tinyllama() {
    engine::llama_config c;
    c.dim = 2048, c.hidden_dim = 5632, c.n_layers = 22, c.n_heads = 32, c.n_kv_heads = 4;
    c.vocab_size = 32000, c.seq_len = 2048, c.tied_output = false;
    return c;
}

struct result {
    double tok_s, mb_per_token, prompt_tok_s;
    std::string describe;
};

result run(const std::string& scheme, int n_tokens, gpu::arithmetic math) {
    const engine::llama_config c = tinyllama();
    blob_maker mk;
    std::unique_ptr<gpu::builder> b = gpu::make_builder(c, n_tokens + 8, math);
    const auto give = [&](const std::string& name, const std::string& s, std::size_t rows, std::size_t cols) {
        const std::vector<std::uint8_t> bytes = mk.make(s, rows, cols);
        gpu::tensor t;
        t.scheme = s, t.rows = rows, t.cols = cols, t.bytes = bytes.data(), t.n_bytes = bytes.size();
        b->matrix(name, t);  // copied to the device at once
    };
    const std::size_t d = std::size_t(c.dim), h = std::size_t(c.hidden_dim), kv = std::size_t(c.kv_dim());
    give("token_embd", "f16", std::size_t(c.vocab_size), d);
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        give(p + "attn_q", scheme, d, d);
        give(p + "attn_k", scheme, kv, d);
        give(p + "attn_v", scheme, kv, d);
        give(p + "attn_output", scheme, d, d);
        give(p + "ffn_gate", scheme, h, d);
        give(p + "ffn_down", scheme, d, h);
        give(p + "ffn_up", scheme, h, d);
        b->vector(p + "attn_norm", std::vector<float>(d, 1.0f));
        b->vector(p + "ffn_norm", std::vector<float>(d, 1.0f));
    }
    give("output", scheme, std::size_t(c.vocab_size), d);
    b->vector("output_norm", std::vector<float>(d, 1.0f));
    std::unique_ptr<gpu::session> s = b->finish();

    std::vector<float> logits(std::size_t(c.vocab_size));
    int token = 1;
    for (int i = 0; i < 8; ++i) s->eval(&token, 1, logits.data());  // warm-up: graph capture, caches
    s->reset();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_tokens; ++i) {
        s->eval(&token, 1, logits.data());
        token = 1 + (token * 7919) % (c.vocab_size - 1);  // a different embedding row each step
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The same number of tokens as one prompt (prefill: chunks of up to 256 tokens through the GEMMs), best of 3.
    std::vector<int> prompt(std::size_t(n_tokens), 1);
    for (std::size_t i = 1; i < prompt.size(); ++i) prompt[i] = 1 + (prompt[i - 1] * 7919) % (c.vocab_size - 1);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        s->reset();
        const auto p0 = std::chrono::steady_clock::now();
        s->eval(prompt.data(), prompt.size(), logits.data());
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count());
    }
    return {n_tokens / sec, double(s->bytes_per_token()) / 1e6, n_tokens / best, s->describe()};
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 256;
    std::string why;
    if (n <= 0 || n > 2000) {
        std::fprintf(stderr, "usage: gpu_decode [N tokens, 1..2000] [FORMAT]\n");
        return 2;
    }
    if (!gpu::available(&why)) {
        std::fprintf(stderr, "gpu_decode: no GPU: %s\n", why.c_str());
        return 77;
    }
    try {
        std::printf("| format | arithmetic | MB per token | tok/s | GB/s streamed | prompt tok/s (%d tokens at once) |\n|---|---|---|---|---|---|\n", n);
        const struct {
            const char* scheme;
            gpu::arithmetic math;
            const char* math_name;
        } cases[] = {{"int4-g128", gpu::arithmetic::half, "half"}, {"int4-g128", gpu::arithmetic::exact_half, "exact-half"},
                     {"int4-g128", gpu::arithmetic::automatic, "auto"},
                     {"q4_0", gpu::arithmetic::half, "half"},      {"q4_0", gpu::arithmetic::exact_half, "exact-half"},
                     {"q4_0", gpu::arithmetic::automatic, "auto"},
                     {"q4_k", gpu::arithmetic::half, "half"},      {"q4_k", gpu::arithmetic::exact_half, "exact-half"},
                     {"q4_k", gpu::arithmetic::automatic, "auto"},
                     {"q6_k", gpu::arithmetic::half, "half"},      {"q6_k", gpu::arithmetic::automatic, "auto"},
                     {"q8_0", gpu::arithmetic::half, "half"},      {"q8_0", gpu::arithmetic::exact_half, "exact-half"},
                     {"q8_0", gpu::arithmetic::automatic, "auto"},
                     {"int8-g128", gpu::arithmetic::half, "half"}, {"int8-g128", gpu::arithmetic::exact_half, "exact-half"},
                     {"int8-g128", gpu::arithmetic::automatic, "auto"},
                     {"int3-g128", gpu::arithmetic::half, "half"}, {"int3-g128", gpu::arithmetic::exact_half, "exact-half"},
                     {"int3-g128", gpu::arithmetic::automatic, "auto"},
                     {"f16", gpu::arithmetic::half, "(fp16 rows)"}};
        std::string described;
        for (const auto& k : cases) {
            if (argc > 2 && std::strcmp(argv[2], k.scheme) != 0) continue;  // gpu_decode N FORMAT: that format only
            const result r = run(k.scheme, n, k.math);
            std::printf("| %s | %s | %.1f | %.1f | %.0f | %.0f |\n", k.scheme, k.math_name, r.mb_per_token, r.tok_s,
                        r.mb_per_token * r.tok_s / 1e3, r.prompt_tok_s);
            std::fflush(stdout);
            described += std::string("\n") + k.scheme + ": " + r.describe;
        }
        std::printf("%s\n", described.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gpu_decode: %s\n", e.what());
        return 1;
    }
    return 0;
}
