// The GPU engine's element-wise kernels: what llama.hpp's forward pass does between its matrix
// products, in fp32 (activations and the KV cache stay fp32 on the device, as on the CPU; only the
// quantized GEMV kernels use half arithmetic, with exact sums: gemv_core.cuh). One token at a
// time; the position comes from device memory, so nothing here needs the host.
//
// C++14 for nvcc >= 10.2 (sm_53 upwards); no Hana, no xsimd.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace edgeq {
namespace engine {
namespace gpu {
namespace kernels {

// The sum of v over a block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ inline float block_sum(float v, float* shared32) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
    __syncthreads();  // shared32 may still be read by a previous call
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    float s = lane < warps ? shared32[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}
__device__ inline float block_max(float v, float* shared32) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
    __syncthreads();
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    float s = lane < warps ? shared32[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) s = fmaxf(s, __shfl_xor_sync(0xffffffffu, s, o));
    return s;
}

// out = x / sqrt(mean(x^2) + eps) * w, a block per row of n values (one block: one token).
__global__ void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
    __shared__ float red[32];
    out += std::size_t(blockIdx.x) * std::size_t(n), x += std::size_t(blockIdx.x) * std::size_t(n);
    float ss = 0.0f;
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) ss += x[i] * x[i];
    ss = block_sum(ss, red);
    const float inv = rsqrtf(ss / float(n) + eps);
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) out[i] = w[i] * (x[i] * inv);
}

// x += y, then out = x / sqrt(mean(x^2) + eps) * w: the residual add of one block's output and
// the next norm in one launch. A block per row; each thread norms the values it added.
__global__ void add_rmsnorm(float* out, float* x, const float* y, const float* w, int n, float eps) {
    __shared__ float red[32];
    const std::size_t row = std::size_t(blockIdx.x) * std::size_t(n);
    out += row, x += row, y += row;
    float ss = 0.0f;
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) {
        const float v = x[i] + y[i];
        x[i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, red);
    const float inv = rsqrtf(ss / float(n) + eps);
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) out[i] = w[i] * (x[i] * inv);
}

// x = row `token` of an embedding table of n columns (float or half rows); row y of x takes
// token[y] (blockIdx.y: the token of a batch).
template <class T>
__global__ void embed(float* x, const T* table, const int* token, int n) {
    const T* row = table + std::size_t(token[blockIdx.y]) * std::size_t(n);
    x += std::size_t(blockIdx.y) * std::size_t(n);
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) x[i] = float(row[i]);
}

// x += y (n values); row blockIdx.y of x += y for a bias on a batch of rows.
__global__ void add(float* x, const float* y, int n) {
    x += std::size_t(blockIdx.y) * std::size_t(n);
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) x[i] += y[i];
}

// h1 = silu(h1) * h3
__global__ void swiglu(float* h1, const float* h3, int n) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) {
        const float g = h1[i];
        h1[i] = g / (1.0f + expf(-g)) * h3[i];
    }
}

// RoPE of one head of hd values at position p, src to dst: thread t < hd / 2 rotates pair t (neox:
// values t and t + hd/2; interleaved: 2t and 2t + 1; config.hpp) as llama.hpp does: the angle
// float(p) * inv_freq[t], cosf/sinf (not the fast intrinsics).
__device__ inline void rope_head(const float* src, float* dst, int p, const float* inv_freq, int hd, bool neox) {
    const int t = int(threadIdx.x), half = hd / 2;
    if (t >= half) return;
    const int ia = neox ? t : 2 * t, ib = neox ? t + half : 2 * t + 1;
    const float angle = float(p) * inv_freq[t];
    const float c = cosf(angle), s = sinf(angle);
    const float a = src[ia], b = src[ib];
    dst[ia] = a * c - b * s;
    dst[ib] = a * s + b * c;
}

// Causal attention of one query head (already rotated, in qs) at position p over the cache rows
// 0 .. p of kv head kvh, into out (hd values); row p's k and v from ks / vp when given (the
// launch that writes them), else from the cache. s: len = p + 1 floats of scratch; partial:
// blockDim.x floats; blockDim.x a multiple of 32 and at least hd.
__device__ inline void attend(const float* qs, int p, const float* ks, const float* vp, const float* k_cache,
                              const float* v_cache, int kvd, int kvh, int hd, float scale, float* s, float* partial, float* red,
                              float* out) {
    const int len = p + 1, t = int(threadIdx.x);
    const int warp = t / 32, lane = t % 32, warps = int(blockDim.x) / 32;
    const std::size_t head = std::size_t(kvh) * std::size_t(hd);
    // Scores: a warp per cache row.
    for (int j = warp; j < len; j += warps) {
        const float* kj = j == p && ks ? ks : k_cache + std::size_t(j) * std::size_t(kvd) + head;
        float dot = 0.0f;
        for (int i = lane; i < hd; i += 32) dot += qs[i] * kj[i];
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (lane == 0) s[j] = dot * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = t; j < len; j += int(blockDim.x)) mx = fmaxf(mx, s[j]);
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = t; j < len; j += int(blockDim.x)) {
        const float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);  // its barriers also order the writes of s before the reads below
    // Output: thread t sums dimension t % hd over the rows j = t / hd, t / hd + slices, ...
    const int slices = int(blockDim.x) / hd, d = t % hd, slice = t / hd;
    float o = 0.0f;
    if (slice < slices)
        for (int j = slice; j < len; j += slices)
            o += s[j] * (j == p && vp ? vp[d] : v_cache[std::size_t(j) * std::size_t(kvd) + head + std::size_t(d)]);
    partial[t] = o;
    __syncthreads();
    if (t < hd) {
        float acc = 0.0f;
        for (int sl = 0; sl < slices; ++sl) acc += partial[sl * hd + t];
        out[t] = acc / sum;
    }
}

