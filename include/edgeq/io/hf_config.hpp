// Hugging Face config.json of the Llama family: LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM, in the transformers 4 form (top-level rope_theta, rope_scaling,
// torch_dtype) and the transformers 5 form (rope_parameters, dtype), into engine::llama_config.
// Host only.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../engine/config.hpp"
#include "mmap.hpp"

namespace edgeq {
namespace io {

// config.json parses into the engine's llama_config (engine/config.hpp), the project's one
// config struct; io::llama_config names the same type.
using llama_config = engine::llama_config;

namespace detail {
inline const nlohmann::json* cfg_find(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}
inline int cfg_int(const nlohmann::json& j, const char* key, const std::string& where, bool required, int def = 0) {
    const nlohmann::json* v = cfg_find(j, key);
    if (!v) {
        if (required) throw error(where + ": \"" + key + "\" is missing");
        return def;
    }
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 || v->get<std::int64_t>() > 0x7fffffff)
        throw error(where + ": \"" + key + "\" is not a non-negative integer");
    return v->get<int>();
}
inline double cfg_num(const nlohmann::json& j, const char* key, const std::string& where, double def) {
    const nlohmann::json* v = cfg_find(j, key);
    if (!v) return def;
    if (!v->is_number() || !std::isfinite(v->get<double>())) throw error(where + ": \"" + key + "\" is not a number");
    return v->get<double>();
}
inline bool cfg_bool(const nlohmann::json& j, const char* key, const std::string& where, bool def) {
    const nlohmann::json* v = cfg_find(j, key);
    if (!v) return def;
    if (!v->is_boolean()) throw error(where + ": \"" + key + "\" is not true or false");
    return v->get<bool>();
}
// bos/eos may be an integer or a list of integers (the first is taken).
inline int cfg_token(const nlohmann::json& j, const char* key, const std::string& where) {
    const nlohmann::json* v = cfg_find(j, key);
    if (!v) return -1;
    if (v->is_array()) {
        if (v->empty()) return -1;
        v = &(*v)[0];
    }
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 || v->get<std::int64_t>() > 0x7fffffff)
        throw error(where + ": \"" + key + "\" is not a token id");
    return v->get<int>();
}
}  // namespace detail

