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

// How the matrices on a format kernel multiply at batch 1 (docs/cuda.md).
// - half: activations rounded to half, runs of half2 products summed in half (the fastest path
//   on a Jetson Nano; logits about 1e-3 of the CPU engine's on small models, 5e-3 to 8e-3 on
//   SmolLM2-135M); prompts of up to 16 tokens too.
// - exact_half: half2 FMAs on activations split into integer parts and remainders, so that the
//   products and sums of the integer parts are exact (kernel/cuda/gemv_exact.cuh): one more
//   half2 FMA per two weights than half. Formats whose values are not integers (NF4, SpQR),
//   Q6_K and rows too long to stage take fp32 sums.
// - fp32: fp32 sums of exact products: on sm_80 and newer on tensor cores (gemv_mma.cuh), below
//   in fp32 FMAs (gemv_fp32_kernel).
// - automatic (the default): fp32 on tensor cores (an H100), exact_half without (a Jetson Nano).
// Prompts go through the GEMM in fp32 sums except with half (the batched half2 GEMV).
enum class arithmetic { automatic, half, exact_half, fp32 };
enum class sums { half, exact_half, fp32 };
inline sums sums_for(arithmetic m, bool tensor_cores) {
    switch (m) {
        case arithmetic::half: return sums::half;
        case arithmetic::exact_half: return sums::exact_half;
        case arithmetic::fp32: return sums::fp32;
        default: return tensor_cores ? sums::fp32 : sums::exact_half;
    }
}

// Whether a CUDA device can be used; why not in *why.
bool available(std::string* why);
// n_ctx: the longest sequence (0: the config's seq_len). Throws edgeq::error without a device.
std::unique_ptr<builder> make_builder(const llama_config& c, int n_ctx, arithmetic math = arithmetic::automatic);

}  // namespace gpu
}  // namespace engine
}  // namespace edgeq
