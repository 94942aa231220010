// The forward pass of llama.hpp on a CUDA device: every weight and the KV cache in device memory,
// one token at a time, the logits the only thing copied back (one host synchronisation per token).
//
//   weights   each matrix as stored when a kernel of include/edgeq/kernel/cuda/ reads its format
//             (the grouped formats listed in upload_native below, llama.cpp's Q6_K, SpQR's
//             spqr-{2,3,4}bit-g16); Q4_0 and Q8_0 repacked into the same values as int4-g32 /
//             int8-g32 (twin_matrix), Q4_K into Q4_K paired (q4_K_paired_matrix), int3's codes
//             into half mantissas (mantissa3_matrix); any other format is decoded once
//             (llama.cpp's block types on the device, edgeq's on the host) into fp16 rows (f32
//             matrices stay fp32 rows) for dense_gemv: the fallback.
//   embedding each token's row decoded in fp32 from the matrix as stored when its format has a
//             kernel (decode_rows; a tied classifier is that same matrix), else a dense device
//             table (fp16; fp32 for an f32 model) read one row per token.
//   cache     fp32 [layer, position, kv_dim], as on the CPU.
//   prompt    in chunks of 256 tokens (prefill): each matrix once per chunk through its format's
//             GEMM (kernel/cuda/gemm.cuh; fp32 sums unless --gpu-math half), the chunk's k and
//             v into the cache, then its attention in one launch; generated tokens one at a
//             time (step).
//   launches  the layers of a token are one CUDA graph, replayed for every token (they read the
//             token id and position from device memory); 11 kernels per layer, q | k | v and
//             gate | up as parallel branches (layers()).
//
// gpu_model.hpp's available() and make_builder() are device_available() and new_builder() here,
// defined by the one .cu file that includes this header (examples/edgeq/cuda_engine.cu).
// C++14 for nvcc >= 10.2; no Hana, no xsimd (nothing from linear.hpp or model.hpp).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../format/ggml/grouped_twin.hpp"
#include "../../format/ggml/q4_K_paired.hpp"
#include "../../format/mantissa3.hpp"
#include "../../kernel/cuda/dequantize.cuh"
#include "../../kernel/cuda/ggml.cuh"
#include "../../kernel/cuda/grouped.cuh"
#include "../../kernel/cuda/spqr.cuh"
#include "../../scheme.hpp"
#include "../../scheme_name.hpp"
#include "../config.hpp"
#include "gpu_model.hpp"
#include "kernels.cuh"

namespace edgeq {
namespace engine {
namespace gpu {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}

// Device memory (RAII).
class device_buffer {
   public:
    device_buffer() = default;
    explicit device_buffer(std::size_t bytes) : bytes_(bytes) {
        if (bytes) check(cudaMalloc(&p_, bytes), ("allocating " + std::to_string(bytes) + " bytes").c_str());
    }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
    device_buffer& operator=(device_buffer&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(bytes_, o.bytes_);
        return *this;
    }
    ~device_buffer() {
        if (p_) cudaFree(p_);
    }
    template <class T>
    T* as() const {
        return static_cast<T*>(p_);
    }
    std::size_t size() const { return bytes_; }
    void upload(const void* host, std::size_t n, std::size_t offset = 0) {
        check(cudaMemcpy(static_cast<std::uint8_t*>(p_) + offset, host, n, cudaMemcpyHostToDevice), "copying to the device");
    }

   private:
    void* p_ = nullptr;
    std::size_t bytes_ = 0;
};

// A weight matrix in device memory: y = W x with x, y fp32 device vectors.
class matrix {
   public:
    virtual ~matrix() = default;
    virtual void gemv(const float* x, float* y, cudaStream_t s) const = 0;
    // Y = X W^T for n tokens (x: n rows of cols, y: n rows of rows); a GEMV per token unless the
    // format has a GEMM.
    virtual void gemm(const float* x, float* y, std::size_t n, cudaStream_t s) const {
        for (std::size_t t = 0; t < n; ++t) gemv(x + t * cols, y + t * rows, s);
    }
    virtual bool native() const = 0;
    // x + t * cols = row tok[t] in fp32 for t < n (device memory): the embedding read from the
    // matrix as stored, where its format's decoder gives every weight (not SpQR's outliers).
    virtual bool can_embed() const { return false; }
    virtual void embed(const int*, std::size_t, float*, cudaStream_t) const { throw error("gpu: this matrix cannot give embedding rows"); }
    std::size_t rows = 0, cols = 0, bytes = 0;
    sums arith = sums::half;  // a format kernel's arithmetic (sums_for)
};

// y = W x on a format kernel in the given arithmetic (gpu_model.hpp).
template <class View>
void format_gemv(sums arith, const View& w, const float* x, float* y, cudaStream_t s) {
    if (arith == sums::fp32)
        edgeq::cuda::gemv(edgeq::cuda::fp32_sums, w, x, y, s);
    else if (arith == sums::exact_half)
        edgeq::cuda::gemv(edgeq::cuda::exact_half_sums, w, x, y, s);
    else
        edgeq::cuda::gemv(w, x, y, s);
}

// A stored matrix whose byte count does not match its shape (a damaged or mislabelled tensor).
inline error size_mismatch(const tensor& t, std::size_t expected) {
    return error("gpu: " + t.scheme + " matrix of " + std::to_string(t.rows) + " x " + std::to_string(t.cols) + " has " +
                 std::to_string(t.n_bytes) + " bytes, not " + std::to_string(expected));
}

// A matrix on its format's kernel: the device blob and the view of it that the kernel reads.
template <class View>
class format_matrix : public matrix {
   public:
    void gemv(const float* x, float* y, cudaStream_t s) const override { format_gemv(arith, view_, x, y, s); }
    // The format's GEMM (kernel/cuda/gemm.cuh) in fp32 sums: the tiled kernel for any number of
    // tokens (a fp32 GEMV per token on rows that are not a multiple of 64). With every matrix in
    // half arithmetic (--gpu-math half) the batched half2 GEMV up to 16 tokens, as a step runs.
    // On tensor cores, prompts of up to short_prompt tokens take a step's GEMV per token: the
    // tiled kernel's blocks of 64 rows leave most of an H100's SMs idle on short prompts (a
    // TinyLlama-1.1B prompt of 2 to 16 tokens: 9.8 ms, against 0.9 ms for one step).
    static constexpr std::size_t short_prompt = 8;
    void gemm(const float* x, float* y, std::size_t n, cudaStream_t s) const override {
        if (!half_prompt && arith == sums::fp32 && n <= short_prompt && on_tensor_cores())
            matrix::gemm(x, y, n, s);
        else if (!half_prompt)
            edgeq::cuda::gemm(edgeq::cuda::fp32_sums, view_, x, y, n, s);
        else if (n > 16 && cols % kernel::cuda::gemm_tile)
            matrix::gemm(x, y, n, s);
        else
            edgeq::cuda::gemm(view_, x, y, n, s);
    }
    bool native() const override { return true; }
    bool can_embed() const override { return !adaptor::row_extra; }
    void embed(const int* tok, std::size_t n, float* x, cudaStream_t s) const override {
        embed_rows(tok, n, x, s, std::integral_constant<bool, !adaptor::row_extra>{});
    }

