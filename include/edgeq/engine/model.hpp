// The weights of a Llama-family model. Every matrix is an edgeq::linear (dense or quantized,
// whatever its source chose), so the forward pass never knows the format; norms and biases
// are plain floats. The token embedding is a linear too: the forward pass decodes only the
// rows of the tokens it sees (linear::dequantize_row), never the whole table.
//
// A checkpoint reader fills a model through model_from_tensors(config, source): the source
// answers for tensors under the names below (GGUF's), so a new reader (GGUF, safetensors) is one
// function that maps its own names and layouts to `tensor_source`:
//
//   token_embd                      [vocab, dim]
//   blk.N.attn_norm, blk.N.ffn_norm [dim]
//   blk.N.attn_q / attn_k / attn_v  [q_dim | kv_dim, dim]   (+ ".bias" when config.qkv_bias)
//   blk.N.attn_output               [dim, q_dim]
//   blk.N.ffn_gate, blk.N.ffn_up    [hidden, dim]            (w1, w3)
//   blk.N.ffn_down                  [dim, hidden]            (w2)
//   output_norm                     [dim]
//   output                          [vocab, dim]             (absent when config.tied_output)
#pragma once
#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../linear.hpp"
#include "config.hpp"

namespace edgeq {
namespace engine {

struct llama_layer {
    std::vector<float> attn_norm, ffn_norm;                  // [dim]
    std::unique_ptr<linear> wq, wk, wv, wo;                  // attention
    std::unique_ptr<linear> w1, w2, w3;                      // gate, down, up
    std::vector<float> bq, bk, bv;                           // empty unless config.qkv_bias
};

struct llama_model {
    llama_config config;
    std::unique_ptr<linear> token_embd;  // [vocab, dim]
    std::vector<llama_layer> layers;
    std::vector<float> output_norm;      // [dim]
    std::unique_ptr<linear> output;      // [vocab, dim]; null when tied to token_embd

    const linear& classifier() const { return output ? *output : *token_embd; }
    // Bytes of all weights as stored.
    std::size_t storage_bytes() const {
        std::size_t n = token_embd->storage_bytes() + (output ? output->storage_bytes() : 0);
        for (const llama_layer& l : layers)
            for (const linear* w : {l.wq.get(), l.wk.get(), l.wv.get(), l.wo.get(), l.w1.get(), l.w2.get(), l.w3.get()})
                n += w->storage_bytes();
        return n;
    }
};

// Where model_from_tensors gets its tensors. Each callback throws edgeq::error when the tensor
// is missing or its shape differs.
struct tensor_source {
    // A matrix [rows, cols] as a linear (the source decides the format: as stored, or quantized).
    std::function<std::unique_ptr<linear>(const std::string& name, std::size_t rows, std::size_t cols)> matrix;
    // A vector of n floats.
    std::function<std::vector<float>(const std::string& name, std::size_t n)> vector;
    // Whether the source has the tensor (optional: may be left empty). An "output" it has is
    // used even when the config says tied.
    std::function<bool(const std::string& name)> has;
};

inline llama_model model_from_tensors(const llama_config& c, const tensor_source& src) {
    c.validate();
    if (c.o_bias || c.mlp_bias)
        throw error("model: biases on the attention output or the MLP are not supported by the engine");
    const std::size_t dim = std::size_t(c.dim), hid = std::size_t(c.hidden_dim), qd = std::size_t(c.q_dim()),
                      kvd = std::size_t(c.kv_dim()), vocab = std::size_t(c.vocab_size);
    auto mat = [&](const std::string& name, std::size_t rows, std::size_t cols) {
        std::unique_ptr<linear> l = src.matrix(name, rows, cols);
        if (!l || l->rows() != rows || l->cols() != cols)
            throw error("model: tensor " + name + " should be " + std::to_string(rows) + " x " + std::to_string(cols));
        return l;
    };
    auto vec = [&](const std::string& name, std::size_t n) {
        std::vector<float> v = src.vector(name, n);
        if (v.size() != n) throw error("model: tensor " + name + " should have " + std::to_string(n) + " values");
        return v;
    };
    llama_model m;
    m.config = c;
    m.token_embd = mat("token_embd", vocab, dim);
    for (int i = 0; i < c.n_layers; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        llama_layer l;
        l.attn_norm = vec(p + "attn_norm", dim);
        l.wq = mat(p + "attn_q", qd, dim);
        l.wk = mat(p + "attn_k", kvd, dim);
        l.wv = mat(p + "attn_v", kvd, dim);
        l.wo = mat(p + "attn_output", dim, qd);
        if (c.qkv_bias) {
            l.bq = vec(p + "attn_q.bias", qd);
            l.bk = vec(p + "attn_k.bias", kvd);
            l.bv = vec(p + "attn_v.bias", kvd);
        }
        l.ffn_norm = vec(p + "ffn_norm", dim);
        l.w1 = mat(p + "ffn_gate", hid, dim);
        l.w2 = mat(p + "ffn_down", dim, hid);
        l.w3 = mat(p + "ffn_up", hid, dim);
        m.layers.push_back(std::move(l));
    }
    m.output_norm = vec("output_norm", dim);
    // An untied classifier when the config says so, or when the source has one anyway.
    if (!c.tied_output || (src.has && src.has("output"))) {
        m.output = mat("output", vocab, dim);
        m.config.tied_output = false;
    }
    return m;
}

}  // namespace engine
}  // namespace edgeq