// Parses config.json text; `where` names it in messages.
inline llama_config parse_llama_config(const std::string& text, const std::string& where = "config.json") {
    namespace d = detail;
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw error(where + " is not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw error(where + " is not a JSON object");
    llama_config c;
    c.bos_id = c.eos_id = -1;  // only what the file says
    std::string model_type;
    const nlohmann::json* archs = d::cfg_find(j, "architectures");
    if (archs && archs->is_array() && !archs->empty() && (*archs)[0].is_string()) c.architecture = (*archs)[0].get<std::string>();
    const nlohmann::json* mt = d::cfg_find(j, "model_type");
    if (mt && mt->is_string()) model_type = mt->get<std::string>();
    if (c.architecture.empty()) {
        if (model_type == "llama") c.architecture = "LlamaForCausalLM";
        else if (model_type == "mistral") c.architecture = "MistralForCausalLM";
        else if (model_type == "qwen2") c.architecture = "Qwen2ForCausalLM";
    }
    if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" && c.architecture != "Qwen2ForCausalLM")
        throw error(where + ": architecture '" + (c.architecture.empty() ? model_type : c.architecture) +
                    "' is not supported; edgeq reads LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM");
    const bool qwen2 = c.is_qwen2();

    c.dim = d::cfg_int(j, "hidden_size", where, true);
    c.hidden_dim = d::cfg_int(j, "intermediate_size", where, true);
    c.n_layers = d::cfg_int(j, "num_hidden_layers", where, true);
    c.n_heads = d::cfg_int(j, "num_attention_heads", where, true);
    c.n_kv_heads = d::cfg_int(j, "num_key_value_heads", where, false, c.n_heads);
    c.vocab_size = d::cfg_int(j, "vocab_size", where, true);
    c.seq_len = d::cfg_int(j, "max_position_embeddings", where, false, 2048);
    if (!c.dim || !c.hidden_dim || !c.n_layers || !c.n_heads || !c.n_kv_heads || !c.vocab_size || !c.seq_len)
        throw error(where + ": a model size is zero");
    if (c.n_heads % c.n_kv_heads)
        throw error(where + ": num_attention_heads (" + std::to_string(c.n_heads) +
                    ") is not a multiple of num_key_value_heads (" + std::to_string(c.n_kv_heads) + ")");
    c.head_dim = d::cfg_int(j, "head_dim", where, false, 0);
    if (!c.head_dim) {
        if (c.dim % c.n_heads)
            throw error(where + ": hidden_size is not a multiple of num_attention_heads and head_dim is not given");
        c.head_dim = c.dim / c.n_heads;
    }
    if (c.head_dim % 2) throw error(where + ": head_dim " + std::to_string(c.head_dim) + " is odd; RoPE needs pairs");
    c.rms_eps = float(d::cfg_num(j, "rms_norm_eps", where, 1e-6));
    c.pairing = engine::rope_pairing::neox;  // transformers' rotate-half

    // RoPE: transformers 5 puts theta and scaling in rope_parameters; 4 uses rope_theta and rope_scaling.
    const nlohmann::json* rp = d::cfg_find(j, "rope_parameters");
    if (rp && !rp->is_object()) throw error(where + ": \"rope_parameters\" is not an object");
    const nlohmann::json* rs = d::cfg_find(j, "rope_scaling");
    if (rs && !rs->is_object()) throw error(where + ": \"rope_scaling\" is not an object");
    c.rope_theta = d::cfg_num(j, "rope_theta", where, 10000.0);
    if (rp) c.rope_theta = d::cfg_num(*rp, "rope_theta", where + ": rope_parameters", c.rope_theta);
    const nlohmann::json* scaling = rp ? rp : rs;
    if (scaling) {
        const std::string sw = where + (rp ? ": rope_parameters" : ": rope_scaling");
        const nlohmann::json* t = d::cfg_find(*scaling, "rope_type");
        if (!t) t = d::cfg_find(*scaling, "type");
        std::string type = t && t->is_string() ? t->get<std::string>() : "default";
        if (type != "default" && type != "llama3" && type != "linear")
            throw error(sw + ": RoPE scaling '" + type + "' is not supported; edgeq reads default, linear and llama3");
        double factor = 1.0;
        if (type != "default") {
            factor = d::cfg_num(*scaling, "factor", sw, 0.0);
            if (!(factor > 0)) throw error(sw + ": \"factor\" must be a positive number");
        }
        if (type == "linear") c.rope_linear_factor = factor;
        if (type == "llama3") {
            engine::llama3_rope_scaling& l3 = c.rope_scaling;
            l3.enabled = true;
            l3.factor = factor;
            l3.low_freq_factor = d::cfg_num(*scaling, "low_freq_factor", sw, 1.0);
            l3.high_freq_factor = d::cfg_num(*scaling, "high_freq_factor", sw, 4.0);
            l3.original_max_position = d::cfg_int(*scaling, "original_max_position_embeddings", sw, true);
            if (!(l3.high_freq_factor > l3.low_freq_factor)) throw error(sw + ": high_freq_factor must exceed low_freq_factor");
        }
    }
    if (!(c.rope_theta > 0)) throw error(where + ": rope_theta must be positive");

    c.tied_output = d::cfg_bool(j, "tie_word_embeddings", where, false);
    if (qwen2) {
        c.qkv_bias = true;  // Qwen2 always has q, k, v biases and none on o
    } else {
        c.qkv_bias = d::cfg_bool(j, "attention_bias", where, false);
        c.o_bias = c.qkv_bias;
    }
    c.mlp_bias = d::cfg_bool(j, "mlp_bias", where, false);
    c.bos_id = d::cfg_token(j, "bos_token_id", where);
    c.eos_id = d::cfg_token(j, "eos_token_id", where);
    const nlohmann::json* dt = d::cfg_find(j, "dtype");
    if (!dt) dt = d::cfg_find(j, "torch_dtype");
    if (dt && dt->is_string()) c.dtype = dt->get<std::string>();
    return c;
}

// Reads `path`: a config.json, or a model directory holding one.
inline llama_config read_llama_config(const std::string& path) {
    const std::string file = is_directory(path) ? path + "/config.json" : path;
    return parse_llama_config(read_text_file(file), "'" + file + "'");
}

}  // namespace io
}  // namespace edgeq