   protected:
    using adaptor = decltype(kernel::cuda::make_adaptor(std::declval<View>()));
    void embed_rows(const int* tok, std::size_t n, float* x, cudaStream_t s, std::true_type) const {
        kernel::cuda::launch_decode_rows(kernel::cuda::make_adaptor(view_), tok, n, x, s);
    }
    void embed_rows(const int*, std::size_t, float*, cudaStream_t, std::false_type) const { matrix::embed(nullptr, 0, nullptr, 0); }
    format_matrix(const tensor& t, arithmetic math, std::size_t device_bytes) : blob_(device_bytes) {
        rows = t.rows, cols = t.cols, bytes = t.n_bytes, arith = sums_for(math, on_tensor_cores());
        half_prompt = math == arithmetic::half;
    }
    device_buffer blob_;
    View view_;
    bool half_prompt = false;
    // fp32 sums at close to the half2 speed: tensor cores, and no per-row term (SpQR's outliers).
    static bool on_tensor_cores() {
        return kernel::cuda::mma_enabled() && !adaptor::row_extra;
    }
};

template <class F>
class native_matrix final : public format_matrix<qview<F>> {
   public:
    native_matrix(const tensor& t, arithmetic math) : format_matrix<qview<F>>(t, math, t.n_bytes) {
        if (t.n_bytes != F::storage_bytes(t.rows, t.cols)) throw size_mismatch(t, F::storage_bytes(t.rows, t.cols));
        this->blob_.upload(t.bytes, t.n_bytes);
        this->view_ = edgeq::cuda::rebase(qview<F>::from_blob(t.bytes, t.rows, t.cols), t.bytes, this->blob_.template as<void>());
        kernel::cuda::make_adaptor(this->view_);  // refuses what the kernels cannot read (alignment)
    }
};

// The schemes a CUDA kernel reads as stored; a scheme name may carry an algorithm prefix
// ("gptq-int4-g128" stores what "int4-g128" does).
template <class S>
bool stores_scheme(const tensor& t) {
    const std::string n = name_of<S>();
    return t.scheme == n || (t.scheme.size() > n.size() && t.scheme.compare(t.scheme.size() - n.size(), n.size(), n) == 0 &&
                             t.scheme[t.scheme.size() - n.size() - 1] == '-');
}

// A matrix of llama.cpp blocks decoded on the device into fp16 rows at `out`
// (kernel/cuda/dequantize.cuh): the blocks go up a few MB at a time through one staging buffer,
// so the host decodes nothing and holds no decoded copy. False when t is not stored as Block.
template <class Block>
bool decode_blocks_on_device(const tensor& t, __half* out) {
    if (!stores_scheme<scheme<ggml_type<Block>>>(t) || t.cols % Block::weights) return false;
    const std::size_t row_bytes = t.cols / Block::weights * sizeof(Block);
    if (t.n_bytes != t.rows * row_bytes) throw size_mismatch(t, t.rows * row_bytes);
    const std::size_t chunk = std::max<std::size_t>(1, (std::size_t(4) << 20) / row_bytes);
    device_buffer staging(std::min(chunk, t.rows) * row_bytes);
    for (std::size_t r0 = 0; r0 < t.rows; r0 += chunk) {
        qview<ggml_format<Block>> v;
        v.rows = std::min(chunk, t.rows - r0), v.cols = t.cols, v.blocks = staging.as<const Block>();
        // cudaMemcpy waits for the previous chunk's kernel (legacy default stream) before it
        // overwrites the staging buffer.
        staging.upload(t.bytes + r0 * row_bytes, v.rows * row_bytes);
        edgeq::cuda::dequantize(v, out + r0 * t.cols);
    }
    check(cudaDeviceSynchronize(), ("decoding the " + t.scheme + " matrix").c_str());
    return true;
}
// The block types without a GEMV kernel here (Q4_0, Q8_0, Q4_K, Q6_K have theirs).
inline bool decode_on_device(const tensor& t, __half* out) {
    return decode_blocks_on_device<ggml::block_q4_1>(t, out) || decode_blocks_on_device<ggml::block_q5_0>(t, out) ||
           decode_blocks_on_device<ggml::block_q5_1>(t, out) || decode_blocks_on_device<ggml::block_iq4_nl>(t, out) ||
           decode_blocks_on_device<ggml::block_q2_K>(t, out) || decode_blocks_on_device<ggml::block_q3_K>(t, out) ||
           decode_blocks_on_device<ggml::block_q5_K>(t, out) || decode_blocks_on_device<ggml::block_iq4_xs>(t, out);
}
inline bool decode_on_device(const tensor&, float*) { return false; }  // fp32 rows: f32 matrices, as stored

// Dense rows (half or float): the fallback, and the embedding table.
template <class T>
class dense_matrix final : public matrix {
   public:
    explicit dense_matrix(const tensor& t) : w_(t.rows * t.cols * sizeof(T)) {
        rows = t.rows, cols = t.cols, bytes = w_.size();
        const bool as_stored = t.scheme == (sizeof(T) == 2 ? "f16" : "f32") && t.n_bytes == w_.size();
        if (as_stored) {
            w_.upload(t.bytes, t.n_bytes);
        } else if (!decode_on_device(t, w_.as<T>())) {
            if (!t.dequantize_row) throw error("gpu: no decoder for the " + t.scheme + " matrix");
            // Decoded on the host (edgeq's own formats), a few MB at a time, so the host holds
            // no full decoded copy.
            const std::size_t chunk = std::max<std::size_t>(1, (std::size_t(4) << 20) / (t.cols * sizeof(T)));
            std::vector<float> f(chunk * t.cols);
            std::vector<T> h(chunk * t.cols);
            for (std::size_t r0 = 0; r0 < t.rows; r0 += chunk) {
                const std::size_t n = std::min(chunk, t.rows - r0);
                for (std::size_t r = 0; r < n; ++r) t.dequantize_row(r0 + r, &f[r * t.cols]);
                for (std::size_t i = 0; i < n * t.cols; ++i) h[i] = T(f[i]);
                w_.upload(h.data(), n * t.cols * sizeof(T), r0 * t.cols * sizeof(T));
            }
        }
    }
    void gemv(const float* x, float* y, cudaStream_t s) const override {
        const bool vec = cols % 8 == 0;  // rows then start 16-byte aligned
        const int blocks = int(std::min<std::size_t>((rows + 7) / 8, 4096));
        kernels::dense_gemv<T><<<blocks, 256, 0, s>>>(w_.as<const T>(), x, y, int(rows), int(cols), vec);
    }
    bool native() const override { return false; }
    const T* data() const { return w_.as<const T>(); }

