// One entry point for the tools: a model file (or folder) to a llama_model, whatever the
// checkpoint format: llama2.c .bin (v0 and v1), or a Hugging Face folder (config.json and
// model.safetensors, single or sharded) of LlamaForCausalLM, MistralForCausalLM or
// Qwen2ForCausalLM. Each format is one function that maps its tensors to an
// engine::tensor_source (model.hpp); GGUF comes the same way.
#pragma once
#include <fstream>
#include <iterator>
#include <string>

#include "../core/error.hpp"
#include "../io/hf_config.hpp"
#include "../io/llama2c.hpp"
#include "../io/safetensors.hpp"
#include "../kernel/simd/dense.hpp"
#include "model.hpp"

namespace edgeq {
namespace engine {

// The engine's config from a Hugging Face config.json (io::parse_llama_config).
inline llama_config config_from_hf(const io::llama_config& h) {
    if (h.o_bias || h.mlp_bias)
        throw error("load_hf: biases on the attention output or the MLP are not supported by the engine");
    if (!h.rope_type.empty() && h.rope_type != "default" && h.rope_type != "llama3")
        throw error("load_hf: rope type '" + h.rope_type + "' is not supported (default and llama3 are)");
    llama_config c;
    c.dim = h.hidden_size;
    c.hidden_dim = h.intermediate_size;
    c.n_layers = h.num_hidden_layers;
    c.n_heads = h.num_attention_heads;
    c.n_kv_heads = h.num_key_value_heads ? h.num_key_value_heads : h.num_attention_heads;
    c.head_dim = h.head_dim;
    c.vocab_size = h.vocab_size;
    c.seq_len = h.max_position_embeddings > 0 ? h.max_position_embeddings : 2048;
    c.rope_theta = h.rope_theta;
    c.pairing = rope_pairing::neox;  // transformers' rotate-half
    if (h.rope_type == "llama3") {
        c.rope_scaling.enabled = true;
        c.rope_scaling.factor = h.rope_factor;
        c.rope_scaling.low_freq_factor = h.rope_low_freq_factor;
        c.rope_scaling.high_freq_factor = h.rope_high_freq_factor;
        c.rope_scaling.original_max_position = h.rope_original_max_position;
    }
    c.rms_eps = float(h.rms_norm_eps);
    c.qkv_bias = h.attention_bias;
    c.tied_output = h.tie_word_embeddings;
    c.bos_id = h.bos_token_id;
    c.eos_id = h.eos_token_id;
    return c;
}

// The Hugging Face name of an engine tensor name (model.hpp's list).
inline std::string hf_tensor_name(const std::string& name) {
    if (name == "token_embd") return "model.embed_tokens.weight";
    if (name == "output_norm") return "model.norm.weight";
    if (name == "output") return "lm_head.weight";
    // blk.N.<what>[.bias]
    const std::size_t dot = name.find('.', 4);
    const std::string layer = name.substr(4, dot - 4);
    std::string what = name.substr(dot + 1), suffix = ".weight";
    if (what.size() > 5 && what.compare(what.size() - 5, 5, ".bias") == 0) {
        what.resize(what.size() - 5);
        suffix = ".bias";
    }
    const std::string p = "model.layers." + layer + ".";
    if (what == "attn_norm") return p + "input_layernorm" + suffix;
    if (what == "ffn_norm") return p + "post_attention_layernorm" + suffix;
    if (what == "attn_q") return p + "self_attn.q_proj" + suffix;
    if (what == "attn_k") return p + "self_attn.k_proj" + suffix;
    if (what == "attn_v") return p + "self_attn.v_proj" + suffix;
    if (what == "attn_output") return p + "self_attn.o_proj" + suffix;
    if (what == "ffn_gate") return p + "mlp.gate_proj" + suffix;
    if (what == "ffn_up") return p + "mlp.up_proj" + suffix;
    if (what == "ffn_down") return p + "mlp.down_proj" + suffix;
    throw error("load_hf: no Hugging Face name for tensor " + name);
}

// A Hugging Face folder. make builds each matrix from float weights; when empty, F32, F16 and
// BF16 tensors are kept as stored (dense_f32 / dense_f16 / dense_bf16).
inline llama_model load_hf(const std::string& dir, io::matrix_factory make = io::matrix_factory()) {
    std::ifstream in(dir + "/config.json", std::ios::binary);
    if (!in) throw error("load_hf: cannot open " + dir + "/config.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const llama_config c = config_from_hf(io::parse_llama_config(text, dir + "/config.json"));
    const io::safetensors st(dir);
    // A tied model may store the shared matrix only as lm_head.weight (TinyStories-656K).
    const bool embed_in_head = !st.find("model.embed_tokens.weight") && st.find("lm_head.weight");
    auto hf_name = [embed_in_head](const std::string& name) {
        return name == "token_embd" && embed_in_head ? std::string("lm_head.weight") : hf_tensor_name(name);
    };
    tensor_source src;
    src.has = [&st, hf_name, embed_in_head](const std::string& name) {
        return !(name == "output" && embed_in_head) && st.find(hf_name(name)) != nullptr;
    };
    src.vector = [&st, hf_name](const std::string& name, std::size_t n) {
        const io::st_tensor& t = st.tensor(hf_name(name));
        if (t.elements != n) throw error("load_hf: " + t.name + " has " + std::to_string(t.elements) + " values, not " + std::to_string(n));
        std::vector<float> v(n);
        io::safetensors::to_float(t, v.data());
        return v;
    };
    src.matrix = [&st, hf_name, make](const std::string& name, std::size_t rows, std::size_t cols) -> std::unique_ptr<linear> {
        const io::st_tensor& t = st.tensor(hf_name(name));
        if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
            throw error("load_hf: " + t.name + " should be [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
        if (!make && t.dtype == io::st_dtype::f16)
            return std::unique_ptr<linear>(new dense_linear<dense_f16>(dense_matrix<dense_f16>::from_storage(t.data, rows, cols)));
        if (!make && t.dtype == io::st_dtype::bf16)
            return std::unique_ptr<linear>(new dense_linear<dense_bf16>(dense_matrix<dense_bf16>::from_storage(t.data, rows, cols)));
        std::vector<float> w(rows * cols);
        io::safetensors::to_float(t, w.data());
        const matrix_view<const float> v(w.data(), rows, cols);
        return make ? make(name, v) : make_dense_linear<dense_f32>(v);
    };
    return model_from_tensors(c, src);
}

// make builds each weight matrix (as stored when empty; io::dense_factory("f16"), or a
// quantizer such as registry::make_linear wrapped in a lambda).
inline llama_model load_model(const std::string& path, io::matrix_factory make = io::matrix_factory()) {
    auto ends_with = [&](const char* s) {
        const std::string e(s);
        return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
    };
    if (ends_with(".gguf")) throw error("load_model: " + path + ": GGUF models are not supported yet");
    if (ends_with(".bin")) return io::load_llama2c(path, make);
    if (std::ifstream(path + "/config.json").good()) return load_hf(path, make);
    return io::load_llama2c(path, make);
}

}  // namespace engine
}  // namespace edgeq
