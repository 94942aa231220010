// Models and tokenizers for run and perplexity: a GGUF file is loaded tensor by tensor under a
// progress bar (a 1B model takes seconds), the other formats through engine::load_model; the
// default tokenizer is the GGUF's own metadata, a folder's tokenizer.json, or the tokenizer.bin
// next to a llama2.c checkpoint.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <edgeq/engine/load.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/io/gguf.hpp>

#include "progress_bar.hpp"

namespace cli {

inline std::string default_tokenizer(const std::string& model) {
    if (edgeq::engine::is_gguf_file(model)) return model;  // tokenizer.ggml.* (tokenizer/load.hpp reads it)
    if (std::ifstream(model + "/tokenizer.json").good()) return model + "/tokenizer.json";
    const std::size_t slash = model.find_last_of('/');
    return (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/tokenizer.bin";
}

inline edgeq::engine::llama_model load_model(const std::string& path, const edgeq::io::matrix_factory& make,
                                             const std::string& title = "loading") {
    namespace en = edgeq::engine;
    if (!en::is_gguf_file(path)) return en::load_model(path, make);
    const edgeq::io::gguf::file f(path);
    en::tensor_source src = en::gguf_tensors(f, make);
    std::uint64_t total = 0, done = 0;
    for (const edgeq::io::gguf::tensor_info& t : f.tensors()) total += t.bytes;
    progress_bar bar(title);
    // Progress in bytes, so the large embedding counts for what it costs.
    auto bytes_of = [&f](const std::string& name) -> std::uint64_t {
        const edgeq::io::gguf::tensor_info* t = f.find(name);
        if (!t) t = f.find(name + ".weight");
        return t ? t->bytes : 0;
    };
    const auto matrix = src.matrix;
    src.matrix = [&](const std::string& name, std::size_t rows, std::size_t cols) {
        std::unique_ptr<edgeq::linear> l = matrix(name, rows, cols);
        done += bytes_of(name);
        bar.update(std::size_t(done), std::size_t(total), name);
        return l;
    };
    const auto vector = src.vector;
    src.vector = [&](const std::string& name, std::size_t n) {
        std::vector<float> v = vector(name, n);
        done += bytes_of(name);
        bar.update(std::size_t(done), std::size_t(total), name);
        return v;
    };
    en::llama_model m = en::model_from_tensors(en::config_from_gguf(f), src);
    bar.finish();
    return m;
}

}  // namespace cli
