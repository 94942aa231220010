// The GPU engine's interface for code compiled by the C++ compiler: plain C++ (no CUDA header, no
// xsimd, no Hana), so that a g++ program calls an engine that nvcc compiled once (llama_gpu.cuh,
// instantiated by one .cu file that defines the factory functions below).
//
//   builder: receives the model one tensor at a time, each matrix as its stored bytes (copied to
//            device memory at once; the host bytes may be freed right after the call), then
//            finish() gives a session. A loader can therefore free each host tensor before the
//            next one is read (the Jetson mode: no second copy of the weights in host memory).
//   session: llama_session's eval() on the GPU; the logits are the only thing copied back.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../config.hpp"

namespace edgeq {
namespace engine {
namespace gpu {

// One weight matrix as stored (linear::scheme_name() and linear::storage_data()).
struct tensor {
    std::string scheme;  // "q4_k", "int4-g128", "f16", "f32", ...
    std::size_t rows = 0, cols = 0;
    const std::uint8_t* bytes = nullptr;  // host memory, n_bytes of them
    std::size_t n_bytes = 0;
    // Decodes row r (cols floats): used for formats without a CUDA kernel, which are uploaded
    // as fp16 (f32 models: fp32) rows.
    std::function<void(std::size_t r, float* out)> dequantize_row;
};

class session {
   public:
    virtual ~session() = default;
    // As llama_session::eval: n tokens at positions n_past() .. n_past() + n - 1; the logits of
    // every token ([n, vocab]) when all_logits, else of the last one. The tokens go through the
    // layers one at a time (no batched prompt yet); one host synchronisation per token.
    virtual void eval(const int* tokens, std::size_t n, float* logits, bool all_logits = false) = 0;
    virtual int n_past() const = 0;
    virtual int n_ctx() const = 0;
    virtual void reset() = 0;
    // Device memory the engine allocated: weights, embedding table, KV cache, scratch. All of it
    // is allocated when the model is loaded, none while decoding: this is also its peak.
    virtual std::size_t device_bytes() const = 0;
    // The device's memory in use now (cudaMemGetInfo: total - free), the CUDA context and other
    // processes included.
    virtual std::size_t device_in_use() const = 0;
    // Bytes of weights streamed per decoded token (every matrix once, one embedding row).
    virtual std::size_t bytes_per_token() const = 0;
    // One line: the device and how many matrices run natively / through the fp16 fallback.
    virtual std::string describe() const = 0;
};

class builder {
   public:
    virtual ~builder() = default;
    // Names as model.hpp lists them: "token_embd", "blk.3.attn_q", "output", ...
    virtual void matrix(const std::string& name, const tensor& t) = 0;
    // Norms and biases: "blk.3.attn_norm", "blk.3.attn_q.bias", "output_norm", ...
    virtual void vector(const std::string& name, const std::vector<float>& v) = 0;
    // Throws edgeq::error naming the first tensor that was not given.
    virtual std::unique_ptr<session> finish() = 0;
};

// How the matrices on a format kernel multiply (docs/cuda.md). half: activations rounded to
// half, runs of half2 products (the Jetson Nano's fast path; logits within about 1e-3 of the
// CPU engine's on rows of 512 and more, up to 1.6e-3 on rows of 128), prompts of up to 16
// tokens too. fp32: fp32 sums of exact products (within about 1e-6 for integer codes): on sm_80
// and newer on tensor cores (gemv_mma.cuh), below in fp32 FMAs (gemv_fp32_kernel, slower than
// half). automatic (the default): fp32 wherever tensor cores make it cheap (an H100: 6-9% fewer
// tokens/s than half for 3- to 6-bit formats, none for 8-bit); below sm_80
// generated tokens in half on rows of at least half_min_cols weights, fp32 on shorter rows,
// whose few products do not average the half roundings out and whose matrices are too small
// for the speed to matter. Prompts go through the GEMM in fp32 sums in automatic and fp32 (the
// tiled kernel).
enum class arithmetic { automatic, half, fp32 };
constexpr std::size_t half_min_cols = 512;
inline bool fp32_sums_for(arithmetic m, std::size_t cols, bool tensor_cores) {
    return m == arithmetic::fp32 || (m == arithmetic::automatic && (tensor_cores || cols < half_min_cols));
}

// Whether a CUDA device can be used; why not in *why.
bool available(std::string* why);
// n_ctx: the longest sequence (0: the config's seq_len). Throws edgeq::error without a device.
std::unique_ptr<builder> make_builder(const llama_config& c, int n_ctx, arithmetic math = arithmetic::automatic);

}  // namespace gpu
}  // namespace engine
}  // namespace edgeq
