// GGUF models in the engine: general.architecture "llama" (Llama, Mistral, llama2.c exports)
// and "qwen2", read in place from the memory mapping (io/gguf.hpp), and the converse,
// save_gguf(), which writes a model as llama.cpp's convert_hf_to_gguf.py would.
//
// Metadata -> engine::llama_config:
//   <arch>.block_count, .context_length, .embedding_length, .feed_forward_length,
//   .attention.head_count, .attention.head_count_kv (default: head_count),
//   .attention.key_length (default embedding_length / head_count; value_length must agree),
//   .rope.dimension_count (must be the head size: partial rotary is not supported),
//   .rope.freq_base (10000), .attention.layer_norm_rms_epsilon (1e-5),
//   .rope.scaling.type linear + .rope.scaling.factor; llama3 scaling is the rope_freqs.weight
//   tensor (per-frequency divisors, as llama.cpp writes it); the vocabulary size is token_embd's
//   row count. RoPE pairs: llama's q/k rows are in Meta's interleaved order (the converter
//   permuted them), qwen2's in NeoX order (never permuted); edgeq.rope.pairing "neox" marks a
//   llama file whose q/k are edgeq blobs kept in Hugging Face order (save_gguf, as stored).
// Tensors -> linears (as stored unless `make` is given, which then receives the decoded floats,
// so that one GGUF is requantized into another scheme):
//   F32, F16, BF16          dense_linear<dense_f32 / f16 / bf16>
//   Q4_0 ... Q6_K, IQ4_*    linear_of<scheme<ggml_type<Block>>> over the tensor's bytes
//   EDGEQ_GROUPED (1024)    the linear of its edgeq.tensor.<name>.scheme, through the hook
//                           grouped_linear_hook(), which engine/gguf_registry.hpp sets: the
//                           registry compiles every format's kernels, so a program opts in
//                           by including that header in one of its .cpp files.
//   EDGEQ_SPQR (1025)       spqr_linear of its SpQR scheme ("spqr-3bit-g16"), through the same
//                           hook; the blob is checked (size, CSR structure, float16 fields)
//                           before use, and a problem names the tensor.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../algo/ggml/quantize.hpp"
#include "../core/error.hpp"
#include "../core/progress.hpp"
#include "../format/dense.hpp"
#include "../io/gguf.hpp"
#include "../io/hf_to_gguf.hpp"
#include "../io/llama2c.hpp"
#include "../kernel/simd/dense.hpp"
#include "../linear.hpp"
#include "../policy/ggml_type.hpp"
#include "../scheme.hpp"
#include "config.hpp"
#include "model.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/tokenizer.hpp"

