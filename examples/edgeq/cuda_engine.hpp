// `--device cuda` for edgeq run and edgeq perplexity: the GPU engine (include/edgeq/engine/cuda/,
// compiled once by nvcc in cuda_engine.cu) fed from the C++ side, where the models are loaded.
//
//   gpu_session_of(model)   copies a loaded llama_model to the device (the host copy stays: two
//                           copies of the weights, one in host memory, one in device memory).
//   load_to_gpu(path)       the direct mode (--direct-load, for the Jetson, whose CPU and GPU share
//                           one DRAM): each GGUF tensor goes from the file mapping straight to
//                           device memory and its mapped pages are dropped; the host model holds
//                           only placeholders. Formats without a CUDA kernel are decoded on the
//                           host one tensor at a time. Other model files (llama2.c, Hugging Face
//                           folders) load as without it (host model, then the device copy).
//
// Without CUDA (EDGEQ_CLI_CUDA undefined), every entry point throws cuda_missing().
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <edgeq/core/error.hpp>
#include <edgeq/engine/cuda/gpu_model.hpp>
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/engine/model.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/io/gguf.hpp>

namespace cli {

namespace gpu = edgeq::engine::gpu;

inline edgeq::error cuda_missing() { return edgeq::error("this edgeq was built without CUDA (--device cuda needs a CUDA build)"); }

// --gpu-math, as edgeq run and edgeq perplexity take it.
constexpr const char* gpu_math_help =
    "  --gpu-math M           with --device cuda, how the format kernels multiply: auto (default:\n"
    "                         fp32 on tensor cores from sm_80, exact-half below), exact-half\n"
    "                         (half2 products with the activations split so that sums are exact,\n"
    "                         the Jetson Nano's default; fp32 for NF4, SpQR and Q6_K), half (half2\n"
    "                         sums: fastest, 1e-3 to 1e-2 off) or fp32 (fp32 sums: the CPU's\n"
    "                         arithmetic; below sm_80 slower)\n";
inline bool parse_gpu_math(const std::string& s, gpu::arithmetic* m) {
    if (s == "auto") *m = gpu::arithmetic::automatic;
    else if (s == "half") *m = gpu::arithmetic::half;
    else if (s == "exact-half") *m = gpu::arithmetic::exact_half;
    else if (s == "fp32") *m = gpu::arithmetic::fp32;
    else return false;
    return true;
}

// A matrix that lives only in device memory: the host model keeps its shape and name.
class device_only_linear final : public edgeq::linear {
   public:
    device_only_linear(std::size_t rows, std::size_t cols, std::string scheme) : rows_(rows), cols_(cols), scheme_(std::move(scheme)) {}
    std::size_t rows() const override { return rows_; }
    std::size_t cols() const override { return cols_; }
    std::size_t storage_bytes() const override { return 0; }
    const std::uint8_t* storage_data() const override { return nullptr; }
    double bits_per_weight() const override { return 0.0; }
    std::string scheme_name() const override { return scheme_; }
    const char* backend_name() const override { return "cuda"; }

   protected:
    void do_gemv(const float*, float*, edgeq::thread_pool&) const override { refuse(); }
    void do_gemm(edgeq::matrix_view<const float>, edgeq::matrix_view<float>, edgeq::thread_pool&) const override { refuse(); }
    void do_dequantize_row(std::size_t, float*) const override { refuse(); }

   private:
    [[noreturn]] void refuse() const { throw edgeq::error("the " + scheme_ + " matrix is in device memory only"); }
    std::size_t rows_, cols_;
    std::string scheme_;
};

inline gpu::tensor gpu_tensor_of(const edgeq::linear& l) {
    gpu::tensor t;
    t.scheme = l.scheme_name();
    t.rows = l.rows();
    t.cols = l.cols();
    t.bytes = l.storage_data();
    t.n_bytes = l.storage_bytes();
    t.dequantize_row = [&l](std::size_t r, float* out) { l.dequantize_row(r, out); };
    return t;
}

// Every vector of m (norms, biases) to the builder.
inline void give_vectors(gpu::builder& b, const edgeq::engine::llama_model& m) {
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const edgeq::engine::llama_layer& L = m.layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        b.vector(p + "attn_norm", L.attn_norm);
        b.vector(p + "ffn_norm", L.ffn_norm);
        if (m.config.qkv_bias) {
            b.vector(p + "attn_q.bias", L.bq);
            b.vector(p + "attn_k.bias", L.bk);
            b.vector(p + "attn_v.bias", L.bv);
        }
    }
    b.vector("output_norm", m.output_norm);
}

#ifdef EDGEQ_CLI_CUDA

