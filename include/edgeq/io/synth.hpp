// Synthetic models: a GGUF file with random weights in the exact shapes of a real Llama-family
// model (TinyLlama-1.1B, Llama-3.2-1B, Llama-7B), laid out as llama.cpp's convert_hf_to_gguf
// writes it, with a tokenizer, so loaders, kernels, memory use and speed can be measured at real
// sizes without downloading weights. The numbers are meaningless but the logits are finite.
//
//     const auto& shape = io::synth::find_shape("tinyllama-1.1b");
//     io::synth::write("/tmp/t.gguf", shape, io::synth::encoder_for("q4_k"), {}, pool, progress);
//
// What is written (llama.cpp's conventions):
//   general.architecture = "llama", llama.* hyper-parameters, tokenizer.ggml.* (a SentencePiece-
//   style "llama" vocabulary of the model's size: <unk>, <s>, </s>, the 256 byte pieces <0xNN>,
//   then filler pieces "▁", single characters, "▁"+characters, pairs, ...);
//   tensors token_embd.weight, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
//   ffn_gate, ffn_up, ffn_down}.weight, output_norm.weight, output.weight (absent when the model
//   ties it to the embedding), rope_freqs.weight for Llama 3 rope scaling (as llama.cpp does:
//   the divisor of each frequency). Norms are F32; every matrix takes the chosen encoding.
// Weights: near-normal (row_rng::normal), standard deviation 0.02 (the usual initialisation);
// norms 1 + N(0, 0.02). Each row is drawn from its own generator seeded by (seed, tensor, row),
// so the file does not depend on the thread count. Q and K are random, so llama.cpp's row permutation is moot.
//
// Memory: tensors are produced one at a time while the file is written (gguf::writer's
// streaming mode), and row-wise encodings (f32, f16, bf16, llama.cpp blocks) in chunks of rows,
// so the peak is a few tens of MB above the largest grouped blob. Grouped (edgeq) formats keep
// one matrix's blob in memory; their double-quantized variants (-dq) need the whole float
// matrix, since the second-level scales are fitted over the whole matrix.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/stat.h>

#include "../algo/ggml/quantize.hpp"
#include "../algo/rtn.hpp"
#include "../core/error.hpp"
#include "../core/half.hpp"
#include "../core/matrix_view.hpp"
#include "../core/progress.hpp"
#include "../core/thread_pool.hpp"
#include "../format/dense.hpp"
#include "../format/ggml/blocks.hpp"
#include "../format/ggml/format.hpp"
#include "../scheme.hpp"
#include "gguf.hpp"

namespace edgeq {
namespace io {
namespace synth {

// --- the models ----------------------------------------------------------------------------

struct model_shape {
    const char* name;   // the --like name
    const char* title;  // as its authors call it
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, context_length;
    double rope_theta;
    float rms_eps;
    bool tied_embeddings;
    // Llama 3 rope scaling (rope_type "llama3"); factor 0: none.
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor, rope_original_context;