   private:
    device_buffer w_;
};

template <class S>
std::unique_ptr<matrix> try_native(const tensor& t, arithmetic math) {
    using F = format_of<S>;
    if (!stores_scheme<S>(t) || F::shape_problem(t.cols)) return nullptr;
    return std::unique_ptr<matrix>(new native_matrix<F>(t, math));
}

// Q4_0 and Q8_0 go to the device as their grouped twins int4-g32 / int8-g32
// (format/ggml/grouped_twin.hpp): the same values and size, but 16-byte aligned codes, which
// the grouped kernels stream faster than the 2-byte aligned blocks (docs/cuda.md). Repacked a
// few MB at a time on the host, so no second full copy is held.
template <class Block>
class twin_matrix final : public format_matrix<qview<typename ggml::grouped_twin<Block>::format>> {
    using F = typename ggml::grouped_twin<Block>::format;

   public:
    twin_matrix(const tensor& t, arithmetic math) : format_matrix<qview<F>>(t, math, F::storage_bytes(t.rows, t.cols)) {
        const std::size_t per_row = t.cols / Block::weights;
        if (t.cols % Block::weights || t.n_bytes != t.rows * per_row * sizeof(Block)) throw size_mismatch(t, t.rows * per_row * sizeof(Block));
        const std::size_t code_bytes = F::row_code_bytes(t.cols);
        const std::size_t chunk = std::max<std::size_t>(1, (std::size_t(4) << 20) / (per_row * sizeof(Block)));
        std::vector<std::uint8_t> codes(std::min(chunk, t.rows) * code_bytes);
        std::vector<fp16_t> scales(std::min(chunk, t.rows) * per_row);
        const Block* blocks = reinterpret_cast<const Block*>(t.bytes);
        for (std::size_t r0 = 0; r0 < t.rows; r0 += chunk) {
            const std::size_t n = std::min(chunk, t.rows - r0);
            ggml::to_grouped_twin(blocks + r0 * per_row, n, t.cols, codes.data(), scales.data());
            this->blob_.upload(codes.data(), n * code_bytes, r0 * code_bytes);
            this->blob_.upload(scales.data(), n * per_row * sizeof(fp16_t), F::scales_offset(t.rows, t.cols) + r0 * per_row * sizeof(fp16_t));
        }
        this->view_ = qview<F>::from_blob(this->blob_.template as<const std::uint8_t>(), t.rows, t.cols);  // section pointers only
        kernel::cuda::make_adaptor(this->view_);
    }
};

template <class Block>
std::unique_ptr<matrix> try_twin(const tensor& t, arithmetic math) {
    if (!stores_scheme<scheme<ggml_type<Block>>>(t) || t.cols % Block::weights) return nullptr;
    return std::unique_ptr<matrix>(new twin_matrix<Block>(t, math));
}

// Q4_K goes to the device paired (format/ggml/q4_K_paired.hpp): the same 144-byte blocks with each
// sub-block's codes contiguous, which the kernel loads with one 16-byte load and decodes as Q4_0,
// and each sub-block's scale in a byte of its own (docs/cuda.md). Repacked a few MB at a time,
// as twin_matrix does.
class q4_K_paired_matrix final : public format_matrix<qview<ggml_format<ggml::block_q4_K_paired>>> {
    using F = ggml_format<ggml::block_q4_K_paired>;

   public:
    q4_K_paired_matrix(const tensor& t, arithmetic math) : format_matrix<qview<F>>(t, math, t.n_bytes) {
        if (t.n_bytes != F::storage_bytes(t.rows, t.cols)) throw size_mismatch(t, F::storage_bytes(t.rows, t.cols));
        const std::size_t n = t.n_bytes / sizeof(ggml::block_q4_K), chunk = (std::size_t(4) << 20) / sizeof(ggml::block_q4_K);
        std::vector<ggml::block_q4_K_paired> paired(std::min(chunk, n));
        const ggml::block_q4_K* blocks = reinterpret_cast<const ggml::block_q4_K*>(t.bytes);
        for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
            const std::size_t k = std::min(chunk, n - i0);
            ggml::pair_codes(blocks + i0, k, paired.data());
            blob_.upload(paired.data(), k * sizeof(ggml::block_q4_K_paired), i0 * sizeof(ggml::block_q4_K_paired));
        }
        view_ = qview<F>::from_blob(blob_.as<const std::uint8_t>(), t.rows, t.cols);
        kernel::cuda::make_adaptor(view_);
    }
};

inline std::unique_ptr<matrix> try_q4_K_paired(const tensor& t, arithmetic math) {
    using S = scheme<ggml_type<ggml::block_q4_K>>;
    if (!stores_scheme<S>(t) || format_of<S>::shape_problem(t.cols)) return nullptr;
    return std::unique_ptr<matrix>(new q4_K_paired_matrix(t, math));
}

// int3 goes to the device with its codes in half mantissas (format/mantissa3.hpp): the same blob
// with each chunk's bits rearranged so the kernel decodes them with masks (docs/cuda.md).
// Repacked a few MB at a time, as twin_matrix does.
template <class S>
class mantissa3_matrix final : public format_matrix<qview<mantissa3<format_of<S>>>> {
    using F = format_of<S>;

