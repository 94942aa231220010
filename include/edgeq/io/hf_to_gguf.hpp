// What a Hugging Face -> GGUF converter of the Llama family needs, as data and small
// functions (the converter, engine::save_gguf in engine/load_gguf.hpp, is written on top of
// this): the q/k row permutation (the project's only one: llama2.c's neox option uses it too),
// the tensor name map and the GGUF metadata that llama.cpp's loader expects, from the one
// config struct engine::llama_config. Host only.
//
// Permutation. Hugging Face stores q_proj and k_proj rows for the rotate-half RoPE layout
// (dimension i pairs with i + d/2); GGUF / Meta use the interleaved layout (2i pairs with
// 2i + 1). llama.cpp's convert_hf_to_gguf.py (LlamaModel.permute) reorders the rows of each
// head:  w.reshape(n_head, 2, d/2, ...).swapaxes(1, 2).reshape(w.shape), with n_head the query
// heads for q and the kv heads for k, so within head h:
//     gguf row h*d + 2i + j  =  hf row h*d + j*(d/2) + i      (i < d/2, j in {0, 1})
// Biases are permuted the same way (rows of length 1). Qwen2 (GGUF architecture "qwen2") uses
// NeoX RoPE in llama.cpp and is not permuted; Llama and Mistral (architecture "llama") are.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "gguf.hpp"
#include "hf_config.hpp"