// RoPE, KV-cache store and causal grouped-query attention of the token at *pos, one launch: a
// block per query head h (kv head h / (n_heads / n_kv_heads)). The block rotates its q head and
// its kv head's k in shared memory; the first block of each kv group writes k and v to the cache
// row of the position, and every block reads that row from its own copy (no block waits for
// another). Scores in `scores` ([n_heads, n_ctx] scratch). blockDim.x: a multiple of 32 and at least hd.
__global__ void rope_attention(const float* q, const float* k, const float* v, const float* inv_freq, const int* pos,
                               int n_heads, int n_kv_heads, int hd, bool neox, float* k_cache, float* v_cache, int n_ctx,
                               float scale, float* scores, float* out) {
    __shared__ float red[32];
    __shared__ float qs[256], ks[256];
    extern __shared__ float partial[];  // blockDim.x floats
    const int group = n_heads / n_kv_heads;
    const int h = int(blockIdx.x), kvh = h / group, kvd = n_kv_heads * hd;
    const int p = *pos;
    const int t = int(threadIdx.x);
    rope_head(q + h * hd, qs, p, inv_freq, hd, neox);
    rope_head(k + kvh * hd, ks, p, inv_freq, hd, neox);
    __syncthreads();
    if (h % group == 0 && t < hd) {
        const std::size_t c = std::size_t(p) * std::size_t(kvd) + std::size_t(kvh) * std::size_t(hd) + std::size_t(t);
        k_cache[c] = ks[t];
        v_cache[c] = v[kvh * hd + t];
    }
    attend(qs, p, ks, v + kvh * hd, k_cache, v_cache, kvd, kvh, hd, scale, scores + std::size_t(h) * std::size_t(n_ctx), partial, red,
           out + h * hd);
}

// A batch of tokens (prefill), first launch: RoPE of each token's k and the store of its k and
// v rows into the cache at pos[token]; a block per (kv head, token), blockDim.x >= hd.
__global__ void rope_store(const float* k, const float* v, const float* inv_freq, const int* pos, int n_kv_heads, int hd,
                           bool neox, float* k_cache, float* v_cache) {
    const int kvh = int(blockIdx.x), kvd = n_kv_heads * hd, t = int(threadIdx.x);
    const int p = pos[blockIdx.y];
    const std::size_t src = std::size_t(blockIdx.y) * std::size_t(kvd) + std::size_t(kvh) * std::size_t(hd);
    const std::size_t dst = std::size_t(p) * std::size_t(kvd) + std::size_t(kvh) * std::size_t(hd);
    rope_head(k + src, k_cache + dst, p, inv_freq, hd, neox);
    if (t < hd) v_cache[dst + std::size_t(t)] = v[src + std::size_t(t)];
}

// Second launch: each token's attention over the cache rows 0 .. pos[token], all of them written
// by rope_store or earlier; a block per (query head, token). Dynamic shared memory: blockDim.x +
// n_ctx floats (partial sums, then the scores).
__global__ void attention_cached(const float* q, const float* inv_freq, const int* pos, int n_heads, int n_kv_heads, int hd,
                                 bool neox, const float* k_cache, const float* v_cache, float scale, float* out) {
    __shared__ float red[32];
    __shared__ float qs[256];
    extern __shared__ float dyn[];
    const int group = n_heads / n_kv_heads;
    const int h = int(blockIdx.x), kvh = h / group, kvd = n_kv_heads * hd;
    const int p = pos[blockIdx.y];
    const std::size_t row = std::size_t(blockIdx.y) * std::size_t(n_heads) * std::size_t(hd) + std::size_t(h) * std::size_t(hd);
    rope_head(q + row, qs, p, inv_freq, hd, neox);
    __syncthreads();
    attend(qs, p, nullptr, nullptr, k_cache, v_cache, kvd, kvh, hd, scale, dyn + blockDim.x, dyn, red, out + row);
}

// y = W x for a dense row-major W of float or half: a warp per row, fp32 sums; 16-byte loads when
// every row starts 16-byte aligned (vec), else element by element.
template <class T>
__device__ inline float dot8(const T* w, const float* x);
template <>
__device__ inline float dot8<__half>(const __half* w, const float* x) {
    const uint4 u = *reinterpret_cast<const uint4*>(w);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        s += f.x * x[2 * i] + f.y * x[2 * i + 1];
    }
    return s;
}
template <>
__device__ inline float dot8<float>(const float* w, const float* x) {
    const float4 a = *reinterpret_cast<const float4*>(w), b = *reinterpret_cast<const float4*>(w + 4);
    return a.x * x[0] + a.y * x[1] + a.z * x[2] + a.w * x[3] + b.x * x[4] + b.y * x[5] + b.z * x[6] + b.w * x[7];
}

template <class T>
__global__ void dense_gemv(const T* w, const float* x, float* y, int rows, int cols, bool vec) {
    const int lane = int(threadIdx.x) % 32;
    const int warps = int(gridDim.x * blockDim.x) / 32;
    for (int r = int(blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        const T* row = w + std::size_t(r) * std::size_t(cols);
        float s = 0.0f;
        int c0 = 0;
        if (vec) {
            c0 = cols / 256 * 256;
            for (int c = lane * 8; c < c0; c += 256) s += dot8(row + c, x + c);
        }
        for (int c = c0 + lane; c < cols; c += 32) s += float(row[c]) * x[c];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) y[r] = s;
    }
}

}  // namespace kernels
}  // namespace gpu
}  // namespace engine
}  // namespace edgeq
