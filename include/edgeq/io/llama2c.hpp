// llama2.c checkpoints (github.com/karpathy/llama2.c), float32 only:
//
//   v0 ("legacy", run.c):  7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//                          seq_len); vocab_size < 0 means an unshared classifier. Then, fp32:
//                          token_embedding [vocab, dim], rms_att [L, dim], wq [L, q_dim, dim],
//                          wk, wv [L, kv_dim, dim], wo [L, dim, q_dim], rms_ffn [L, dim],
//                          w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim],
//                          rms_final [dim], freq_cis_real and _imag [seq_len, head/2] (unused),
//                          wcls [vocab, dim] when unshared.
//   v1 (export.py "ak42"): uint32 magic 0x616b3432, int32 version 1, the same 7 int32 (vocab
//                          positive), uint8 shared_classifier, zero padding to 256 bytes. Then,
//                          fp32: rms_att [L, dim], rms_ffn [L, dim], rms_final [dim],
//                          token_embedding, wq, wk, wv, wo, w1, w2, w3 (each [L, ...] as above),
//                          wcls when unshared.
//
// q and k are in Meta's interleaved RoPE layout, as run.c rotates them. load_llama2c() keeps
// that layout (rope_pairing::interleaved) unless asked for neox, in which case it permutes the
// rows as transformers' converter does. Every size is checked against the file's length.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../engine/config.hpp"
#include "../engine/model.hpp"
#include "../kernel/simd/dense.hpp"
#include "../linear.hpp"
#include "hf_to_gguf.hpp"

namespace edgeq {
namespace io {

struct llama2c_checkpoint {
    struct tensor {
        std::size_t offset = 0;  // in floats, from the first weight
        std::size_t rows = 0, cols = 0;
    };
    int version = 0;  // 0 (legacy) or 1 (ak42)
    bool shared_classifier = true;
    engine::llama_config config;
    std::vector<float> weights;  // everything after the header
    std::map<std::string, tensor> tensors;