   public:
    mantissa3_matrix(const tensor& t, arithmetic math) : format_matrix<qview<mantissa3<F>>>(t, math, t.n_bytes) {
        if (t.n_bytes != F::storage_bytes(t.rows, t.cols)) throw size_mismatch(t, F::storage_bytes(t.rows, t.cols));
        const std::size_t code_bytes = t.rows * F::row_code_bytes(t.cols), chunk = std::size_t(12) << 18;  // 3 MB
        std::vector<std::uint8_t> codes(std::min(chunk, code_bytes));
        for (std::size_t b0 = 0; b0 < code_bytes; b0 += chunk) {
            const std::size_t n = std::min(chunk, code_bytes - b0);
            planes_to_mantissa3(t.bytes + b0, n / 12, codes.data());
            this->blob_.upload(codes.data(), n, b0);
        }
        this->blob_.upload(t.bytes + code_bytes, t.n_bytes - code_bytes, code_bytes);  // scales, zeros: as stored
        this->view_ = edgeq::cuda::rebase(qview<mantissa3<F>>::from_blob(t.bytes, t.rows, t.cols), t.bytes, this->blob_.template as<void>());
        kernel::cuda::make_adaptor(this->view_);
    }
};

template <class S>
std::unique_ptr<matrix> try_mantissa3(const tensor& t, arithmetic math) {
    if (!stores_scheme<S>(t) || format_of<S>::shape_problem(t.cols)) return nullptr;
    return std::unique_ptr<matrix>(new mantissa3_matrix<S>(t, math));
}

// SpQR (spqr-{2,3,4}bit-g16): the dense codes and the CSR outliers in one kernel (spqr.cuh). The
// blob is checked on the host first (sizes, CSR structure, finite values), as the CPU loader does.
template <int B>
class spqr_native final : public format_matrix<spqr_view<spqr_format<B>>> {
    using F = spqr_format<B>;