    int head_dim() const { return dim / n_heads; }
};

// From each model's config.json on the Hugging Face hub.
inline const std::vector<model_shape>& shapes() {
    static const std::vector<model_shape> s = {
        {"tinyllama-1.1b", "TinyLlama-1.1B", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0, 1e-5f, false, 0, 0, 0, 0},
        {"llama-3.2-1b", "Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, 131072, 500000.0, 1e-5f, true, 32.0, 1.0, 4.0,
         8192.0},
        {"llama-7b", "Llama-7B", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0, 1e-5f, false, 0, 0, 0, 0},
    };
    return s;
}

inline std::string shape_names() {
    std::string n;
    for (std::size_t i = 0; i < shapes().size(); ++i) n += (i ? ", " : "") + std::string(shapes()[i].name);
    return n;
}

inline const model_shape* find_shape_or_null(const std::string& name) {
    for (const model_shape& s : shapes())
        if (name == s.name) return &s;
    return nullptr;
}

inline const model_shape& find_shape(const std::string& name) {
    const model_shape* s = find_shape_or_null(name);
    if (!s) throw error("synth: unknown model '" + name + "'; the models are " + shape_names());
    return *s;
}

// --- the tensors ---------------------------------------------------------------------------

struct tensor_plan {
    std::string name;          // GGUF name, "blk.3.ffn_up.weight"
    std::uint64_t rows, cols;  // a vector has rows == 1
    bool matrix;               // false: an F32 vector (norms, rope_freqs)
};

// In llama.cpp's order. layers: 0 for the model's own count.
inline std::vector<tensor_plan> plan(const model_shape& m, int layers = 0) {
    const std::uint64_t dim = std::uint64_t(m.dim), hid = std::uint64_t(m.hidden_dim), vocab = std::uint64_t(m.vocab_size),
                        kv = std::uint64_t(m.n_kv_heads) * std::uint64_t(m.head_dim());
    std::vector<tensor_plan> p;
    p.push_back({"token_embd.weight", vocab, dim, true});
    if (m.rope_factor > 0) p.push_back({"rope_freqs.weight", 1, std::uint64_t(m.head_dim() / 2), false});
    for (int i = 0; i < (layers > 0 ? layers : m.n_layers); ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        p.push_back({b + "attn_norm.weight", 1, dim, false});
        p.push_back({b + "attn_q.weight", dim, dim, true});
        p.push_back({b + "attn_k.weight", kv, dim, true});
        p.push_back({b + "attn_v.weight", kv, dim, true});
        p.push_back({b + "attn_output.weight", dim, dim, true});
        p.push_back({b + "ffn_norm.weight", 1, dim, false});
        p.push_back({b + "ffn_gate.weight", hid, dim, true});
        p.push_back({b + "ffn_up.weight", hid, dim, true});
        p.push_back({b + "ffn_down.weight", dim, hid, true});
    }
    p.push_back({"output_norm.weight", 1, dim, false});
    if (!m.tied_embeddings) p.push_back({"output.weight", vocab, dim, true});
    return p;
}

// llama.cpp's rope_freqs for Llama 3 scaling: each frequency is divided by its factor (1 for
// short wavelengths, `factor` for long ones, a smooth blend between). llama.cpp keeps no
// metadata for this scaling; the tensor is all there is.
inline std::vector<float> rope_freq_factors(const model_shape& m) {
    const int d = m.head_dim();
    const double pi = 3.14159265358979323846;
    const double low_wavelen = m.rope_original_context / m.rope_low_freq_factor;
    const double high_wavelen = m.rope_original_context / m.rope_high_freq_factor;
    std::vector<float> f;
    for (int i = 0; i < d / 2; ++i) {
        // in float32, as torch (and io::llama3_rope_factors) computes them
        const float freq = 1.0f / float(std::pow(float(m.rope_theta), float(2 * i) / float(d)));
        const double wavelen = 2.0 * pi / freq;
        if (wavelen < high_wavelen) {
            f.push_back(1.0f);
        } else if (wavelen > low_wavelen) {
            f.push_back(float(m.rope_factor));
        } else {
            const double smooth = (m.rope_original_context / wavelen - m.rope_low_freq_factor) /
                                  (m.rope_high_freq_factor - m.rope_low_freq_factor);
            f.push_back(float(1.0 / ((1.0 - smooth) / m.rope_factor + smooth)));
        }
    }
    return f;
}

// --- random numbers ------------------------------------------------------------------------

// splitmix64 (Steele et al.): small state and good enough for weights; one per row.
class row_rng {
   public:
    explicit row_rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // An approximately standard normal value: the Irwin-Hall sum of four 16-bit uniforms (one
    // draw), centred and scaled to variance 1. Ten times cheaper than Box-Muller, and tails
    // bounded at 3.46 sigma, which random weights do not miss.
    float normal() {
        const std::uint64_t u = next();
        const std::int64_t sum = std::int64_t(u & 0xffff) + std::int64_t((u >> 16) & 0xffff) +
                                 std::int64_t((u >> 32) & 0xffff) + std::int64_t(u >> 48);
        return float(sum - 131070) * (1.7320508f / 65536.0f);
    }

