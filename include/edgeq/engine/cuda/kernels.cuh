// The GPU engine's element-wise kernels: what llama.hpp's forward pass does between its matrix
// products, in fp32 (activations and the KV cache stay fp32 on the device, as on the CPU; only the
// quantized GEMV kernels round their input to half). One token at a time; the position comes in
// as a kernel argument, so nothing here needs the host.
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

// out = x / sqrt(mean(x^2) + eps) * w, one block.
__global__ void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
    __shared__ float red[32];
    float ss = 0.0f;
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) ss += x[i] * x[i];
    ss = block_sum(ss, red);
    const float inv = rsqrtf(ss / float(n) + eps);
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) out[i] = w[i] * (x[i] * inv);
}

// x = row `token` of an embedding table of n columns (float or half rows).
template <class T>
__global__ void embed(float* x, const T* table, const int* token, int n) {
    const T* row = table + std::size_t(*token) * std::size_t(n);
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) x[i] = float(row[i]);
}

// x += y (n values); y += b for biases.
__global__ void add(float* x, const float* y, int n) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) x[i] += y[i];
}

// h1 = silu(h1) * h3
__global__ void swiglu(float* h1, const float* h3, int n) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) {
        const float g = h1[i];
        h1[i] = g / (1.0f + expf(-g)) * h3[i];
    }
}

// RoPE of the q and k heads at position *pos, then k and v into the cache rows of that position.
// neox pairs i with i + hd/2, interleaved 2i with 2i + 1 (config.hpp). One thread per pair.
__global__ void rope_and_store(float* q, float* k, const float* v, const float* inv_freq, const int* pos, int n_heads,
                               int n_kv_heads, int hd, bool neox, float* k_cache, float* v_cache) {
    const int half = hd / 2, kvd = n_kv_heads * hd;
    const int p = *pos;
    float* kc = k_cache + std::size_t(p) * std::size_t(kvd);
    float* vc = v_cache + std::size_t(p) * std::size_t(kvd);
    const int pairs = (n_heads + n_kv_heads) * half;
    for (int t = int(blockIdx.x * blockDim.x + threadIdx.x); t < pairs; t += int(gridDim.x * blockDim.x)) {
        const int head = t / half, i = t % half;
        float* x = head < n_heads ? q + head * hd : k + (head - n_heads) * hd;
        const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
        // float(pos) * inv_freq as llama.hpp computes the angle; cosf/sinf, not the fast intrinsics.
        const float angle = float(p) * inv_freq[i];
        const float c = cosf(angle), s = sinf(angle);
        const float a0 = x[ia], b0 = x[ib];
        const float a = a0 * c - b0 * s, b = a0 * s + b0 * c;
        x[ia] = a;
        x[ib] = b;
        if (head >= n_heads) {
            const int off = (head - n_heads) * hd;
            kc[off + ia] = a;
            kc[off + ib] = b;
        }
    }
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < kvd; i += int(gridDim.x * blockDim.x)) vc[i] = v[i];
}

// Causal grouped-query attention of the token at *pos against the cache rows 0..*pos: one block
// per query head; scores in `scores` ([n_heads, n_ctx] scratch). Query head h reads kv head
// h / (n_heads / n_kv_heads). blockDim.x: a multiple of 32 and of hd's share (see the launch).
__global__ void attention(const float* q, const float* k_cache, const float* v_cache, const int* pos, int n_heads,
                          int n_kv_heads, int hd, int n_ctx, float scale, float* scores, float* out) {
    __shared__ float red[32];
    extern __shared__ float partial[];  // blockDim.x floats
    const int h = int(blockIdx.x), kvh = h / (n_heads / n_kv_heads), kvd = n_kv_heads * hd;
    const int len = *pos + 1;
    const float* qh = q + h * hd;
    float* s = scores + std::size_t(h) * std::size_t(n_ctx);
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
    // Scores: a warp per cache row.
    for (int j = warp; j < len; j += warps) {
        const float* kj = k_cache + std::size_t(j) * std::size_t(kvd) + std::size_t(kvh) * std::size_t(hd);
        float dot = 0.0f;
        for (int i = lane; i < hd; i += 32) dot += qh[i] * kj[i];
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (lane == 0) s[j] = dot * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = int(threadIdx.x); j < len; j += int(blockDim.x)) mx = fmaxf(mx, s[j]);
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = int(threadIdx.x); j < len; j += int(blockDim.x)) {
        const float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);  // its barriers also order the writes of s before the reads below
    // Output: thread t sums dimension t % hd over the rows j = t / hd, t / hd + slices, ...
    const int slices = int(blockDim.x) / hd, d = int(threadIdx.x) % hd, slice = int(threadIdx.x) / hd;
    float o = 0.0f;
    if (slice < slices)
        for (int j = slice; j < len; j += slices)
            o += s[j] * v_cache[std::size_t(j) * std::size_t(kvd) + std::size_t(kvh) * std::size_t(hd) + std::size_t(d)];
    partial[threadIdx.x] = o;
    __syncthreads();
    if (int(threadIdx.x) < hd) {
        float acc = 0.0f;
        for (int sl = 0; sl < slices; ++sl) acc += partial[sl * hd + int(threadIdx.x)];
        out[h * hd + int(threadIdx.x)] = acc / sum;
    }
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