   public:
    spqr_native(const tensor& t, arithmetic math) : format_matrix<spqr_view<F>>(t, math, t.n_bytes) {
        spqr_matrix<F>::from_blob(t.bytes, t.n_bytes, t.rows, t.cols);  // throws on a damaged blob
        this->blob_.upload(t.bytes, t.n_bytes);
        this->view_ = edgeq::cuda::rebase(spqr_view<F>::from_blob(t.bytes, t.rows, t.cols), t.bytes, this->blob_.template as<void>());
    }
};

template <int B>
std::unique_ptr<matrix> try_spqr(const tensor& t, arithmetic math) {
    if (t.scheme != "spqr-" + std::to_string(B) + "bit-g16" || spqr_format<B>::shape_problem(t.rows, t.cols)) return nullptr;
    return std::unique_ptr<matrix>(new spqr_native<B>(t, math));
}

inline std::unique_ptr<matrix> upload_native(const tensor& t, arithmetic math) {
    std::unique_ptr<matrix> m;
    if ((m = try_spqr<2>(t, math)) || (m = try_spqr<3>(t, math)) || (m = try_spqr<4>(t, math))) return m;
    if ((m = try_twin<ggml::block_q4_0>(t, math)) || (m = try_twin<ggml::block_q8_0>(t, math))) return m;
    if ((m = try_q4_K_paired(t, math))) return m;
    if ((m = try_native<scheme<ggml_type<ggml::block_q6_K>>>(t, math))) return m;
    if ((m = try_native<scheme<bits<4>, group<128>>>(t, math))) return m;
    if ((m = try_native<scheme<bits<4>, group<128>, asymmetric>>(t, math))) return m;
    if ((m = try_native<scheme<bits<4>, group<64>>>(t, math))) return m;
    if ((m = try_native<scheme<bits<2>, group<128>>>(t, math))) return m;
    if ((m = try_mantissa3<scheme<bits<3>, group<128>>>(t, math))) return m;
    if ((m = try_native<scheme<bits<8>, group<128>>>(t, math))) return m;
    if ((m = try_native<scheme<nf4, double_quant>>(t, math))) return m;
    return nullptr;
}

// f32 matrices stay fp32 (an f32 model then matches the CPU to fp32 rounding); the rest fp16.
inline std::unique_ptr<matrix> upload_matrix(const tensor& t, arithmetic math) {
    if (std::unique_ptr<matrix> m = upload_native(t, math)) return m;
    if (t.scheme == "f32") return std::unique_ptr<matrix>(new dense_matrix<float>(t));
    return std::unique_ptr<matrix>(new dense_matrix<__half>(t));
}

struct layer {
    std::unique_ptr<matrix> wq, wk, wv, wo, w1, w2, w3;
    device_buffer attn_norm, ffn_norm, bq, bk, bv;
};

class llama_gpu final : public session {
   public:
    llama_gpu(const llama_config& c, int n_ctx, arithmetic math) : c_(c), n_ctx_(n_ctx > 0 ? n_ctx : c.seq_len), math_(math) {
        c.validate();
        if (c.o_bias || c.mlp_bias) throw error("gpu: biases on the attention output or the MLP are not supported");
        const int hd = c.head_size();
        if (hd > 256) throw error("gpu: head size " + std::to_string(hd) + " is above the attention kernel's 256");
        check(cudaStreamCreate(&stream_), "creating a stream");
        for (cudaStream_t& side : side_) check(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), "creating a stream");
        check(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming), "creating an event");
        for (cudaEvent_t& e : join_) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
        layers_.resize(std::size_t(c.n_layers));
        const std::size_t cache = std::size_t(c.n_layers) * std::size_t(n_ctx_) * std::size_t(c.kv_dim()) * 4;
        k_cache_ = device_buffer(cache);
        v_cache_ = device_buffer(cache);
        const std::vector<float> f = rope_inv_freq(c);
        inv_freq_ = device_buffer(f.size() * 4);
        inv_freq_.upload(f.data(), f.size() * 4);
        const std::size_t dim = std::size_t(c.dim), hid = std::size_t(c.hidden_dim);
        x_ = device_buffer(dim * 4), xb_ = device_buffer(dim * 4), xb2_ = device_buffer(dim * 4);
        q_ = device_buffer(std::size_t(c.q_dim()) * 4), k_ = device_buffer(std::size_t(c.kv_dim()) * 4);
        v_ = device_buffer(std::size_t(c.kv_dim()) * 4), att_ = device_buffer(std::size_t(c.q_dim()) * 4);
        h1_ = device_buffer(hid * 4), h3_ = device_buffer(hid * 4);
        scores_ = device_buffer(std::size_t(c.n_heads) * std::size_t(n_ctx_) * 4);
        logits_ = device_buffer(std::size_t(c.vocab_size) * 4);
        // A prompt goes through in chunks of up to `chunk` tokens (prefill), with buffers of its own
        // (no more rows than the context holds).
        chunk_ = n_ctx_ < chunk ? n_ctx_ : chunk;
        const std::size_t C = std::size_t(chunk_);
        px_ = device_buffer(C * dim * 4), pxb_ = device_buffer(C * dim * 4), pxb2_ = device_buffer(C * dim * 4);
        pq_ = device_buffer(C * std::size_t(c.q_dim()) * 4), patt_ = device_buffer(C * std::size_t(c.q_dim()) * 4);
        pk_ = device_buffer(C * std::size_t(c.kv_dim()) * 4), pv_ = device_buffer(C * std::size_t(c.kv_dim()) * 4);
        ph1_ = device_buffer(C * hid * 4), ph3_ = device_buffer(C * hid * 4);
        plogits_ = device_buffer(std::size_t(chunk_ < logit_rows ? chunk_ : logit_rows) * std::size_t(c.vocab_size) * 4);
        ptok_ = device_buffer(2 * C * sizeof(int));
        // Token and position of each step, written by the host into pinned memory and copied
        // with the step's kernels, so that a step never waits for the previous one's copy.
        check(cudaMallocHost(&step_host_, 2 * sizeof(int)), "allocating pinned memory");
        step_dev_ = device_buffer(2 * sizeof(int));
    }
    ~llama_gpu() override {
        if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
        if (stream_) cudaStreamDestroy(stream_);
        for (cudaStream_t side : side_)
            if (side) cudaStreamDestroy(side);
        if (fork_) cudaEventDestroy(fork_);
        for (cudaEvent_t e : join_)
            if (e) cudaEventDestroy(e);
        if (step_host_) cudaFreeHost(step_host_);
    }

    // --- what the builder forwards ---
    void add_matrix(const std::string& name, const tensor& t) {
        if (name == "token_embd") {
            // A format with a kernel: each token's row decoded in fp32 from the matrix as stored
            // (exact where fp16 rows would round d * q, and no second copy of a tied classifier).
            // The rest: a dense table, fp32 for f32 models, else fp16.
            std::shared_ptr<gpu::matrix> q(upload_native(t, math_));
            if (q && q->can_embed())
                embd_q_ = q;
            else if (t.scheme == "f32")
                embd_f32_.reset(new dense_matrix<float>(t));
            else
                embd_f16_.reset(new dense_matrix<__half>(t));
            // The tied classifier: the same matrix as stored, for its GEMV kernel. An "output"
            // given later replaces it.
            if (c_.tied_output && !output_) output_ = q ? q : std::shared_ptr<gpu::matrix>(upload_matrix(t, math_));
            return;
        }
        if (name == "output") {
            output_ = upload_matrix(t, math_);
            return;
        }
        layer& L = layer_of(name);
        const std::string m = name.substr(name.find('.', 4) + 1);
        std::unique_ptr<gpu::matrix>* slot = m == "attn_q" ? &L.wq : m == "attn_k" ? &L.wk : m == "attn_v" ? &L.wv
                                             : m == "attn_output" ? &L.wo : m == "ffn_gate" ? &L.w1 : m == "ffn_down" ? &L.w2
                                             : m == "ffn_up" ? &L.w3 : nullptr;
        if (!slot) throw error("gpu: unknown matrix " + name);
        *slot = upload_matrix(t, math_);
    }
    void add_vector(const std::string& name, const std::vector<float>& v) {
        device_buffer b(v.size() * 4);
        b.upload(v.data(), v.size() * 4);
        if (name == "output_norm") {
            output_norm_ = std::move(b);
            return;
        }
        layer& L = layer_of(name);
        const std::string m = name.substr(name.find('.', 4) + 1);
        device_buffer* slot = m == "attn_norm" ? &L.attn_norm : m == "ffn_norm" ? &L.ffn_norm : m == "attn_q.bias" ? &L.bq
                              : m == "attn_k.bias" ? &L.bk : m == "attn_v.bias" ? &L.bv : nullptr;
        if (!slot) throw error("gpu: unknown vector " + name);
        *slot = std::move(b);
    }
    // Throws edgeq::error naming the first missing tensor.
    void complete() {
        auto need = [](bool ok, const std::string& what) {
            if (!ok) throw error("gpu: the model has no " + what);
        };
        need(embd_q_ || embd_f16_ || embd_f32_, "token_embd");
        need(bool(output_), "output");
        need(output_norm_.size() == std::size_t(c_.dim) * 4, "output_norm");
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const layer& L = layers_[l];
            const std::string p = "blk." + std::to_string(l) + ".";
            for (const std::unique_ptr<gpu::matrix>* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3})
                need(bool(*m), p + "matrix (one of q, k, v, o, gate, up, down)");
            need(L.attn_norm.size() && L.ffn_norm.size(), p + "attn_norm / ffn_norm");
            if (c_.qkv_bias) need(L.bq.size() && L.bk.size() && L.bv.size(), p + "q/k/v bias");
        }
        finished_ = true;
    }

    // --- session ---
    void eval(const int* tokens, std::size_t n, float* logits, bool all_logits) override {
        if (!finished_) throw error("gpu: eval before finish");
        if (n == 0) return;
        if (std::size_t(pos_) + n > std::size_t(n_ctx_))
            throw error("gpu session: " + std::to_string(pos_) + " + " + std::to_string(n) + " tokens exceed the context of " +
                        std::to_string(n_ctx_));
        for (std::size_t t = 0; t < n; ++t)
            if (tokens[t] < 0 || tokens[t] >= c_.vocab_size)
                throw error("gpu session: token id " + std::to_string(tokens[t]) + " is outside the vocabulary of " +
                            std::to_string(c_.vocab_size));
        const std::size_t V = std::size_t(c_.vocab_size);
        if (n == 1) {
            step(tokens[0], logits);
            ++pos_;
            return;
        }
        for (std::size_t t0 = 0; t0 < n; t0 += std::size_t(chunk_)) {
            const std::size_t m = std::min<std::size_t>(std::size_t(chunk_), n - t0);
            const bool last = t0 + m == n;
            prefill(tokens + t0, m, all_logits ? logits + t0 * V : last ? logits : nullptr, all_logits);
            pos_ += int(m);
        }
    }
    int n_past() const override { return pos_; }
    int n_ctx() const override { return n_ctx_; }
    void reset() override { pos_ = 0; }
    std::size_t device_bytes() const override {
        std::size_t n = output_->bytes + (embd_q_ && embd_q_ != output_ ? embd_q_->bytes : 0) + (embd_f16_ ? embd_f16_->bytes : 0) +
                        (embd_f32_ ? embd_f32_->bytes : 0) + step_dev_.size();
        for (const device_buffer* b : {&output_norm_, &k_cache_, &v_cache_, &inv_freq_, &x_, &xb_, &xb2_, &q_, &k_, &v_, &att_, &h1_,
                                       &h3_, &scores_, &logits_, &px_, &pxb_, &pxb2_, &pq_, &pk_, &pv_, &patt_, &ph1_, &ph3_,
                                       &plogits_, &ptok_})
            n += b->size();
        for (const layer& L : layers_) {
            for (const std::unique_ptr<gpu::matrix>* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) n += (*m)->bytes;
            for (const device_buffer* b : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv}) n += b->size();
        }
        return n;
    }
    std::size_t device_in_use() const override {
        std::size_t free = 0, total = 0;
        check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
        return total - free;
    }
    std::size_t bytes_per_token() const override {
        std::size_t n = output_->bytes + (embd_q_ ? embd_q_->bytes / embd_q_->rows : std::size_t(c_.dim) * (embd_f16_ ? 2 : 4));
        for (const layer& L : layers_)
            for (const std::unique_ptr<gpu::matrix>* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) n += (*m)->bytes;
        return n;
    }
    std::string describe() const override {
        int dev = 0;
        cudaDeviceProp p;
        check(cudaGetDevice(&dev), "cudaGetDevice");
        check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
        int native = 0, fallback = 0, in_fp32 = 0, in_exact = 0;
        auto count = [&](const gpu::matrix& m) {
            (m.native() ? native : fallback) += 1;
            in_fp32 += m.native() && m.arith == sums::fp32;
            in_exact += m.native() && m.arith == sums::exact_half;
        };
        for (const layer& L : layers_)
            for (const std::unique_ptr<gpu::matrix>* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) count(**m);
        count(*output_);
        return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + "), " + std::to_string(native) +
               " matrices on their format's kernel (" + std::to_string(native - in_fp32 - in_exact) + " in half arithmetic, " +
               std::to_string(in_exact) + " in exact half sums, " + std::to_string(in_fp32) + " in fp32" +
               (kernel::cuda::mma_enabled() ? " sums on tensor cores" : "") + "), " + std::to_string(fallback) + " decoded to " +
               (embd_f32_ ? "fp32/fp16" : "fp16") + " rows, the embedding " + (embd_q_ ? "decoded per token from its format" : "a dense table") +
               ", " + std::to_string(device_bytes() >> 20) + " MiB of device memory" +
               (graph_state_ == graph_state::ready ? ", layers as one CUDA graph" : graph_state_ == graph_state::off ? ", layers launched one by one" : "");
    }

   private:
    layer& layer_of(const std::string& name) {
        if (name.compare(0, 4, "blk.") != 0) throw error("gpu: unknown tensor " + name);
        const std::size_t l = std::size_t(std::stoul(name.substr(4)));
        if (l >= layers_.size()) throw error("gpu: tensor " + name + " beyond the model's layers");
        return layers_[l];
    }

    static int blocks_for(std::size_t n) { return int(std::min<std::size_t>((n + 255) / 256, 1024)); }

    // One token at position pos_: everything is queued on the stream; the host waits once, for
    // the logits (or, without them, before the next token's copy of its id and position).
    void step(int token, float* logits_host) {
        const int dim = c_.dim;
        cudaStream_t s = stream_;
        check(cudaStreamSynchronize(s), "waiting for the previous token");  // step_host_ is reused
        step_host_[0] = token;
        step_host_[1] = pos_;
        check(cudaMemcpyAsync(step_dev_.as<int>(), step_host_, 2 * sizeof(int), cudaMemcpyHostToDevice, s), "token copy");
        // The layers read the token and the position from device memory, so one CUDA graph of
        // them serves every token: ~15 launches per layer cost more host time than a small
        // model's GEMVs take on the GPU. Captured at the second token (the first one sets up the
        // kernels' launch shapes); EDGEQ_CUDA_GRAPHS=0 launches them one by one.
        if (graph_state_ == graph_state::untried && steps_ >= 1) capture_layers();
        if (graph_state_ == graph_state::ready)
            check(cudaGraphLaunch(graph_exec_, s), "launching the layers' graph");
        else
            layers(s);
        check(cudaGetLastError(), "launching the layers");
        ++steps_;
        if (!logits_host) return;
        // The last layer's residual add and the final norm.
        kernels::add_rmsnorm<<<1, 1024, 0, s>>>(xb_.as<float>(), x_.as<float>(), xb2_.as<float>(), output_norm_.as<float>(), dim,
                                                 c_.rms_eps);
        output_->gemv(xb_.as<float>(), logits_.as<float>(), s);
        check(cudaGetLastError(), "launching the classifier");
        check(cudaMemcpyAsync(logits_host, logits_.as<float>(), std::size_t(c_.vocab_size) * 4, cudaMemcpyDeviceToHost, s),
              "copying the logits");
        check(cudaStreamSynchronize(s), "running the token");
    }

    // Tokens pos_ .. pos_ + n - 1 (n <= chunk_) at once: each matrix as one GEMM over the n tokens
    // (q | k | v and gate | up side by side), the norms, SwiGLU and biases over all rows, RoPE of k
    // and the cache store of every token, then every token's attention over the cache. Logits: every row's when all_logits
    // (to logits_host, n rows), else the last row's (when logits_host is not null).
    void prefill(const int* tokens, std::size_t n, float* logits_host, bool all_logits) {
        const int dim = c_.dim, hid = c_.hidden_dim, hd = c_.head_size(), nn = int(n);
        const std::size_t qd = std::size_t(c_.q_dim()), kvd = std::size_t(c_.kv_dim());
        cudaStream_t s = stream_;
        check(cudaStreamSynchronize(s), "waiting for the previous tokens");
        std::vector<int> host(2 * n);
        for (std::size_t t = 0; t < n; ++t) host[t] = tokens[t], host[n + t] = pos_ + int(t);
        check(cudaMemcpy(ptok_.as<int>(), host.data(), 2 * n * sizeof(int), cudaMemcpyHostToDevice), "token copy");
        const int* tok = ptok_.as<int>();
        const int* pos = tok + n;
        float *x = px_.as<float>(), *xb = pxb_.as<float>(), *xb2 = pxb2_.as<float>();
        float *q = pq_.as<float>(), *k = pk_.as<float>(), *v = pv_.as<float>(), *att = patt_.as<float>();
        const dim3 rows_grid = dim3(unsigned(blocks_for(std::size_t(dim))), unsigned(n));
        if (embd_q_)
            embd_q_->embed(tok, n, x, s);
        else if (embd_f16_)
            kernels::embed<__half><<<rows_grid, 256, 0, s>>>(x, embd_f16_->data(), tok, dim);
        else
            kernels::embed<float><<<rows_grid, 256, 0, s>>>(x, embd_f32_->data(), tok, dim);
        const std::size_t kv_layer = std::size_t(n_ctx_) * kvd;
        const float scale = 1.0f / std::sqrt(float(hd));
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const layer& L = layers_[l];
            if (l == 0)
                kernels::rmsnorm<<<nn, 1024, 0, s>>>(xb, x, L.attn_norm.as<float>(), dim, c_.rms_eps);
            else
                kernels::add_rmsnorm<<<nn, 1024, 0, s>>>(xb, x, xb2, L.attn_norm.as<float>(), dim, c_.rms_eps);
            side_by_side(s, *L.wq, xb, q, L.wk.get(), k, L.wv.get(), v, n);
            if (c_.qkv_bias) {
                kernels::add<<<dim3(unsigned(blocks_for(qd)), unsigned(n)), 256, 0, s>>>(q, L.bq.as<float>(), int(qd));
                kernels::add<<<dim3(unsigned(blocks_for(kvd)), unsigned(n)), 256, 0, s>>>(k, L.bk.as<float>(), int(kvd));
                kernels::add<<<dim3(unsigned(blocks_for(kvd)), unsigned(n)), 256, 0, s>>>(v, L.bv.as<float>(), int(kvd));
            }
            float* kc = k_cache_.as<float>() + l * kv_layer;
            float* vc = v_cache_.as<float>() + l * kv_layer;
            const bool neox = c_.pairing == rope_pairing::neox;
            const std::size_t smem = (256 + std::size_t(n_ctx_)) * sizeof(float);  // attention_cached's
            if (smem <= 48 * 1024) {  // every token's k and v into the cache, then every token's attention
                kernels::rope_store<<<dim3(unsigned(c_.n_kv_heads), unsigned(n)), 256, 0, s>>>(k, v, inv_freq_.as<float>(), pos,
                                                                                                c_.n_kv_heads, hd, neox, kc, vc);
                kernels::attention_cached<<<dim3(unsigned(c_.n_heads), unsigned(n)), 256, smem, s>>>(
                    q, inv_freq_.as<float>(), pos, c_.n_heads, c_.n_kv_heads, hd, neox, kc, vc, scale, att);
            } else {  // contexts beyond 12032 positions: the scores in global scratch, a launch per token
                for (std::size_t t = 0; t < n; ++t)
                    kernels::rope_attention<<<c_.n_heads, 256, 256 * sizeof(float), s>>>(
                        q + t * qd, k + t * kvd, v + t * kvd, inv_freq_.as<float>(), pos + t, c_.n_heads, c_.n_kv_heads, hd, neox,
                        kc, vc, n_ctx_, scale, scores_.as<float>(), att + t * qd);
            }
            L.wo->gemm(att, xb2, n, s);
            kernels::add_rmsnorm<<<nn, 1024, 0, s>>>(xb, x, xb2, L.ffn_norm.as<float>(), dim, c_.rms_eps);
            side_by_side(s, *L.w1, xb, ph1_.as<float>(), L.w3.get(), ph3_.as<float>(), nullptr, nullptr, n);
            kernels::swiglu<<<blocks_for(n * std::size_t(hid)), 256, 0, s>>>(ph1_.as<float>(), ph3_.as<float>(), int(n) * hid);
            L.w2->gemm(ph1_.as<float>(), xb2, n, s);
        }
        check(cudaGetLastError(), "launching the layers");
        if (!logits_host) return;
        const std::size_t V = std::size_t(c_.vocab_size);
        if (all_logits) {
            kernels::add_rmsnorm<<<nn, 1024, 0, s>>>(xb, x, xb2, output_norm_.as<float>(), dim, c_.rms_eps);
            const std::size_t rows = std::size_t(chunk_ < logit_rows ? chunk_ : logit_rows);  // rows of logits at a time
            for (std::size_t r0 = 0; r0 < n; r0 += rows) {
                const std::size_t m = std::min(rows, n - r0);
                output_->gemm(xb + r0 * std::size_t(dim), plogits_.as<float>(), m, s);
                check(cudaGetLastError(), "launching the classifier");
                check(cudaMemcpyAsync(logits_host + r0 * V, plogits_.as<float>(), m * V * 4, cudaMemcpyDeviceToHost, s),
                      "copying the logits");
            }
        } else {
            const std::size_t last = (n - 1) * std::size_t(dim);
            kernels::add_rmsnorm<<<1, 1024, 0, s>>>(xb + last, x + last, xb2 + last, output_norm_.as<float>(), dim, c_.rms_eps);
            output_->gemv(xb + last, logits_.as<float>(), s);
            check(cudaGetLastError(), "launching the classifier");
            check(cudaMemcpyAsync(logits_host, logits_.as<float>(), V * 4, cudaMemcpyDeviceToHost, s), "copying the logits");
        }
        check(cudaStreamSynchronize(s), "running the tokens");
    }

    void capture_layers() {
        const char* env = std::getenv("EDGEQ_CUDA_GRAPHS");
        if (env && std::string(env) == "0") {
            graph_state_ = graph_state::off;
            return;
        }
        graph_state_ = graph_state::off;  // unless everything below works
        cudaGraph_t g = nullptr;
        if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
            cudaGetLastError();
            return;
        }
        layers(stream_);
        const cudaError_t e = cudaStreamEndCapture(stream_, &g);
        if (e != cudaSuccess || !g) {
            cudaGetLastError();
            if (g) cudaGraphDestroy(g);
            return;
        }
