// One entry point for the tools: a model file (or folder) to a llama_model, whatever the
// checkpoint format: llama2.c .bin (v0 and v1), a Hugging Face folder (config.json and
// model.safetensors, single or sharded) of LlamaForCausalLM, MistralForCausalLM or
// Qwen2ForCausalLM, or a GGUF file (load_gguf.hpp). Each format is one function that maps its
// tensors to an engine::tensor_source (model.hpp).
#pragma once
#include <fstream>
#include <iterator>
#include <string>

#include "../core/error.hpp"
#include "../io/hf_config.hpp"
#include "../io/hf_to_gguf.hpp"
#include "../io/llama2c.hpp"
#include "../io/safetensors.hpp"
#include "../kernel/simd/dense.hpp"
#include "load_gguf.hpp"
#include "model.hpp"

namespace edgeq {
namespace engine {

// The Hugging Face name of an engine tensor name (model.hpp's list, GGUF's without ".weight").
inline std::string hf_tensor_name(const std::string& name) {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    return io::hf_tensor_name(bias ? name : name + ".weight");
}

// A Hugging Face folder. make builds each matrix from float weights; when empty, F32, F16 and
// BF16 tensors are kept as stored (dense_f32 / dense_f16 / dense_bf16).
inline llama_model load_hf(const std::string& dir, io::matrix_factory make = io::matrix_factory()) {
    std::ifstream in(dir + "/config.json", std::ios::binary);
    if (!in) throw error("load_hf: cannot open " + dir + "/config.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const llama_config c = io::parse_llama_config(text, dir + "/config.json");
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
    if (ends_with(".gguf") || is_gguf_file(path)) return load_gguf(path, make);
    if (ends_with(".bin")) return io::load_llama2c(path, make);
    if (std::ifstream(path + "/config.json").good()) return load_hf(path, make);
    return io::load_llama2c(path, make);
}

}  // namespace engine
}  // namespace edgeq