   private:
    std::uint64_t s_;
};

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
    row_rng r(a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull));
    return r.next();
}

// Row r of tensor `tensor`: mean + std * N(0, 1) (approximately), n values.
inline void random_row(std::uint64_t seed, std::uint64_t tensor, std::uint64_t r, float mean, float std_dev, float* out,
                       std::size_t n) {
    row_rng g(mix(mix(seed, tensor), r));
    for (std::size_t i = 0; i < n; ++i) out[i] = mean + std_dev * g.normal();
}

// --- encodings -----------------------------------------------------------------------------

// Fills rows [r0, r1) of a matrix (row-major, `cols` floats a row) into out.
using row_source = std::function<void(std::size_t r0, std::size_t r1, float* out)>;
using sink_fn = gguf::writer::sink_fn;

// How a matrix is stored: a GGUF type, or an edgeq grouped blob named by its scheme.
struct encoder {
    std::string name;          // what the user asked for: "q4_k", "int4-g128"
    std::uint32_t type_id = 0;  // GGUF tensor type (gguf::type::edgeq_grouped for grouped)
    std::string scheme;         // grouped only: the registry name stored in edgeq.tensor.<t>.scheme
    // Stored bytes of a rows x cols matrix (grouped only; GGUF types follow from the type).
    std::function<std::uint64_t(std::uint64_t rows, std::uint64_t cols)> bytes;
    // Encodes a rows x cols matrix whose rows come from `rows_of`, giving the bytes to `sink` in
    // order and calling `done(n)` after each n rows.
    std::function<void(std::size_t rows, std::size_t cols, const row_source& rows_of, const sink_fn& sink, thread_pool& pool,
                       const std::function<void(std::size_t)>& done)>
        encode;
};

// Rows per chunk: about 8 M floats (32 MB), at least one row.
inline std::size_t chunk_rows(std::size_t cols) { return std::max<std::size_t>(1, (std::size_t(8) << 20) / std::max<std::size_t>(cols, 1)); }

namespace detail {

// A row-wise encoding: row r of the input becomes `row_bytes(cols)` bytes, rows in order.
inline encoder row_wise(const std::string& name, std::uint32_t type_id, std::size_t weights_per_block, std::size_t block_bytes,
                        std::function<void(const float*, std::uint8_t*, std::size_t)> encode_row) {
    encoder e;
    e.name = name;
    e.type_id = type_id;
    e.encode = [weights_per_block, block_bytes, encode_row](std::size_t rows, std::size_t cols, const row_source& rows_of,
                                                            const sink_fn& sink, thread_pool& pool,
                                                            const std::function<void(std::size_t)>& done) {
        const std::size_t rb = cols / weights_per_block * block_bytes, step = chunk_rows(cols);
        std::vector<float> x(std::min(rows, step) * cols);
        std::vector<std::uint8_t> y(std::min(rows, step) * rb);
        for (std::size_t r0 = 0; r0 < rows; r0 += step) {
            const std::size_t n = std::min(step, rows - r0);
            rows_of(r0, r0 + n, x.data());
            pool.parallel_for(n, 1, [&](std::size_t a, std::size_t b) {
                for (std::size_t r = a; r < b; ++r) encode_row(x.data() + r * cols, y.data() + r * rb, cols);
            });
            sink(y.data(), n * rb);
            if (done) done(n);
        }
    };
    return e;
}

template <class Block>
encoder ggml_encoder(const std::string& name) {
    return row_wise(name, std::uint32_t(Block::type_id), std::size_t(Block::weights), sizeof(Block),
                    [](const float* x, std::uint8_t* y, std::size_t n) { ggml::quantize_row<Block>(x, reinterpret_cast<Block*>(y), n); });
}

}  // namespace detail

// The GGUF encodings by name: f32, f16, bf16 and llama.cpp's block types (q4_0, q4_1, q5_0,
// q5_1, q8_0, q2_k ... q6_k, iq4_nl, iq4_xs), quantized as ggml does without an imatrix.
inline const std::vector<std::string>& gguf_type_names() {
    static const std::vector<std::string> n = {"f32",  "f16",  "bf16", "q4_0", "q4_1", "q5_0",   "q5_1",  "q8_0",
                                               "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"};
    return n;
}

// The encoder of a GGUF type name; false if `name` is not one (a registry scheme, perhaps).
inline bool find_gguf_encoder(const std::string& name, encoder& e) {
    namespace g = edgeq::ggml;
    if (name == "f32")
        e = detail::row_wise(name, gguf::type::f32, 1, 4, [](const float* x, std::uint8_t* y, std::size_t n) { std::memcpy(y, x, n * 4); });
    else if (name == "f16")
        e = detail::row_wise(name, gguf::type::f16, 1, 2, [](const float* x, std::uint8_t* y, std::size_t n) {
            for (std::size_t i = 0; i < n; ++i) {
                const std::uint16_t h = float_to_half(x[i]);
                std::memcpy(y + 2 * i, &h, 2);
            }
        });
    else if (name == "bf16")
        e = detail::row_wise(name, gguf::type::bf16, 1, 2, [](const float* x, std::uint8_t* y, std::size_t n) {
            for (std::size_t i = 0; i < n; ++i) {
                const std::uint16_t h = float_to_bf16(x[i]);
                std::memcpy(y + 2 * i, &h, 2);
            }
        });
    else if (name == "q4_0") e = detail::ggml_encoder<g::block_q4_0>(name);
    else if (name == "q4_1") e = detail::ggml_encoder<g::block_q4_1>(name);
    else if (name == "q5_0") e = detail::ggml_encoder<g::block_q5_0>(name);
    else if (name == "q5_1") e = detail::ggml_encoder<g::block_q5_1>(name);
    else if (name == "q8_0") e = detail::ggml_encoder<g::block_q8_0>(name);
    else if (name == "q2_k") e = detail::ggml_encoder<g::block_q2_K>(name);
    else if (name == "q3_k") e = detail::ggml_encoder<g::block_q3_K>(name);
    else if (name == "q4_k") e = detail::ggml_encoder<g::block_q4_K>(name);
    else if (name == "q5_k") e = detail::ggml_encoder<g::block_q5_K>(name);
    else if (name == "q6_k") e = detail::ggml_encoder<g::block_q6_K>(name);
    else if (name == "iq4_nl") e = detail::ggml_encoder<g::block_iq4_nl>(name);
    else if (name == "iq4_xs") e = detail::ggml_encoder<g::block_iq4_xs>(name);
    else return false;
    return true;
}

// An edgeq grouped scheme S stored as EDGEQ_GROUPED blobs under `scheme_name` (a registry name;
// registry::visit maps a name to S, see examples/edgeq/synth.cpp and encoder_for_scheme). The blob's sections are
// planar (codes, scales, zeros), so rows are quantized in chunks and each chunk's rows are
// copied into place; rows are independent, so the blob is the one quantize<S> gives for the
// whole matrix. Double quantization fits its second level over all scales: whole matrix.
template <class S>
encoder grouped_encoder(const std::string& scheme_name) {
    using F = format_of<S>;
    encoder e;
    e.name = scheme_name;
    e.type_id = gguf::type::edgeq_grouped;
    e.scheme = scheme_name;
    e.bytes = [](std::uint64_t rows, std::uint64_t cols) { return std::uint64_t(F::storage_bytes(std::size_t(rows), std::size_t(cols))); };
    e.encode = [](std::size_t rows, std::size_t cols, const row_source& rows_of, const sink_fn& sink, thread_pool& pool,
                  const std::function<void(std::size_t)>& done) {
        const quant_options opt = default_options<S>();
        if (F::is_double_quant) {
            std::vector<float> w(rows * cols);
            rows_of(0, rows, w.data());
            const auto q = edgeq::quantize<S>(matrix_view<const float>(w.data(), rows, cols), opt, pool);
            sink(q.blob().data(), q.storage_bytes());
            if (done) done(rows);
            return;
        }
        std::vector<std::uint8_t> blob(F::storage_bytes(rows, cols), 0);
        const std::size_t step = chunk_rows(cols), code_row = F::row_code_bytes(cols), gpr = F::groups_per_row(cols),
                          scale_row = gpr * sizeof(typename F::scale_type);
        std::vector<float> x(std::min(rows, step) * cols);
        for (std::size_t r0 = 0; r0 < rows; r0 += step) {
            const std::size_t n = std::min(step, rows - r0);
            rows_of(r0, r0 + n, x.data());
            const auto q = edgeq::quantize<S>(matrix_view<const float>(x.data(), n, cols), opt, pool);
            const std::uint8_t* b = q.blob().data();
            std::memcpy(blob.data() + r0 * code_row, b, n * code_row);
            std::memcpy(blob.data() + F::scales_offset(rows, cols) + r0 * scale_row, b + F::scales_offset(n, cols), n * scale_row);
            if (F::asymmetric)
                std::memcpy(blob.data() + F::zeros_offset(rows, cols) + r0 * gpr, b + F::zeros_offset(n, cols), n * gpr);
            if (done) done(n);
        }
        sink(blob.data(), blob.size());
    };
    return e;
}

namespace detail {
template <class S>
encoder scheme_encoder(const std::string& name, std::true_type /*llama.cpp type*/) {
    return ggml_encoder<typename format_of<S>::block_type>(name);
}
template <class S>
encoder scheme_encoder(const std::string& name, std::false_type) {
    return grouped_encoder<S>(name);
}
}  // namespace detail

// Any scheme: a llama.cpp type as its own GGUF type (readable by llama.cpp), a grouped format as
// an EDGEQ_GROUPED blob. `name` is the scheme's registry name.
template <class S>
encoder encoder_for_scheme(const std::string& name) {
    return detail::scheme_encoder<S>(name, is_ggml_format<format_of<S>>{});
}

// --- the tokenizer -------------------------------------------------------------------------

struct vocabulary {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<std::int32_t> types;  // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 6 byte
};

// A SentencePiece-style vocabulary of n pieces (n >= 259 + 95): <unk>, <s>, </s>, <0x00> ...
// <0xFF>, then "▁", the printable ASCII characters, "▁" + each, every pair, "▁" + each pair,
// every triple ..., scores falling with the id as SentencePiece's do. Any text encodes (byte
// fallback) and short words become single pieces.
inline vocabulary llama_vocabulary(std::size_t n) {
    if (n < 259 + 95) throw error("synth: a vocabulary needs at least 354 pieces, not " + std::to_string(n));
    vocabulary v;
    v.tokens.reserve(n);
    auto add = [&v, n](const std::string& s, float score, std::int32_t type) {
        if (v.tokens.size() < n) v.tokens.push_back(s), v.scores.push_back(score), v.types.push_back(type);
    };
    add("<unk>", 0, 2);
    add("<s>", 0, 3);
    add("</s>", 0, 3);
    for (int b = 0; b < 256; ++b) {
        char h[8];
        std::snprintf(h, sizeof h, "<0x%02X>", b);
        add(h, 0, 6);
    }
    const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary
    std::vector<std::string> level = {""};
    for (int len = 1; v.tokens.size() < n; ++len) {
        std::vector<std::string> next;
        for (const std::string& p : level)
            for (char c = 0x21; c <= 0x7e; ++c) next.push_back(p + c);
        if (len == 1) add(space, -float(v.tokens.size()), 1);
        for (const std::string& p : next) add(p, -float(v.tokens.size()), 1);
        for (const std::string& p : next) add(space + p, -float(v.tokens.size()), 1);
        level.swap(next);
        if (len == 3) break;  // 2 * (94 + 94^2 + 94^3) > 1.6 M pieces: more than any model needs
    }
    if (v.tokens.size() < n) throw error("synth: a vocabulary of " + std::to_string(n) + " pieces is too large");
    return v;
}

// --- the file ------------------------------------------------------------------------------

struct options {
    int layers = 0;               // 0: the model's own count (fewer: a quick test file)
    std::uint64_t seed = 1;
    float weight_std = 0.02f;     // matrices
    float norm_std = 0.02f;       // norms are 1 + N(0, norm_std)
};

struct result {
    std::uint64_t file_bytes = 0;
    std::uint64_t tensors = 0;
    std::uint64_t weights = 0;       // elements of all tensors
    std::uint64_t weight_bytes = 0;  // bytes of all tensors
};

// Stored bytes of a matrix under e.
inline std::uint64_t matrix_bytes(const encoder& e, std::uint64_t rows, std::uint64_t cols) {
    if (e.type_id == gguf::type::edgeq_grouped) return e.bytes(rows, cols);
    const gguf::type_info* t = gguf::find_type(e.type_id);
    std::uint64_t elements = 0, bytes = 0;
    std::string why;
    if (!t || !gguf::detail::tensor_bytes(*t, {cols, rows}, elements, bytes, why))
        throw error("synth: " + e.name + " cannot store a " + std::to_string(rows) + " x " + std::to_string(cols) + " matrix: " + why);
    return bytes;
}

// Writes the synthetic model to `path` (atomically: nothing is left on failure). progress gets
// weights done of all weights, with the tensor's name.
inline result write(const std::string& path, const model_shape& m, const encoder& e, const options& opt, thread_pool& pool,
                    const progress_fn& progress = progress_fn()) {
    const std::vector<tensor_plan> tensors = plan(m, opt.layers);
    const int n_layers = opt.layers > 0 ? opt.layers : m.n_layers;
    gguf::writer w;
    w.set("general.alignment", gguf::value::scalar<std::uint32_t>(gguf::default_alignment));  // as convert_hf_to_gguf.py
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", std::string("synthetic ") + m.title);
    w.set_string("general.description", std::string("random weights in the shapes of ") + m.title + ", encoding " + e.name +
                                            ", seed " + std::to_string(opt.seed) + " (edgeq synth)");
    static const struct { const char* name; std::uint32_t ftype; } ftypes[] = {
        {"f32", 0}, {"f16", 1}, {"q4_0", 2}, {"q4_1", 3}, {"q8_0", 7}, {"q5_0", 8}, {"q5_1", 9}, {"bf16", 32}};
    for (const auto& f : ftypes)  // llama.cpp's LLAMA_FTYPE_ALL_*; mixed k-quant ftypes do not apply
        if (e.name == f.name) w.set_u32("general.file_type", f.ftype);
    if (e.type_id != gguf::type::edgeq_grouped && e.type_id != gguf::type::f32 && e.type_id != gguf::type::f16 &&
        e.type_id != gguf::type::bf16)
        w.set_u32("general.quantization_version", 2);
    w.set_u32("llama.vocab_size", std::uint32_t(m.vocab_size));
    w.set_u32("llama.context_length", std::uint32_t(m.context_length));
    w.set_u32("llama.embedding_length", std::uint32_t(m.dim));
    w.set_u32("llama.block_count", std::uint32_t(n_layers));
    w.set_u32("llama.feed_forward_length", std::uint32_t(m.hidden_dim));
    w.set_u32("llama.rope.dimension_count", std::uint32_t(m.head_dim()));
    w.set_u32("llama.attention.head_count", std::uint32_t(m.n_heads));
    w.set_u32("llama.attention.head_count_kv", std::uint32_t(m.n_kv_heads));
    w.set_f32("llama.rope.freq_base", float(m.rope_theta));
    w.set_f32("llama.attention.layer_norm_rms_epsilon", m.rms_eps);
    const vocabulary v = llama_vocabulary(std::size_t(m.vocab_size));
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string("tokenizer.ggml.pre", "default");
    w.set("tokenizer.ggml.tokens", gguf::value::string_array(v.tokens));
    w.set("tokenizer.ggml.scores", gguf::value::array(v.scores));
    w.set("tokenizer.ggml.token_type", gguf::value::array(v.types));
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
    w.set_bool("tokenizer.ggml.add_space_prefix", true);

    result r;
    for (const tensor_plan& t : tensors) {
        r.tensors += 1;
        r.weights += t.rows * t.cols;
        if (!t.matrix) {
            w.declare_tensor(t.name, gguf::type::f32, {t.cols});
            r.weight_bytes += 4 * t.cols;
        } else if (e.type_id == gguf::type::edgeq_grouped) {
            const std::uint64_t b = matrix_bytes(e, t.rows, t.cols);
            w.declare_grouped(t.name, e.scheme, t.cols, t.rows, b);
            r.weight_bytes += b;
        } else {
            r.weight_bytes += matrix_bytes(e, t.rows, t.cols);  // checks the block size first
            w.declare_tensor(t.name, e.type_id, {t.cols, t.rows});
        }
    }

    std::uint64_t done = 0;
    const std::uint64_t total = r.weights;
    w.write(path, [&](std::size_t i, const std::string& name, const sink_fn& sink) {
        const tensor_plan& t = tensors[i];
        report(progress, done, total, name);
        if (!t.matrix) {
            std::vector<float> x(t.cols);
            if (name == "rope_freqs.weight") x = rope_freq_factors(m);
            else random_row(opt.seed, i, 0, 1.0f, opt.norm_std, x.data(), x.size());
            sink(x.data(), 4 * x.size());
            done += t.cols;
            return;
        }
        const std::size_t cols = std::size_t(t.cols);
        const row_source rows_of = [&](std::size_t r0, std::size_t r1, float* out) {
            pool.parallel_for(r1 - r0, 1, [&](std::size_t a, std::size_t b) {
                for (std::size_t r = a; r < b; ++r) random_row(opt.seed, i, r0 + r, 0.0f, opt.weight_std, out + r * cols, cols);
            });
        };
        e.encode(std::size_t(t.rows), cols, rows_of, sink, pool, [&](std::size_t n) {
            done += std::uint64_t(n) * t.cols;
            report(progress, done, total, name);
        });
    });
    report(progress, total, total, "done");
    struct stat st;
    r.file_bytes = ::stat(path.c_str(), &st) == 0 ? std::uint64_t(st.st_size) : 0;
    return r;
}

}  // namespace synth
}  // namespace io
}  // namespace edgeq