    matrix_view<const float> get(const std::string& name) const {
        const auto it = tensors.find(name);
        if (it == tensors.end()) throw error("llama2.c checkpoint: no tensor " + name);
        return {weights.data() + it->second.offset, it->second.rows, it->second.cols};
    }
};

namespace detail {

inline std::int32_t read_i32(const std::vector<char>& b, std::size_t at) {
    std::int32_t v;
    std::memcpy(&v, b.data() + at, 4);
    return v;
}

}  // namespace detail

constexpr std::uint32_t llama2c_magic = 0x616b3432u;  // "ak42"

inline llama2c_checkpoint read_llama2c(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw error("cannot open llama2.c checkpoint " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string where = "llama2.c checkpoint " + path + ": ";
    if (bytes.size() < 28) throw error(where + "only " + std::to_string(bytes.size()) + " bytes, not even a header");

    llama2c_checkpoint ck;
    std::uint32_t magic;
    std::memcpy(&magic, bytes.data(), 4);
    std::size_t header = 28, p = 0;
    if (magic == llama2c_magic) {
        if (bytes.size() < 256) throw error(where + "the v1 header needs 256 bytes, the file has " + std::to_string(bytes.size()));
        const std::int32_t version = detail::read_i32(bytes, 4);
        if (version != 1)
            throw error(where + "export version " + std::to_string(version) +
                        " is not supported (only the float32 versions: legacy v0 and v1)");
        ck.version = 1;
        p = 8;
        header = 256;
    }
    std::int32_t h[7];
    for (int i = 0; i < 7; ++i) h[i] = detail::read_i32(bytes, p + 4 * std::size_t(i));
    if (ck.version == 1) {
        ck.shared_classifier = bytes[p + 28] != 0;
        if (h[5] <= 0) throw error(where + "vocab_size " + std::to_string(h[5]) + " must be positive in a v1 header");
    } else {
        ck.shared_classifier = h[5] > 0;
        if (h[5] < 0) h[5] = -h[5];
    }
    const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; ++i)
        if (h[i] <= 0 || h[i] > (1 << 24))
            throw error(where + names[i] + " = " + std::to_string(h[i]) + " in the header is not plausible (not a llama2.c file?)");

    engine::llama_config& c = ck.config;
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.vocab_size = h[5];
    c.seq_len = h[6];
    c.rope_theta = 10000.0;  // run.c's constants
    c.rms_eps = 1e-5f;
    c.pairing = engine::rope_pairing::interleaved;
    c.tied_output = ck.shared_classifier;
    c.bos_id = 1;
    c.eos_id = 2;
    if (c.dim % c.n_heads || c.n_heads % c.n_kv_heads)
        throw error(where + "dim " + std::to_string(c.dim) + ", n_heads " + std::to_string(c.n_heads) + " and n_kv_heads " +
                    std::to_string(c.n_kv_heads) + " do not divide");
    c.validate();

    const std::size_t L = std::size_t(c.n_layers), dim = std::size_t(c.dim), hid = std::size_t(c.hidden_dim),
                      qd = std::size_t(c.q_dim()), kvd = std::size_t(c.kv_dim()), vocab = std::size_t(c.vocab_size),
                      hs = std::size_t(c.head_size());
    // The size the header implies, in double first: a damaged header's sizes overflow 64 bits
    // and would have the layout below loop over billions of layers.
    const double need = double(header) + 4.0 * (double(vocab) * double(dim) * (ck.shared_classifier ? 1 : 2) +
                                                 double(L) * (2.0 * double(dim) + 2.0 * double(qd) * double(dim) +
                                                              2.0 * double(kvd) * double(dim) + 3.0 * double(hid) * double(dim)) +
                                                 double(dim) + (ck.version == 0 ? double(c.seq_len) * double(hs) : 0.0));
    auto size_error = [&](double want) {
        char w[32];
        std::snprintf(w, sizeof w, "%.0f", want);
        return error(where + "the header (v" + std::to_string(ck.version) + ", dim " + std::to_string(dim) + ", hidden " +
                     std::to_string(hid) + ", " + std::to_string(L) + " layers, " + std::to_string(c.n_heads) + "/" +
                     std::to_string(c.n_kv_heads) + " heads, vocab " + std::to_string(vocab) + ", seq_len " +
                     std::to_string(c.seq_len) + (ck.shared_classifier ? ", shared" : ", unshared") + " classifier) needs " + w +
                     " bytes, the file has " + std::to_string(bytes.size()) +
                     (double(bytes.size()) < want ? " (truncated?)" : " (trailing data, or a different version?)"));
    };
    if (need != double(bytes.size())) throw size_error(need);
    std::size_t at = 0;
    auto add = [&](const std::string& name, std::size_t rows, std::size_t cols) {
        ck.tensors[name] = llama2c_checkpoint::tensor{at, rows, cols};
        at += rows * cols;
    };
    auto add_layers = [&](const std::string& suffix, std::size_t rows, std::size_t cols) {
        for (std::size_t l = 0; l < L; ++l) add("blk." + std::to_string(l) + "." + suffix, rows, cols);
    };
    if (ck.version == 0) {
        add("token_embd", vocab, dim);
        add_layers("attn_norm", 1, dim);
        add_layers("attn_q", qd, dim);
        add_layers("attn_k", kvd, dim);
        add_layers("attn_v", kvd, dim);
        add_layers("attn_output", dim, qd);
        add_layers("ffn_norm", 1, dim);
        add_layers("ffn_gate", hid, dim);
        add_layers("ffn_down", dim, hid);
        add_layers("ffn_up", hid, dim);
        add("output_norm", 1, dim);
        at += std::size_t(c.seq_len) * hs;  // freq_cis_real and freq_cis_imag, [seq_len, head/2] each
    } else {
        add_layers("attn_norm", 1, dim);
        add_layers("ffn_norm", 1, dim);
        add("output_norm", 1, dim);
        add("token_embd", vocab, dim);
        add_layers("attn_q", qd, dim);
        add_layers("attn_k", kvd, dim);
        add_layers("attn_v", kvd, dim);
        add_layers("attn_output", dim, qd);
        add_layers("ffn_gate", hid, dim);
        add_layers("ffn_down", dim, hid);
        add_layers("ffn_up", hid, dim);
    }
    if (!ck.shared_classifier) add("output", vocab, dim);

    if (header + at * 4 != bytes.size()) throw size_error(double(header + at * 4));  // cannot differ from need
    ck.weights.resize(at);
    std::memcpy(ck.weights.data(), bytes.data() + header, at * 4);
    return ck;
}

// How a loader turns float weights into a linear: by default dense float32, as stored.
using matrix_factory = std::function<std::unique_ptr<linear>(const std::string& name, matrix_view<const float> w)>;

inline matrix_factory dense_factory(const std::string& type = "f32") {
    return [type](const std::string&, matrix_view<const float> w) { return make_dense_linear(type, w); };
}

// The checkpoint as an engine::tensor_source. With neox, q and k rows are permuted to the
// rotate-half layout (and the config must say rope_pairing::neox).
inline engine::tensor_source llama2c_tensors(const llama2c_checkpoint& ck, matrix_factory make, bool neox) {
    engine::tensor_source s;
    const int n_heads = ck.config.n_heads, n_kv = ck.config.n_kv_heads;
    s.matrix = [&ck, make, neox, n_heads, n_kv](const std::string& name, std::size_t rows, std::size_t cols) {
        const matrix_view<const float> w = ck.get(name);
        if (w.rows != rows || w.cols != cols) throw error("llama2.c checkpoint: tensor " + name + " has the wrong shape");
        const bool q = name.size() > 6 && name.compare(name.size() - 6, 6, "attn_q") == 0;
        const bool k = name.size() > 6 && name.compare(name.size() - 6, 6, "attn_k") == 0;
        if (neox && (q || k)) {
            // Meta (interleaved) rows to transformers' rotate-half order, as its converter does.
            std::vector<float> p(rows * cols);
            permute_qk(w.data, p.data(), rows, cols * sizeof(float), std::size_t(q ? n_heads : n_kv), qk_direction::gguf_to_hf);
            return make(name, matrix_view<const float>(p.data(), rows, cols));
        }
        return make(name, w);
    };
    s.vector = [&ck](const std::string& name, std::size_t n) {
        const matrix_view<const float> w = ck.get(name);
        if (w.rows * w.cols != n) throw error("llama2.c checkpoint: tensor " + name + " has the wrong size");
        return std::vector<float>(w.data, w.data + n);
    };
    s.has = [&ck](const std::string& name) { return ck.tensors.count(name) != 0; };
    return s;
}

// Reads a llama2.c checkpoint into a model. make builds each matrix (dense f32 if empty);
// pairing neox permutes q and k to the rotate-half layout first.
inline engine::llama_model load_llama2c(const std::string& path, matrix_factory make = matrix_factory(),
                                        engine::rope_pairing pairing = engine::rope_pairing::interleaved) {
    const llama2c_checkpoint ck = read_llama2c(path);
    engine::llama_config c = ck.config;
    c.pairing = pairing;
    return engine::model_from_tensors(c, llama2c_tensors(ck, make ? make : dense_factory("f32"),
                                                         pairing == engine::rope_pairing::neox));
}

}  // namespace io
}  // namespace edgeq
