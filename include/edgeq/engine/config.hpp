// The hyper-parameters of a Llama-family decoder: what a checkpoint's header or config.json
// says, in one struct that the forward pass (llama.hpp) reads and nothing else.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace edgeq {
namespace engine {

// Which dimensions of a head RoPE rotates together.
enum class rope_pairing {
    neox,         // i with i + d/2 ("rotate half"): Hugging Face checkpoints
    interleaved,  // 2i with 2i + 1: Meta's original layout, GGUF (after llama.cpp's q/k permutation), llama2.c
};

// Llama 3 frequency scaling (rope_type "llama3").
struct llama3_rope_scaling {
    bool enabled = false;
    double factor = 8.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    double original_max_position = 8192.0;
};

// The one config struct of the project: io/hf_config.hpp parses config.json into it, the llama2.c
// and GGUF readers fill it from their headers and metadata, io/hf_to_gguf.hpp writes it as GGUF
// metadata. Fields the engine cannot run (o_bias, mlp_bias) are kept so that a reader can parse
// a config and the engine can refuse it with a clear message (model_from_tensors).
struct llama_config {
    // Hugging Face class: "LlamaForCausalLM" (also llama2.c and GGUF "llama"), "MistralForCausalLM",
    // "Qwen2ForCausalLM" (GGUF "qwen2"). Empty means Llama.
    std::string architecture;
    int dim = 0;         // hidden size
    int hidden_dim = 0;  // feed-forward (intermediate) size
    int n_layers = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int vocab_size = 0;
    int seq_len = 0;   // longest context the model was trained for
    int head_dim = 0;  // 0: dim / n_heads
    double rope_theta = 10000.0;
    rope_pairing pairing = rope_pairing::neox;
    llama3_rope_scaling rope_scaling;
    double rope_linear_factor = 1.0;  // rope_type "linear": positions divided by the factor
    // Per-frequency divisors (GGUF rope_freqs.weight, which llama.cpp writes for llama3 scaling):
    // empty, or head_size()/2 values; applied on top of the above.
    std::vector<float> rope_freq_factors;
    float rms_eps = 1e-5f;
    bool qkv_bias = false;    // Qwen2: q, k and v have biases
    bool o_bias = false;      // Llama attention_bias also biases o_proj: parsed, not run
    bool mlp_bias = false;    // parsed, not run
    bool tied_output = true;  // the classifier is the token embedding
    int bos_id = 1;           // -1: none
    int eos_id = 2;
    std::string dtype;        // the checkpoint's weights: "float32", "float16", "bfloat16" or ""

    bool is_qwen2() const { return architecture == "Qwen2ForCausalLM"; }

    int head_size() const { return head_dim ? head_dim : (n_heads ? dim / n_heads : 0); }
    int q_dim() const { return n_heads * head_size(); }
    int kv_dim() const { return n_kv_heads * head_size(); }

    // Throws edgeq::error naming the first impossible value.
    void validate() const {
        auto need = [](bool ok, const std::string& what) {
            if (!ok) throw error("llama_config: " + what);
        };
        need(dim > 0 && hidden_dim > 0 && n_layers > 0 && vocab_size > 0 && seq_len > 0,
             "dim, hidden_dim, n_layers, vocab_size and seq_len must be positive (got " + std::to_string(dim) + ", " +
                 std::to_string(hidden_dim) + ", " + std::to_string(n_layers) + ", " + std::to_string(vocab_size) + ", " +
                 std::to_string(seq_len) + ")");
        need(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0,
             "n_heads (" + std::to_string(n_heads) + ") must be a positive multiple of n_kv_heads (" +
                 std::to_string(n_kv_heads) + ")");
        need(head_dim > 0 || dim % n_heads == 0,
             "dim (" + std::to_string(dim) + ") is not a multiple of n_heads (" + std::to_string(n_heads) + ")");
        need(head_size() % 2 == 0, "RoPE needs an even head size, not " + std::to_string(head_size()));
        need(rope_theta > 0, "rope_theta must be positive");
        need(rope_linear_factor > 0, "the linear RoPE factor must be positive");
        need(rope_freq_factors.empty() || rope_freq_factors.size() == std::size_t(head_size() / 2),
             "rope_freq_factors has " + std::to_string(rope_freq_factors.size()) + " values, not head_size / 2 = " +
                 std::to_string(head_size() / 2));
    }
};

// RoPE's inverse frequencies, one per rotated pair: theta^(-2i/d), with the Llama 3 scaling
// when enabled (reference/README.md, llama3-tiny):
//   wavelen = 2 pi / f;  wavelen > old/low: f / factor;  old/high <= wavelen <= old/low: smooth;
//   shorter wavelengths: unchanged.
inline std::vector<float> rope_inv_freq(const llama_config& c) {
    const int d = c.head_size();
    std::vector<float> f(std::size_t(d / 2));
    const llama3_rope_scaling& s = c.rope_scaling;
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < d / 2; ++i) {
        // float32 as transformers computes it: base ** (arange(0, d, 2).float() / d)
        const float expo = float(2 * i) / float(d);
        double inv = 1.0 / double(std::pow(float(c.rope_theta), expo));
        if (s.enabled) {
            const double wavelen = 2.0 * pi / inv;
            const double low_wavelen = s.original_max_position / s.low_freq_factor;
            const double high_wavelen = s.original_max_position / s.high_freq_factor;
            if (wavelen > low_wavelen) {
                inv = inv / s.factor;
            } else if (wavelen >= high_wavelen) {
                const double sm = (s.original_max_position / wavelen - s.low_freq_factor) /
                                  (s.high_freq_factor - s.low_freq_factor);
                inv = (1.0 - sm) * inv / s.factor + sm * inv;
            }
        }
        inv /= c.rope_linear_factor;
        if (!c.rope_freq_factors.empty()) inv /= double(c.rope_freq_factors[std::size_t(i)]);
        f[std::size_t(i)] = float(inv);
    }
    return f;
}

}  // namespace engine
}  // namespace edgeq