namespace edgeq {
namespace io {

enum class qk_direction { hf_to_gguf, gguf_to_hf };

// The source row of output row `r` for a tensor of `rows` rows and `n_head` heads.
inline std::size_t qk_source_row(std::size_t r, std::size_t rows, std::size_t n_head, qk_direction dir) {
    const std::size_t d = rows / n_head, half = d / 2;
    const std::size_t h = r / d, k = r % d;
    if (dir == qk_direction::hf_to_gguf) return h * d + (k % 2) * half + k / 2;  // k = 2i + j
    return h * d + (k % half) * 2 + k / half;                                    // k = j*half + i
}

// Permutes the rows of a q or k weight (row_bytes = cols * element size) or bias (row_bytes =
// element size). `in` and `out` must not overlap. n_head: query heads for q, kv heads for k.
inline void permute_qk(const void* in, void* out, std::size_t rows, std::size_t row_bytes, std::size_t n_head,
                       qk_direction dir) {
    if (!n_head || rows % n_head || (rows / n_head) % 2)
        throw error("q/k permutation: " + std::to_string(rows) + " rows do not split into " + std::to_string(n_head) +
                    " heads of an even size");
    const std::uint8_t* src = static_cast<const std::uint8_t*>(in);
    std::uint8_t* dst = static_cast<std::uint8_t*>(out);
    for (std::size_t r = 0; r < rows; ++r)
        std::memcpy(dst + r * row_bytes, src + qk_source_row(r, rows, n_head, dir) * row_bytes, row_bytes);
}

template <class T>
std::vector<T> permute_qk(const std::vector<T>& in, std::size_t rows, std::size_t n_head, qk_direction dir) {
    if (!rows || in.size() % rows) throw error("q/k permutation: the tensor size is not a multiple of its row count");
    std::vector<T> out(in.size());
    permute_qk(in.data(), out.data(), rows, in.size() / rows * sizeof(T), n_head, dir);
    return out;
}

// --- names ---------------------------------------------------------------------------------

// The GGUF architecture of a config: "llama" (Llama, Mistral) or "qwen2".
inline std::string gguf_architecture(const llama_config& c) { return c.is_qwen2() ? "qwen2" : "llama"; }
// Whether q/k rows are permuted on conversion (see the top of this file).
inline bool needs_qk_permutation(const llama_config& c) { return gguf_architecture(c) == "llama"; }

namespace detail {
// HF suffix inside "model.layers.N." -> GGUF suffix inside "blk.N.".
inline const std::vector<std::pair<const char*, const char*>>& layer_names() {
    static const std::vector<std::pair<const char*, const char*>> m = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.bias", "attn_output.bias"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    return m;
}
inline const std::vector<std::pair<const char*, const char*>>& global_names() {
    static const std::vector<std::pair<const char*, const char*>> m = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    return m;
}
// "prefix<digits>.rest" -> (N, rest); false if it does not match.
inline bool split_layer(const std::string& name, const std::string& prefix, unsigned& n, std::string& rest) {
    if (name.compare(0, prefix.size(), prefix) != 0) return false;
    std::size_t i = prefix.size(), j = i;
    while (j < name.size() && j - i < 6 && name[j] >= '0' && name[j] <= '9') ++j;
    if (j == i || j >= name.size() || name[j] != '.') return false;
    n = unsigned(std::stoul(name.substr(i, j - i)));
    rest = name.substr(j + 1);
    return true;
}
}  // namespace detail

// HF tensor name -> GGUF name; "" for tensors a converter drops (rotary inv_freq buffers).
// Unknown names are an error naming the tensor.
inline std::string gguf_tensor_name(const std::string& hf) {
    for (const auto& g : detail::global_names())
        if (hf == g.first) return g.second;
    unsigned n = 0;
    std::string rest;
    if (detail::split_layer(hf, "model.layers.", n, rest)) {
        if (rest == "self_attn.rotary_emb.inv_freq") return "";
        for (const auto& l : detail::layer_names())
            if (rest == l.first) return "blk." + std::to_string(n) + "." + l.second;
    }
    if (hf == "model.rotary_emb.inv_freq") return "";
    throw error("no GGUF name for Hugging Face tensor '" + hf + "' (Llama family)");
}

// GGUF tensor name -> HF name; an error for names outside the map.
inline std::string hf_tensor_name(const std::string& g) {
    for (const auto& x : detail::global_names())
        if (g == x.second) return x.first;
    unsigned n = 0;
    std::string rest;
    if (detail::split_layer(g, "blk.", n, rest))
        for (const auto& l : detail::layer_names())
            if (rest == l.second) return "model.layers." + std::to_string(n) + "." + l.first;
    throw error("no Hugging Face name for GGUF tensor '" + g + "' (Llama family)");
}

// Whether a GGUF tensor is a q or k projection (weight or bias) that the converter permutes,
// and with how many heads.
inline std::size_t qk_heads(const std::string& gguf_name, const llama_config& c) {
    if (!needs_qk_permutation(c)) return 0;
    const auto ends = [&](const char* s) {
        const std::size_t n = std::strlen(s);
        return gguf_name.size() >= n && gguf_name.compare(gguf_name.size() - n, n, s) == 0;
    };
    if (ends(".attn_q.weight") || ends(".attn_q.bias")) return std::size_t(c.n_heads);
    if (ends(".attn_k.weight") || ends(".attn_k.bias")) return std::size_t(c.n_kv_heads);
    return 0;
}

// --- metadata ------------------------------------------------------------------------------

// llama_ftype values (llama.h) for general.file_type.
namespace file_type {
constexpr std::uint32_t all_f32 = 0, mostly_f16 = 1, mostly_q4_0 = 2, mostly_q4_1 = 3, mostly_q8_0 = 7,
                        mostly_q5_0 = 8, mostly_q5_1 = 9, mostly_q2_k = 10, mostly_q3_k_m = 12, mostly_q4_k_m = 15,
                        mostly_q5_k_m = 17, mostly_q6_k = 18, mostly_iq4_nl = 25, mostly_iq4_xs = 30, mostly_bf16 = 32;
}

// The rope_freqs.weight tensor llama.cpp's converter adds for llama3 RoPE scaling: head_dim/2
// float factors that divide the base frequencies (1 = unchanged, factor = fully scaled).
// Empty when the config has no llama3 scaling.
inline std::vector<float> llama3_rope_factors(const llama_config& c) {
    std::vector<float> f;
    const engine::llama3_rope_scaling& s = c.rope_scaling;
    if (!s.enabled) return f;
    const double pi = 3.14159265358979323846;
    const double old_ctx = s.original_max_position;
    const double low_wavelen = old_ctx / s.low_freq_factor, high_wavelen = old_ctx / s.high_freq_factor;
    const int dim = c.head_size();
    for (int i = 0; i < dim; i += 2) {
        // freqs in float32 as torch computes them: 1 / base ** (i / dim)
        const float freq = 1.0f / float(std::pow(float(c.rope_theta), float(i) / float(dim)));
        const double wavelen = 2 * pi / double(freq);
        if (wavelen < high_wavelen) f.push_back(1.0f);
        else if (wavelen > low_wavelen) f.push_back(float(s.factor));
        else {
            const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            f.push_back(float(1.0 / ((1 - smooth) / s.factor + smooth)));
        }
    }
    return f;
}

// The model metadata a llama.cpp loader reads for this config (tokenizer keys are not
// included: the converter copies them from the tokenizer). `file_type`: a file_type value.
inline void set_model_metadata(gguf::writer& w, const llama_config& c, std::uint32_t ftype, const std::string& name = "") {
    using gguf::value;
    const std::string a = gguf_architecture(c);
    w.set("general.architecture", value::string(a));
    if (!name.empty()) w.set("general.name", value::string(name));
    w.set(a + ".block_count", value::scalar<std::uint32_t>(std::uint32_t(c.n_layers)));
    w.set(a + ".context_length", value::scalar<std::uint32_t>(std::uint32_t(c.seq_len)));
    w.set(a + ".embedding_length", value::scalar<std::uint32_t>(std::uint32_t(c.dim)));
    w.set(a + ".feed_forward_length", value::scalar<std::uint32_t>(std::uint32_t(c.hidden_dim)));
    w.set(a + ".attention.head_count", value::scalar<std::uint32_t>(std::uint32_t(c.n_heads)));
    w.set(a + ".attention.head_count_kv", value::scalar<std::uint32_t>(std::uint32_t(c.n_kv_heads)));
    w.set(a + ".rope.freq_base", value::scalar<float>(float(c.rope_theta)));
    w.set(a + ".attention.layer_norm_rms_epsilon", value::scalar<float>(c.rms_eps));
    if (c.head_size() * c.n_heads != c.dim) {
        w.set(a + ".attention.key_length", value::scalar<std::uint32_t>(std::uint32_t(c.head_size())));
        w.set(a + ".attention.value_length", value::scalar<std::uint32_t>(std::uint32_t(c.head_size())));
    }
    w.set("general.file_type", value::scalar<std::uint32_t>(ftype));
    w.set(a + ".vocab_size", value::scalar<std::uint32_t>(std::uint32_t(c.vocab_size)));
    w.set(a + ".rope.dimension_count", value::scalar<std::uint32_t>(std::uint32_t(c.head_size())));
    if (c.rope_linear_factor != 1.0) {
        w.set(a + ".rope.scaling.type", value::string("linear"));
        w.set(a + ".rope.scaling.factor", value::scalar<float>(float(c.rope_linear_factor)));
    }
    // llama3 scaling travels as the rope_freqs.weight tensor (llama3_rope_factors).
    w.set("general.quantization_version", value::scalar<std::uint32_t>(2));
}

}  // namespace io
}  // namespace edgeq