#if CUDART_VERSION >= 11040
        const cudaError_t ie = cudaGraphInstantiateWithFlags(&graph_exec_, g, 0);
#else
        const cudaError_t ie = cudaGraphInstantiate(&graph_exec_, g, nullptr, nullptr, 0);
#endif
        cudaGraphDestroy(g);
        if (ie != cudaSuccess) {
            cudaGetLastError();
            graph_exec_ = nullptr;
            return;
        }
        graph_state_ = graph_state::ready;
    }

    // Embedding row and every layer of the token whose id and position are in step_dev_. Kernels
    // per layer: norm (fused with the previous layer's residual add), q | k | v, RoPE + cache +
    // attention, o, add + norm, gate | up, SwiGLU, down: 11 launches, 8 deep (q, k, v and gate,
    // up run side by side on forked streams, branches of the graph). The last layer's residual
    // add is left to the classifier's norm (step), as nothing else reads x afterwards.
    void layers(cudaStream_t s) {
        const int dim = c_.dim, hid = c_.hidden_dim, hd = c_.head_size();
        const int* tok = step_dev_.as<int>();
        const int* pos = tok + 1;
        float *x = x_.as<float>(), *xb = xb_.as<float>(), *xb2 = xb2_.as<float>();
        if (embd_q_)
            embd_q_->embed(tok, 1, x, s);
        else if (embd_f16_)
            kernels::embed<__half><<<blocks_for(std::size_t(dim)), 256, 0, s>>>(x, embd_f16_->data(), tok, dim);
        else
            kernels::embed<float><<<blocks_for(std::size_t(dim)), 256, 0, s>>>(x, embd_f32_->data(), tok, dim);
        const std::size_t kv_layer = std::size_t(n_ctx_) * std::size_t(c_.kv_dim());
        const float scale = 1.0f / std::sqrt(float(hd));
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const layer& L = layers_[l];
            if (l == 0)
                kernels::rmsnorm<<<1, 1024, 0, s>>>(xb, x, L.attn_norm.as<float>(), dim, c_.rms_eps);
            else
                kernels::add_rmsnorm<<<1, 1024, 0, s>>>(xb, x, xb2, L.attn_norm.as<float>(), dim, c_.rms_eps);
            side_by_side(s, *L.wq, xb, q_.as<float>(), L.wk.get(), k_.as<float>(), L.wv.get(), v_.as<float>());
            if (c_.qkv_bias) {
                kernels::add<<<blocks_for(std::size_t(c_.q_dim())), 256, 0, s>>>(q_.as<float>(), L.bq.as<float>(), c_.q_dim());
                kernels::add<<<blocks_for(std::size_t(c_.kv_dim())), 256, 0, s>>>(k_.as<float>(), L.bk.as<float>(), c_.kv_dim());
                kernels::add<<<blocks_for(std::size_t(c_.kv_dim())), 256, 0, s>>>(v_.as<float>(), L.bv.as<float>(), c_.kv_dim());
            }
            float* kc = k_cache_.as<float>() + l * kv_layer;
            float* vc = v_cache_.as<float>() + l * kv_layer;
            kernels::rope_attention<<<c_.n_heads, 256, 256 * sizeof(float), s>>>(
                q_.as<float>(), k_.as<float>(), v_.as<float>(), inv_freq_.as<float>(), pos, c_.n_heads, c_.n_kv_heads, hd,
                c_.pairing == rope_pairing::neox, kc, vc, n_ctx_, scale, scores_.as<float>(), att_.as<float>());
            L.wo->gemv(att_.as<float>(), xb2, s);
            kernels::add_rmsnorm<<<1, 1024, 0, s>>>(xb, x, xb2, L.ffn_norm.as<float>(), dim, c_.rms_eps);
            side_by_side(s, *L.w1, xb, h1_.as<float>(), L.w3.get(), h3_.as<float>(), nullptr, nullptr);
            kernels::swiglu<<<blocks_for(std::size_t(hid)), 256, 0, s>>>(h1_.as<float>(), h3_.as<float>(), hid);
            L.w2->gemv(h1_.as<float>(), xb2, s);
        }
    }

    // y0 = a x on s, y1 = b x and y2 = c x (c may be null) on side streams that fork from s and
    // join it again: independent GEMVs overlap instead of queueing (captured as graph branches).
    // With n > 0, the GEMMs of n tokens (prefill).
    void side_by_side(cudaStream_t s, const gpu::matrix& a, const float* x, float* y0, const gpu::matrix* b, float* y1,
                      const gpu::matrix* c, float* y2, std::size_t n = 0) {
        const auto run = [n](const gpu::matrix& m, const float* in, float* out, cudaStream_t st) {
            if (n)
                m.gemm(in, out, n, st);
            else
                m.gemv(in, out, st);
        };
        check(cudaEventRecord(fork_, s), "recording an event");
        check(cudaStreamWaitEvent(side_[0], fork_, 0), "forking a stream");
        run(*b, x, y1, side_[0]);
        check(cudaEventRecord(join_[0], side_[0]), "recording an event");
        if (c) {
            check(cudaStreamWaitEvent(side_[1], fork_, 0), "forking a stream");
            run(*c, x, y2, side_[1]);
            check(cudaEventRecord(join_[1], side_[1]), "recording an event");
        }
        run(a, x, y0, s);
        check(cudaStreamWaitEvent(s, join_[0], 0), "joining a stream");
        if (c) check(cudaStreamWaitEvent(s, join_[1], 0), "joining a stream");
    }

    enum class graph_state { untried, ready, off };
    graph_state graph_state_ = graph_state::untried;
    cudaGraphExec_t graph_exec_ = nullptr;
    long steps_ = 0;
    llama_config c_;
    int n_ctx_;
    arithmetic math_;
    int pos_ = 0;
    bool finished_ = false;
    cudaStream_t stream_ = nullptr;
    cudaStream_t side_[2] = {nullptr, nullptr};
    cudaEvent_t fork_ = nullptr, join_[2] = {nullptr, nullptr};
    int* step_host_ = nullptr;
    device_buffer step_dev_;
    std::vector<layer> layers_;
    std::shared_ptr<gpu::matrix> embd_q_;  // the embedding as stored (often the tied classifier too)
    std::unique_ptr<dense_matrix<__half>> embd_f16_;
    std::unique_ptr<dense_matrix<float>> embd_f32_;
    std::shared_ptr<gpu::matrix> output_;
    device_buffer output_norm_, k_cache_, v_cache_, inv_freq_;
    device_buffer x_, xb_, xb2_, q_, k_, v_, att_, h1_, h3_, scores_, logits_;
    // prefill's: chunk_ rows of each (256, or the context if shorter: a GEMM at 64 tokens left
    // most of an H100 idle, 2048 rows in 32 blocks), logits up to logit_rows rows at a time, and
    // the chunk's ids and positions.
    static constexpr int chunk = 256, logit_rows = 64;
    int chunk_ = chunk;
    device_buffer px_, pxb_, pxb2_, pq_, pk_, pv_, patt_, ph1_, ph3_, plogits_, ptok_;
};

// The builder owns the engine until finish(); the session returned then shares it.
class owning_builder final : public builder {
   public:
    owning_builder(const llama_config& c, int n_ctx, arithmetic math) : g_(new llama_gpu(c, n_ctx, math)) {}
    void matrix(const std::string& name, const tensor& t) override { g_->add_matrix(name, t); }
    void vector(const std::string& name, const std::vector<float>& v) override { g_->add_vector(name, v); }
    std::unique_ptr<session> finish() override {
        g_->complete();
        return std::unique_ptr<session>(g_.release());
    }

   private:
    std::unique_ptr<llama_gpu> g_;
};

inline bool device_available(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e) : "no CUDA device";
        cudaGetLastError();
        return false;
    }
    return true;
}

inline std::unique_ptr<builder> new_builder(const llama_config& c, int n_ctx, arithmetic math = arithmetic::automatic) {
    std::string why;
    if (!device_available(&why)) throw error("gpu: " + why);
    return std::unique_ptr<builder>(new owning_builder(c, n_ctx, math));
}

}  // namespace gpu
}  // namespace engine
}  // namespace edgeq