inline std::unique_ptr<gpu::session> gpu_session_of(const edgeq::engine::llama_model& m, int n_ctx,
                                                    gpu::arithmetic math = gpu::arithmetic::automatic) {
    std::unique_ptr<gpu::builder> b = gpu::make_builder(m.config, n_ctx, math);
    b->matrix("token_embd", gpu_tensor_of(*m.token_embd));
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const edgeq::engine::llama_layer& L = m.layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        b->matrix(p + "attn_q", gpu_tensor_of(*L.wq));
        b->matrix(p + "attn_k", gpu_tensor_of(*L.wk));
        b->matrix(p + "attn_v", gpu_tensor_of(*L.wv));
        b->matrix(p + "attn_output", gpu_tensor_of(*L.wo));
        b->matrix(p + "ffn_gate", gpu_tensor_of(*L.w1));
        b->matrix(p + "ffn_down", gpu_tensor_of(*L.w2));
        b->matrix(p + "ffn_up", gpu_tensor_of(*L.w3));
    }
    if (m.output) b->matrix("output", gpu_tensor_of(*m.output));
    give_vectors(*b, m);
    return b->finish();
}

// The direct mode. Returns the session; *config gets the model's config (the host model, all
// placeholders, is dropped here).
inline std::unique_ptr<gpu::session> load_to_gpu(const std::string& path, int n_ctx, edgeq::engine::llama_config* config,
                                                 gpu::arithmetic math = gpu::arithmetic::automatic) {
    namespace en = edgeq::engine;
    namespace gg = edgeq::io::gguf;
    std::unique_ptr<gpu::builder> b;
    en::llama_model m;
    auto placeholder = [](std::size_t rows, std::size_t cols, const std::string& scheme) {
        return std::unique_ptr<edgeq::linear>(new device_only_linear(rows, cols, scheme));
    };
    if (en::is_gguf_file(path)) {
        const gg::file f(path);
        const en::llama_config c = en::config_from_gguf(f);
        const int ctx = n_ctx > 0 ? n_ctx : std::min(c.seq_len, 4096);
        b = gpu::make_builder(c, ctx, math);
        const en::tensor_source host = en::gguf_tensors(f);  // for formats the GPU decodes from a host linear
        en::tensor_source src = host;
        src.matrix = [&](const std::string& name, std::size_t rows, std::size_t cols) {
            const gg::tensor_info& t = f.tensor(name + ".weight");
            if (t.shape.size() != 2 || t.shape[0] != cols || t.shape[1] != rows)
                return host.matrix(name, rows, cols);  // throws the loader's own message
            gpu::tensor g;
            if (t.type == gg::type::edgeq_grouped) {
                g.scheme = t.scheme;
            } else {
                g.scheme = gg::type_name(t.type);
                for (char& ch : g.scheme) ch = char(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
            }
            g.rows = rows, g.cols = cols, g.bytes = t.data, g.n_bytes = std::size_t(t.bytes);
            // Built only when the GPU has no kernel for the format (then it is decoded row by row).
            std::shared_ptr<std::unique_ptr<edgeq::linear>> decoded = std::make_shared<std::unique_ptr<edgeq::linear>>();
            g.dequantize_row = [&host, decoded, name, rows, cols](std::size_t r, float* out) {
                if (!*decoded) *decoded = host.matrix(name, rows, cols);
                (*decoded)->dequantize_row(r, out);
            };
            b->matrix(name, g);
            f.release(t);
            return placeholder(rows, cols, g.scheme);
        };
        m = en::model_from_tensors(c, src);
    } else {
        // llama2.c and Hugging Face files: their readers give no config before the tensors, so
        // they load as usual (host model, then the copy); the direct mode is GGUF's.
        m = en::load_model(path);
        if (config) *config = m.config;
        return gpu_session_of(m, n_ctx > 0 ? n_ctx : std::min(m.config.seq_len, 4096), math);
    }
    give_vectors(*b, m);
    if (config) *config = m.config;
    return b->finish();
}

#else

inline std::unique_ptr<gpu::session> gpu_session_of(const edgeq::engine::llama_model&, int, gpu::arithmetic = gpu::arithmetic::automatic) {
    throw cuda_missing();
}
inline std::unique_ptr<gpu::session> load_to_gpu(const std::string&, int, edgeq::engine::llama_config*,
                                                 gpu::arithmetic = gpu::arithmetic::automatic) {
    throw cuda_missing();
}

#endif

// engine::perplexity on a GPU session (the same windows, the same scoring).
inline edgeq::engine::perplexity_result gpu_perplexity(gpu::session& s, const edgeq::engine::llama_config& c,
                                                        const std::vector<int>& tokens, const edgeq::engine::perplexity_options& o) {
    namespace en = edgeq::engine;
    const en::detail::windows check(o, tokens.size());  // the text first, as on the CPU
    (void)check;
    if (s.n_ctx() < o.n_ctx) throw edgeq::error("gpu perplexity: the session holds " + std::to_string(s.n_ctx()) + " positions");
    return en::perplexity_of_session(s, c, tokens, o);
}

}  // namespace cli