namespace edgeq {
namespace engine {

// Builds a linear from an edgeq blob, EDGEQ_GROUPED or EDGEQ_SPQR: (scheme name, blob, bytes, rows,
// cols). Throws edgeq::error for a blob that does not fit its scheme and shape.
using grouped_linear_fn = std::unique_ptr<linear> (*)(const std::string& scheme, const std::uint8_t* blob,
                                                       std::uint64_t bytes, std::size_t rows, std::size_t cols);
inline grouped_linear_fn& grouped_linear_hook() {
    static grouped_linear_fn f = nullptr;
    return f;
}

// Whether path starts with the GGUF magic (a directory or an unreadable path is not).
inline bool is_gguf_file(const std::string& path) {
    if (io::is_directory(path)) return false;
    std::ifstream f(path, std::ios::binary);
    char m[4] = {};
    return f.read(m, 4) && std::memcmp(m, "GGUF", 4) == 0;
}

namespace detail {

template <class E>
std::vector<std::uint8_t> dense_bytes(matrix_view<const float> w) {
    std::vector<std::uint8_t> b(w.rows * w.cols * sizeof(typename E::storage));
    typename E::storage* out = reinterpret_cast<typename E::storage*>(b.data());
    for (std::size_t r = 0; r < w.rows; ++r)
        for (std::size_t c = 0; c < w.cols; ++c) out[r * w.cols + c] = E::from_float(w(r, c));
    return b;
}

template <class Block>
std::unique_ptr<linear> ggml_linear(const std::uint8_t* data, std::size_t rows, std::size_t cols) {
    using S = scheme<ggml_type<Block>>;
    qmatrix<format_of<S>> m(rows, cols);
    if (m.storage_bytes()) std::memcpy(m.row_codes(0), data, m.storage_bytes());
    return std::unique_ptr<linear>(new linear_of<S>(std::move(m)));
}

// A llama.cpp block tensor as stored; null for a type that is not one.
inline std::unique_ptr<linear> ggml_linear_of_type(std::uint32_t type, const std::uint8_t* data, std::size_t rows,
                                                   std::size_t cols) {
    namespace g = edgeq::ggml;
    switch (type) {
        case g::block_q4_0::type_id: return ggml_linear<g::block_q4_0>(data, rows, cols);
        case g::block_q4_1::type_id: return ggml_linear<g::block_q4_1>(data, rows, cols);
        case g::block_q5_0::type_id: return ggml_linear<g::block_q5_0>(data, rows, cols);
        case g::block_q5_1::type_id: return ggml_linear<g::block_q5_1>(data, rows, cols);
        case g::block_q8_0::type_id: return ggml_linear<g::block_q8_0>(data, rows, cols);
        case g::block_q2_K::type_id: return ggml_linear<g::block_q2_K>(data, rows, cols);
        case g::block_q3_K::type_id: return ggml_linear<g::block_q3_K>(data, rows, cols);
        case g::block_q4_K::type_id: return ggml_linear<g::block_q4_K>(data, rows, cols);
        case g::block_q5_K::type_id: return ggml_linear<g::block_q5_K>(data, rows, cols);
        case g::block_q6_K::type_id: return ggml_linear<g::block_q6_K>(data, rows, cols);
        case g::block_iq4_nl::type_id: return ggml_linear<g::block_iq4_nl>(data, rows, cols);
        case g::block_iq4_xs::type_id: return ggml_linear<g::block_iq4_xs>(data, rows, cols);
        default: return nullptr;
    }
}

// The format a linear's scheme stores: "gptq-q4_k" holds plain Q4_K blocks (the algorithm only
// chose their codes), so llama.cpp reads it as Q4_K.
inline std::string stored_format(const std::string& scheme) {
    for (const char* p : {"gptq-actorder-", "gptq-", "awq-", "rtn-clip-", "rtn-"}) {
        const std::string prefix(p);
        if (scheme.compare(0, prefix.size(), prefix) == 0) return scheme.substr(prefix.size());
    }
    return scheme;
}

// A linear's stored bytes (linear::storage_data) and their GGUF type: dense and llama.cpp types
// are GGUF tensor data as they are; any other scheme is an edgeq blob (EDGEQ_SPQR for SpQR,
// else EDGEQ_GROUPED).
inline std::vector<std::uint8_t> stored_bytes(const linear& l, std::uint32_t& type) {
    const std::string n = l.scheme_name();
    type = io::gguf::edgeq_type_of(n);
    for (const io::gguf::type_info& t : io::gguf::detail::type_table()) {
        std::string lower = t.name;
        for (char& ch : lower) ch = char(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        if (lower == stored_format(n)) type = t.id;
    }
    return std::vector<std::uint8_t>(l.storage_data(), l.storage_data() + l.storage_bytes());
}

// A GGUF tensor's elements as floats (F32, F16, BF16 only: vectors).
inline std::vector<float> dense_floats(const io::gguf::tensor_info& t, const std::string& where) {
    std::vector<float> v(static_cast<std::size_t>(t.elements));
    const std::uint8_t* p = t.data;
    if (t.type == io::gguf::type::f32) {
        if (!v.empty()) std::memcpy(v.data(), p, v.size() * 4);
    } else if (t.type == io::gguf::type::f16 || t.type == io::gguf::type::bf16) {
        for (std::size_t i = 0; i < v.size(); ++i) {
            std::uint16_t h;
            std::memcpy(&h, p + 2 * i, 2);
            v[i] = t.type == io::gguf::type::f16 ? half_to_float(h) : bf16_to_float(h);
        }
    } else {
        throw error(where + ": tensor '" + t.name + "' is " + io::gguf::type_name(t.type) + "; a vector must be F32, F16 or BF16");
    }
    return v;
}

inline bool ends_with(const std::string& s, const char* e) {
    const std::size_t n = std::strlen(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
}

}  // namespace detail

// The engine's config from a GGUF file's metadata (see the top of this file).
inline llama_config config_from_gguf(const io::gguf::file& f) {
    const std::string where = "GGUF model '" + f.path() + "'";
    const std::string arch = f.get_string("general.architecture");
    if (arch != "llama" && arch != "qwen2")
        throw error(where + ": architecture '" + arch + "' is not supported; edgeq runs llama and qwen2");
    auto u32 = [&](const std::string& k) { return int(std::min<std::uint32_t>(f.get_u32(arch + "." + k), 1u << 30)); };
    auto u32_or = [&](const std::string& k, int def) { return f.has(arch + "." + k) ? u32(k) : def; };
    auto num_or = [&](const std::string& k, double def) { return f.has(arch + "." + k) ? f.get_float(arch + "." + k) : def; };
    llama_config c;
    c.architecture = arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
    c.n_layers = u32("block_count");
    c.seq_len = u32_or("context_length", 2048);
    c.dim = u32("embedding_length");
    c.hidden_dim = u32("feed_forward_length");
    c.n_heads = u32("attention.head_count");
    c.n_kv_heads = u32_or("attention.head_count_kv", c.n_heads);
    if (c.n_heads <= 0) throw error(where + ": " + arch + ".attention.head_count is 0");
    const int key_len = u32_or("attention.key_length", c.dim / c.n_heads);
    if (u32_or("attention.value_length", key_len) != key_len)
        throw error(where + ": key_length and value_length differ, which the engine does not support");
    if (key_len != c.dim / c.n_heads || c.dim % c.n_heads) c.head_dim = key_len;
    if (u32_or("rope.dimension_count", key_len) != key_len)
        throw error(where + ": " + arch + ".rope.dimension_count " + std::to_string(u32("rope.dimension_count")) +
                    " is not the head size " + std::to_string(key_len) + " (partial rotary is not supported)");
    c.rope_theta = num_or("rope.freq_base", 10000.0);
    c.rms_eps = float(num_or("attention.layer_norm_rms_epsilon", 1e-5));
    if (f.has(arch + ".rope.scaling.type")) {
        const std::string t = f.get_string(arch + ".rope.scaling.type");
        if (t == "linear") c.rope_linear_factor = num_or("rope.scaling.factor", 1.0);
        else if (t != "none")
            throw error(where + ": RoPE scaling '" + t + "' is not supported (linear is; llama3 comes as rope_freqs.weight)");
    }
    c.pairing = arch == "qwen2" ? rope_pairing::neox : rope_pairing::interleaved;
    if (f.has("edgeq.rope.pairing") && f.get_string("edgeq.rope.pairing") == "neox") c.pairing = rope_pairing::neox;  // save_gguf
    const io::gguf::tensor_info& emb = f.tensor("token_embd.weight");
    if (emb.shape.size() != 2 || emb.shape[0] != std::uint64_t(c.dim) || emb.shape[1] > (1u << 30))
        throw error(where + ": token_embd.weight has shape " + io::gguf::detail::shape_text(emb.shape) + ", not [" +
                    std::to_string(c.dim) + ", vocab]");
    c.vocab_size = int(emb.shape[1]);
    c.qkv_bias = f.find("blk.0.attn_q.bias") != nullptr;
    c.o_bias = f.find("blk.0.attn_output.bias") != nullptr;
    c.tied_output = f.find("output.weight") == nullptr;
    auto id = [&](const char* k) { return f.has(k) ? int(std::min<std::uint64_t>(f.get_uint(k), 0x7fffffff)) : -1; };
    c.bos_id = id("tokenizer.ggml.bos_token_id");
    c.eos_id = id("tokenizer.ggml.eos_token_id");
    if (const io::gguf::tensor_info* rf = f.find("rope_freqs.weight")) c.rope_freq_factors = detail::dense_floats(*rf, where);
    return c;
}

// The tensors of an open GGUF file as an engine::tensor_source (the file must outlive it).
inline tensor_source gguf_tensors(const io::gguf::file& f, io::matrix_factory make = io::matrix_factory()) {
    const std::string where = "GGUF model '" + f.path() + "'";
    auto gguf_name = [](const std::string& name) { return detail::ends_with(name, ".bias") ? name : name + ".weight"; };
    tensor_source s;
    s.has = [&f, gguf_name](const std::string& name) { return f.find(gguf_name(name)) != nullptr; };
    s.vector = [&f, gguf_name, where](const std::string& name, std::size_t n) {
        const io::gguf::tensor_info& t = f.tensor(gguf_name(name));
        if (t.elements != n)
            throw error(where + ": tensor '" + t.name + "' has " + std::to_string(t.elements) + " values, not " + std::to_string(n));
        std::vector<float> v = detail::dense_floats(t, where);
        f.release(t);
        return v;
    };
    s.matrix = [&f, gguf_name, where, make](const std::string& name, std::size_t rows, std::size_t cols) -> std::unique_ptr<linear> {
        const io::gguf::tensor_info& t = f.tensor(gguf_name(name));
        if (t.shape.size() != 2 || t.shape[0] != cols || t.shape[1] != rows)
            throw error(where + ": tensor '" + t.name + "' has shape " + io::gguf::detail::shape_text(t.shape) + ", not [" +
                        std::to_string(cols) + ", " + std::to_string(rows) + "]");
        std::unique_ptr<linear> l;
        if (t.type == io::gguf::type::f32) {
            if (make && reinterpret_cast<std::uintptr_t>(t.data) % alignof(float) == 0) {  // else decoded (copied) below
                std::unique_ptr<linear> q = make(name, matrix_view<const float>(reinterpret_cast<const float*>(t.data), rows, cols));
                f.release(t);
                return q;
            }
            l.reset(new dense_linear<dense_f32>(dense_matrix<dense_f32>::from_storage(t.data, rows, cols)));
        } else if (t.type == io::gguf::type::f16) {
            l.reset(new dense_linear<dense_f16>(dense_matrix<dense_f16>::from_storage(t.data, rows, cols)));
        } else if (t.type == io::gguf::type::bf16) {
            l.reset(new dense_linear<dense_bf16>(dense_matrix<dense_bf16>::from_storage(t.data, rows, cols)));
        } else if (io::gguf::is_edgeq_blob(t.type)) {
            if (!grouped_linear_hook())
                throw error(where + ": tensor '" + t.name + "' is an edgeq " + t.scheme +
                            " blob; this program reads them only with <edgeq/engine/gguf_registry.hpp> included");
            try {
                l = grouped_linear_hook()(t.scheme, t.data, t.bytes, rows, cols);
            } catch (const error& e) {  // a damaged blob: say which tensor
                throw error(where + ": tensor '" + t.name + "' (" + io::gguf::type_name(t.type) + "): " +
                            std::string(e.what()).substr(7));
            }
        } else {
            l = detail::ggml_linear_of_type(t.type, t.data, rows, cols);
            if (!l) throw error(where + ": tensor '" + t.name + "' has type " + io::gguf::type_name(t.type) + ", which the engine does not run");
        }
        f.release(t);  // copied into l
        if (!make) return l;
        // Requantize: decode every row, then hand the floats to make.
        std::vector<float> w(rows * cols);
        for (std::size_t r = 0; r < rows; ++r) l->dequantize_row(r, &w[r * cols]);
        return make(name, matrix_view<const float>(w.data(), rows, cols));
    };
    return s;
}

// A GGUF model file. make builds each matrix from float weights; when empty, every tensor is kept
// as stored (see the top of this file).
inline llama_model load_gguf(const std::string& path, io::matrix_factory make = io::matrix_factory()) {
    const io::gguf::file f(path);
    return model_from_tensors(config_from_gguf(f), gguf_tensors(f, make));
}

// --- writing -------------------------------------------------------------------------------

// The tensor type of an output: a dense type, a llama.cpp block type, or an edgeq scheme name.
struct gguf_target {
    std::string name;   // "f32", "q8_0", "int4-g128"
    std::uint32_t type = io::gguf::type::f32;  // GGUF type id (EDGEQ_GROUPED for edgeq schemes)
    std::uint32_t ftype = io::file_type::all_f32;
    std::size_t block = 0;  // row lengths must be multiples of this (0: the GGUF type's block)
};

// Turns float rows into a tensor's bytes: (floats [rows, cols]) -> bytes; null when the row
// length cannot be stored (the writer then falls back to F16, as llama.cpp's quantize does).
using gguf_encoder = std::function<std::vector<std::uint8_t>(matrix_view<const float> w)>;

namespace detail {
template <class Block>
std::vector<std::uint8_t> ggml_bytes(matrix_view<const float> w) {
    const std::size_t per_row = w.cols / std::size_t(Block::weights) * sizeof(Block);
    std::vector<std::uint8_t> b(w.rows * per_row);
    check_finite(w);
    default_pool().parallel_for(w.rows, 1, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r)
            ggml::quantize_row<Block>(w.row(r), reinterpret_cast<Block*>(b.data() + r * per_row), w.cols, nullptr);
    });
    return b;
}
}  // namespace detail

// The targets edgeq writes without the registry: f32, f16, bf16 and llama.cpp's block types.
// Returns false for other names (an edgeq scheme: the caller quantizes through the registry).
inline bool gguf_builtin_target(const std::string& name, gguf_target& t, gguf_encoder& enc) {
    namespace g = edgeq::ggml;
    namespace ft = io::file_type;
    struct row {
        const char* name;
        std::uint32_t type, ftype;
        std::vector<std::uint8_t> (*encode)(matrix_view<const float>);
    };
    static const row rows[] = {
        {"f32", io::gguf::type::f32, ft::all_f32, detail::dense_bytes<dense_f32>},
        {"f16", io::gguf::type::f16, ft::mostly_f16, detail::dense_bytes<dense_f16>},
        {"bf16", io::gguf::type::bf16, ft::mostly_bf16, detail::dense_bytes<dense_bf16>},
        {"q4_0", g::block_q4_0::type_id, ft::mostly_q4_0, detail::ggml_bytes<g::block_q4_0>},
        {"q4_1", g::block_q4_1::type_id, ft::mostly_q4_1, detail::ggml_bytes<g::block_q4_1>},
        {"q5_0", g::block_q5_0::type_id, ft::mostly_q5_0, detail::ggml_bytes<g::block_q5_0>},
        {"q5_1", g::block_q5_1::type_id, ft::mostly_q5_1, detail::ggml_bytes<g::block_q5_1>},
        {"q8_0", g::block_q8_0::type_id, ft::mostly_q8_0, detail::ggml_bytes<g::block_q8_0>},
        {"q2_k", g::block_q2_K::type_id, ft::mostly_q2_k, detail::ggml_bytes<g::block_q2_K>},
        {"q3_k", g::block_q3_K::type_id, ft::mostly_q3_k_m, detail::ggml_bytes<g::block_q3_K>},
        {"q4_k", g::block_q4_K::type_id, ft::mostly_q4_k_m, detail::ggml_bytes<g::block_q4_K>},
        {"q5_k", g::block_q5_K::type_id, ft::mostly_q5_k_m, detail::ggml_bytes<g::block_q5_K>},
        {"q6_k", g::block_q6_K::type_id, ft::mostly_q6_k, detail::ggml_bytes<g::block_q6_K>},
        {"iq4_nl", g::block_iq4_nl::type_id, ft::mostly_iq4_nl, detail::ggml_bytes<g::block_iq4_nl>},
        {"iq4_xs", g::block_iq4_xs::type_id, ft::mostly_iq4_xs, detail::ggml_bytes<g::block_iq4_xs>},
    };
    for (const row& r : rows)
        if (name == r.name) {
            t.name = name;
            t.type = r.type;
            t.ftype = r.ftype;
            enc = r.encode;
            return true;
        }
    return false;
}

// The row length a target stores whole (1 for dense types).
inline std::size_t gguf_target_block(const gguf_target& t) {
    if (t.block) return t.block;
    const io::gguf::type_info* ti = io::gguf::find_type(t.type);
    return ti && ti->block_weights ? ti->block_weights : 1;
}

struct gguf_save_options {
    std::string name;               // general.name ("" leaves it out)
    gguf_target target;             // the matrices' type (norms and biases stay F32)
    // floats -> target bytes (gguf_builtin_target, or a registry scheme). Empty: every matrix is
    // written as it is stored now (dense, llama.cpp blocks, edgeq blobs; a mixed-type model).
    gguf_encoder encode;
    progress_fn progress;           // (tensors written, tensors in all, name)
    // Filled by save_gguf: tensors stored as F16 because the target cannot hold their rows.
    std::vector<std::string>* fallbacks = nullptr;
};

// Writes m (with tokenizer tk, may be null) as a GGUF file at path, atomically (a temporary file
// renamed into place: an interrupted or failed write leaves no file), following llama.cpp's
// convert_hf_to_gguf.py: general.architecture llama (or qwen2), llama.* keys, tokenizer.ggml.*,
// tensor names token_embd / blk.N.* / output_norm / output, q/k rows in GGUF (interleaved) order,
// norms and biases F32, general.alignment 32. Matrices are decoded row by row (linear::
// dequantize_row) and encoded one at a time while the file is written, so memory holds one
// tensor beyond the model.
inline void save_gguf(const llama_model& m, const tok::tokenizer* tk, const std::string& path, const gguf_save_options& o) {
    using io::gguf::value;
    llama_config c = m.config;
    c.vocab_size = int(m.token_embd->rows());
    io::gguf::writer w;
    w.set("general.alignment", value::scalar<std::uint32_t>(io::gguf::default_alignment));  // as convert_hf_to_gguf.py
    io::set_model_metadata(w, c, o.target.ftype, o.name);
    if (tk) {
        const tok::gguf_tokenizer_data d = tok::to_gguf_metadata(*tk);
        if (int(d.tokens.size()) > c.vocab_size)
            throw error("save_gguf: the tokenizer has " + std::to_string(d.tokens.size()) + " tokens, the model " +
                        std::to_string(c.vocab_size));
        w.set("tokenizer.ggml.model", value::string(d.model));
        w.set("tokenizer.ggml.pre", value::string(d.pre.empty() ? "default" : d.pre));
        w.set("tokenizer.ggml.tokens", value::string_array(d.tokens));
        if (!d.scores.empty()) w.set("tokenizer.ggml.scores", value::array<float>(d.scores));
        std::vector<std::int32_t> types(d.token_type.begin(), d.token_type.end());
        w.set("tokenizer.ggml.token_type", value::array<std::int32_t>(types));
        if (!d.merges.empty()) w.set("tokenizer.ggml.merges", value::string_array(d.merges));
        if (d.bos >= 0) w.set("tokenizer.ggml.bos_token_id", value::scalar<std::uint32_t>(std::uint32_t(d.bos)));
        if (d.eos >= 0) w.set("tokenizer.ggml.eos_token_id", value::scalar<std::uint32_t>(std::uint32_t(d.eos)));
        if (d.unk >= 0) w.set("tokenizer.ggml.unknown_token_id", value::scalar<std::uint32_t>(std::uint32_t(d.unk)));
        w.set("tokenizer.ggml.add_bos_token", value::scalar<bool>(d.add_bos));
        w.set("tokenizer.ggml.add_eos_token", value::scalar<bool>(d.add_eos));
        if (d.model == "llama") w.set("tokenizer.ggml.add_space_prefix", value::scalar<bool>(d.add_space_prefix));
        if (d.fuse_unk) w.set("edgeq.tokenizer.fuse_unk", value::scalar<bool>(true));
        if (d.normalized_specials) w.set("edgeq.tokenizer.normalized_specials", value::scalar<bool>(true));
        if (!d.parse_special) w.set("edgeq.tokenizer.parse_special", value::scalar<bool>(false));
    } else {
        if (c.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", value::scalar<std::uint32_t>(std::uint32_t(c.bos_id)));
        if (c.eos_id >= 0) w.set("tokenizer.ggml.eos_token_id", value::scalar<std::uint32_t>(std::uint32_t(c.eos_id)));
    }

    // What to write, in llama.cpp's order: token_embd, rope_freqs, the blocks, output_norm, output.
    struct item {
        std::string name;
        const linear* mat;          // a matrix, or
        const std::vector<float>* vec;  // a vector (F32)
        std::size_t qk_heads;       // q/k rows to permute from NeoX to interleaved order
        std::uint32_t type;
        std::string scheme;         // edgeq blobs (EDGEQ_GROUPED, EDGEQ_SPQR)
    };
    std::vector<item> items;
    const bool as_stored = !o.encode;
    // Row-major stored matrices (dense, llama.cpp blocks) permute by rows; an edgeq grouped blob
    // (planar sections) cannot, so a model whose q/k are such blobs keeps its NeoX rows and says so
    // in edgeq.rope.pairing (llama.cpp cannot read such a file anyway).
    auto row_major = [](const linear& l) {
        gguf_target t;
        gguf_encoder e;
        return gguf_builtin_target(detail::stored_format(l.scheme_name()), t, e);
    };
    bool permute = c.pairing == rope_pairing::neox && io::needs_qk_permutation(c);
    if (permute && as_stored)
        for (const llama_layer& L : m.layers)
            if (!row_major(*L.wq) || !row_major(*L.wk)) permute = false;
    if (c.pairing == rope_pairing::neox && !permute && !c.is_qwen2()) w.set("edgeq.rope.pairing", value::string("neox"));
    std::vector<float> rope_freqs = c.rope_freq_factors.empty() ? io::llama3_rope_factors(c) : c.rope_freq_factors;
    std::vector<std::vector<float>> biases;  // permuted q/k biases
    biases.reserve(2 * m.layers.size());
    auto add_vec = [&](const std::string& n, const std::vector<float>& v) {
        items.push_back(item{n, nullptr, &v, 0, io::gguf::type::f32, ""});
    };
    auto add_mat = [&](const std::string& n, const linear& l, std::size_t heads) {
        if (as_stored) {
            gguf_target t;
            gguf_encoder e;
            const bool builtin = gguf_builtin_target(detail::stored_format(l.scheme_name()), t, e);
            items.push_back(item{n, &l, nullptr, heads, builtin ? t.type : io::gguf::edgeq_type_of(l.scheme_name()), l.scheme_name()});
            return;
        }
        std::uint32_t type = o.target.type;
        if (l.cols() % gguf_target_block(o.target)) {
            type = io::gguf::type::f16;
            if (o.fallbacks) o.fallbacks->push_back(n);
        }
        items.push_back(item{n, &l, nullptr, heads, type, o.target.name});
    };
    add_mat("token_embd.weight", *m.token_embd, 0);
    if (!rope_freqs.empty()) add_vec("rope_freqs.weight", rope_freqs);
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const llama_layer& L = m.layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        add_vec(p + "attn_norm.weight", L.attn_norm);
        add_mat(p + "attn_q.weight", *L.wq, permute ? std::size_t(c.n_heads) : 0);
        add_mat(p + "attn_k.weight", *L.wk, permute ? std::size_t(c.n_kv_heads) : 0);
        add_mat(p + "attn_v.weight", *L.wv, 0);
        add_mat(p + "attn_output.weight", *L.wo, 0);
        if (c.qkv_bias) {
            biases.push_back(permute ? io::permute_qk(L.bq, L.bq.size(), std::size_t(c.n_heads), io::qk_direction::hf_to_gguf) : L.bq);
            add_vec(p + "attn_q.bias", biases.back());
            biases.push_back(permute ? io::permute_qk(L.bk, L.bk.size(), std::size_t(c.n_kv_heads), io::qk_direction::hf_to_gguf) : L.bk);
            add_vec(p + "attn_k.bias", biases.back());
            add_vec(p + "attn_v.bias", L.bv);
        }
        add_vec(p + "ffn_norm.weight", L.ffn_norm);
        add_mat(p + "ffn_gate.weight", *L.w1, 0);
        add_mat(p + "ffn_down.weight", *L.w2, 0);
        add_mat(p + "ffn_up.weight", *L.w3, 0);
    }
    add_vec("output_norm.weight", m.output_norm);
    if (m.output) add_mat("output.weight", *m.output, 0);

    // Encodes matrix `it` (decoded, permuted) into bytes.
    auto encode = [&](const item& it) {
        const std::size_t rows = it.mat->rows(), cols = it.mat->cols();
        if (as_stored) {
            std::uint32_t type = 0;
            std::vector<std::uint8_t> b = detail::stored_bytes(*it.mat, type);
            if (type != it.type) throw error("save_gguf: " + it.name + " changed type while writing");
            if (!it.qk_heads) return b;
            std::vector<std::uint8_t> p(b.size());
            io::permute_qk(b.data(), p.data(), rows, b.size() / rows, it.qk_heads, io::qk_direction::hf_to_gguf);
            return p;
        }
        std::vector<float> f(rows * cols);
        for (std::size_t r = 0; r < rows; ++r) it.mat->dequantize_row(r, &f[r * cols]);
        if (it.qk_heads) f = io::permute_qk(f, rows, it.qk_heads, io::qk_direction::hf_to_gguf);
        const matrix_view<const float> v(f.data(), rows, cols);
        return it.type == io::gguf::type::f16 && o.target.type != io::gguf::type::f16 ? detail::dense_bytes<dense_f16>(v)
                                                                                     : o.encode(v);
    };
    // The header needs each tensor's size: block and dense types know it from the shape; an edgeq
    // blob's size comes from encoding it, so those are encoded here (kept until written).
    std::vector<std::vector<std::uint8_t>> pre(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        const item& it = items[i];
        if (it.vec) {
            w.declare_tensor(it.name, io::gguf::type::f32, {std::uint64_t(it.vec->size())});
        } else if (io::gguf::is_edgeq_blob(it.type) && as_stored) {
            w.declare_edgeq_blob(it.name, it.scheme, it.mat->cols(), it.mat->rows(), it.mat->storage_bytes());
        } else if (io::gguf::is_edgeq_blob(it.type)) {
            pre[i] = encode(it);
            report(o.progress, i + 1, items.size(), it.name);
            w.declare_edgeq_blob(it.name, it.scheme, it.mat->cols(), it.mat->rows(), pre[i].size());
        } else {
            w.declare_tensor(it.name, it.type, {std::uint64_t(it.mat->cols()), std::uint64_t(it.mat->rows())});
        }
    }
    w.write(path, [&](std::size_t i, const std::string&, const io::gguf::writer::sink_fn& sink) {
        const item& it = items[i];
        if (it.vec) {
            sink(it.vec->data(), it.vec->size() * sizeof(float));
        } else if (!pre[i].empty()) {
            sink(pre[i].data(), pre[i].size());
            std::vector<std::uint8_t>().swap(pre[i]);
        } else {
            const std::vector<std::uint8_t> b = encode(it);
            sink(b.data(), b.size());
        }
        report(o.progress, i + 1, items.size(), it.name);
    });
}

}  // namespace engine
}  // namespace edgeq
