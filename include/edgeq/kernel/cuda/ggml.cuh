// GEMV and GEMM on a CUDA device for llama.cpp's Q4_0, Q8_0, Q4_K and Q6_K (format/ggml/), and
// for Q4_K paired, the device layout that the GPU engine repacks Q4_K into (q4_K_paired.hpp):
//
//     edgeq::cuda::gemv(w, x_dev, y_dev, stream);      // w: qview<ggml_format<block_q4_K>> ...
//     edgeq::cuda::gemm(w, x_dev, y_dev, n, stream);   // n tokens
//
// w.blocks is a device pointer to the rows of blocks exactly as a GGUF tensor stores them; x and
// y are float or __half in device memory. C++14 for nvcc >= 10.2; the kernels are gemv_core.cuh
// and gemm.cuh, this file says how 32 weights of each block type are loaded and decoded. The
// values are the ones ggml's dequantize_row_* gives (format/ggml/decode.hpp), computed in the
// half2 / fp32 arithmetic of gemv_core.cuh.
//
// Q4_0 (18-byte blocks), Q8_0 (34) and Q6_K (210) are only 2-byte aligned inside a row, so their
// bytes come through load_words_a2 (aligned 32-bit loads and a funnel shift); Q4_K's 144-byte
// blocks (and Q4_K paired's) are 16-byte aligned and use 16-byte loads.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../format/ggml/blocks.hpp"
#include "../../format/ggml/format.hpp"
#include "../../format/ggml/q4_K_paired.hpp"
#include "../../policy/backend.hpp"
#include "gemm.cuh"
#include "gemv_core.cuh"
#include "gemv_exact.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

template <class Block>
struct ggml_adaptor_base {
    qview<ggml_format<Block>> w;
    std::size_t rows, cols, units;  // units of 32 weights per row
    static constexpr int table_size = 0;
    static constexpr x_order staged_order = x_order::columns;
    // Batch 1: 2 rows per warp; their 2-byte aligned blocks (several scalar loads per unit)
    // measured slower with the per-matrix choice of launch_staged_auto.
    static constexpr bool auto_rows = false;
    static constexpr bool row_extra = false;
    static constexpr int team_mode = 0;  // teams of warps per row: only on small matrices (gemv_config)
    static constexpr bool wide_rows = false;
    static constexpr int code_max = 0;  // exact half sums (gemv_exact.cuh): the largest |decoded value|; 0: not integers
    __device__ static __half2 table_entry(int) { return __half2(); }
    __device__ const std::uint8_t* block(std::size_t r, std::size_t b) const {
        return reinterpret_cast<const std::uint8_t*>(w.row_blocks(r) + b);
    }
    // The block holding unit u (32 weights) of row r.
    __device__ const std::uint8_t* unit_bytes(std::size_t r, std::size_t u) const {
        return block(r, u / (Block::weights / 32));
    }
};

template <class Block>
struct ggml_adaptor;

// Q4_0's 16 nibble bytes (byte j: weight j low, j + 16 high) to 16 half2 of q - 8 in column order.
__device__ __forceinline__ void nibbles_in_order(const std::uint32_t (&q)[4], __half2 (&v)[16]) {
    const __half2 off = __float2half2_rn(1032.0f);
#pragma unroll
    for (int t = 0; t < 4; ++t) {
        bytes_to_h2(q[t] & 0x0f0f0f0fu, off, v[2 * t], v[2 * t + 1]);
        bytes_to_h2((q[t] >> 4) & 0x0f0f0f0fu, off, v[8 + 2 * t], v[9 + 2 * t]);
    }
}

// Q4_0: w = d * (q - 8); qs[j] holds weight j (low nibble) and j + 16 (high nibble).
template <>
struct ggml_adaptor<ggml::block_q4_0> : ggml_adaptor_base<ggml::block_q4_0> {
    static constexpr int x_shift = 4, groups = 1, code_max = 8;
    static constexpr bool fp32_runs = false, needs_xsum = false, contiguous = true;
    struct raw {
        std::uint32_t q[4];
        float d;
    };
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = block(r, u);
        out.d = ld_half(p);
        load_words_a2<4>(p + 2, out.q);
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        nibbles_in_order(in.q, v);
        s[0] = in.d;
        m = 0.0f;
    }
    // Batch 1 below sm_90: the nibbles in their stored order (gemv_core.cuh, nibbles_paired,
    // gemv_config::nibble_pairs); column order (decode) from sm_90 up.
    static constexpr x_order staged_order = x_order::nibble_pairs;
    __device__ void decode_paired(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        nibbles_paired(in.q, 8.0f, v);
        s[0] = in.d;
        m = 0.0f;
    }
};

// Q8_0: w = d * q, q signed 8-bit: q ^ 0x80 is q + 128 as an unsigned byte.
template <>
struct ggml_adaptor<ggml::block_q8_0> : ggml_adaptor_base<ggml::block_q8_0> {
    static constexpr int x_shift = 8, groups = 1, code_max = 128;
    static constexpr bool fp32_runs = true, needs_xsum = false, contiguous = true;
    struct raw {
        std::uint32_t q[8];
        float d;
    };
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = block(r, u);
        out.d = ld_half(p);
        load_words_a2<8>(p + 2, out.q);
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        const __half2 off = __float2half2_rn(1152.0f);
#pragma unroll
        for (int t = 0; t < 8; ++t) bytes_to_h2(in.q[t] ^ 0x80808080u, off, v[2 * t], v[2 * t + 1]);
        s[0] = in.d;
        m = 0.0f;
    }
};

// Sub-block j's scale d sc and offset dmin m - 8 d sc of a Q4_K super-block whose first 16 bytes
// are `head` (d, dmin, then the 12 bytes of 6-bit scales and mins in .y (bytes 0-3), .z (4-7),
// .w (8-11)): the decoders give q - 8, so that the half sums are centred (less cancellation).
__device__ __forceinline__ void k4_scale_of(const uint4& head, unsigned sc, unsigned mn, float& s, float& m) {
    const float d = __half2float(__ushort_as_half((unsigned short)(head.x & 0xffffu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(head.x >> 16)));
    s = d * float(sc);
    m = dmin * float(mn) - 8.0f * s;
}
// Q4_K as stored (ggml::k4_scale_min's layout).
__device__ __forceinline__ void k4_unit_scale(const uint4& head, unsigned j, float& s, float& m) {
    // Both cases computed and selected: lanes of a warp hold different j, and a branch here
    // diverged inside the unit loop (Q4_K paired at 11008 x 4096: 14.8 us against 12.0 without
    // the unpacking).
    const unsigned b = 8 * (j & 3u), yb = head.y >> b, zb = head.z >> b, wb = head.w >> b;
    const bool first = j < 4;
    const unsigned sc = first ? yb & 63u : (wb & 0x0fu) | ((yb >> 2) & 0x30u);
    const unsigned mn = first ? zb & 63u : ((wb >> 4) & 0x0fu) | ((zb >> 2) & 0x30u);
    k4_scale_of(head, sc, mn, s, m);
}
// Q4_K paired: ggml::k4_paired_scale_min's rule on the head in registers (byte j of .y .z,
// nibble j of .w), where a pointer into it would put the head in local memory.
__device__ __forceinline__ void k4_paired_unit_scale(const uint4& head, unsigned j, float& s, float& m) {
    const unsigned b = __byte_perm(head.y, head.z, j);
    k4_scale_of(head, b & 63u, ((head.w >> (4 * j)) & 15u) << 2 | ((b >> 6) & 3u), s, m);
}

// What Q4_K and Q4_K paired share: 32-weight units, the minimum term, the 16-byte head; a unit's
// raw bytes are the head, Words code words and the sub-block index.
template <int Words>
struct k4_raw {
    uint4 head;
    std::uint32_t q[Words];
    unsigned j;
};
template <class Block>
struct k4_adaptor_base : ggml_adaptor_base<Block> {
    static constexpr int x_shift = 4, groups = 1, code_max = 8;  // q - 8
    static constexpr bool fp32_runs = false, needs_xsum = true, contiguous = true;
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }
    // The super-block holding unit u of row r; its head (d, dmin, 12 bytes of packed 6-bit
    // scales and mins) and the unit's sub-block j.
    __device__ const std::uint8_t* super_block(std::size_t r, std::size_t u, uint4& head, unsigned& j) const {
        const std::uint8_t* p = this->block(r, u / 8);
        j = unsigned(u % 8);
        head = __ldg(reinterpret_cast<const uint4*>(p));
        return p;
    }
};

// Q4_K as GGUF stores it: unit u is sub-block j = u % 8 of super-block u / 8, whose codes are one
// nibble of the 32 bytes it shares with sub-block j ^ 1; w = d sc q - dmin m.
template <>
struct ggml_adaptor<ggml::block_q4_K> : k4_adaptor_base<ggml::block_q4_K> {
    using raw = k4_raw<8>;
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = super_block(r, u, out.head, out.j);
        const uint4* qs = reinterpret_cast<const uint4*>(p + 16 + 32 * (out.j / 2));
        const uint4 a = __ldg(qs), b = __ldg(qs + 1);
        out.q[0] = a.x, out.q[1] = a.y, out.q[2] = a.z, out.q[3] = a.w;
        out.q[4] = b.x, out.q[5] = b.y, out.q[6] = b.z, out.q[7] = b.w;
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        const unsigned sh = 4 * (in.j & 1u);
        const __half2 off = __float2half2_rn(1032.0f);
#pragma unroll
        for (int t = 0; t < 8; ++t) bytes_to_h2((in.q[t] >> sh) & 0x0f0f0f0fu, off, v[2 * t], v[2 * t + 1]);
        k4_unit_scale(in.head, in.j, s[0], m);
    }
};

// Q4_K paired (format/ggml/q4_K_paired.hpp), the GPU engine's layout for Q4_K: sub-block j's 16
// code bytes are contiguous and in Q4_0's nibble order, so a unit is one 16-byte load beside its
// super-block's head and decodes as Q4_0 and int4 do (lop3 pairs at batch 1 below sm_90).
template <>
struct ggml_adaptor<ggml::block_q4_K_paired> : k4_adaptor_base<ggml::block_q4_K_paired> {
    static constexpr x_order staged_order = x_order::nibble_pairs;
    // Batch 1 as int4's chunks (measured with variants of the launch, docs/cuda.md "Q4_K paired").
    static constexpr bool auto_rows = true;
    static constexpr int team_mode = 3;
    static constexpr bool long_teams_of_two = true;  // gemv_core.cuh, launch_long_teams
    using raw = k4_raw<4>;
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = super_block(r, u, out.head, out.j);
        const uint4 a = __ldg(reinterpret_cast<const uint4*>(p + 16 + 16 * out.j));
        out.q[0] = a.x, out.q[1] = a.y, out.q[2] = a.z, out.q[3] = a.w;
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        nibbles_in_order(in.q, v);
        k4_paired_unit_scale(in.head, in.j, s[0], m);
    }
    __device__ void decode_paired(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        nibbles_paired(in.q, 8.0f, v);
        k4_paired_unit_scale(in.head, in.j, s[0], m);
    }
};

// Q6_K for the tiled GEMM (gemm.cuh), whose 64-column steps need units of consecutive columns:
// unit u is quarter k = u % 4 of half h = (u % 8) / 4 of super-block u / 8, columns 32 u .. 32 u +
// 31, a scale per 16 (groups = 2). Its codes take 17 scattered word loads: too many for the
// GEMV's unit per lane (the gathering adaptor below), fine in a GEMM, where each decoded weight
// serves a tile of tokens.
struct q6_K_columns : ggml_adaptor_base<ggml::block_q6_K> {
    static constexpr int x_shift = 6, groups = 2;
    static constexpr bool fp32_runs = true, needs_xsum = false, contiguous = true;
    struct raw {
        std::uint32_t lo[8], hi[8], sc[1];
        float d;
        unsigned k;
    };
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = block(r, u / 8);
        const unsigned hh = unsigned(u % 8) / 4, k = unsigned(u % 4);
        out.k = k;
        load_words_a2<8>(p + 64 * hh + 32 * (k & 1), out.lo);
        load_words_a2<8>(p + 128 + 32 * hh, out.hi);
        load_words_a2<1>(p + 192 + 8 * hh + 2 * k, out.sc);
        out.d = ld_half(p + 208);
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[2], float& m) const {
        const __half2 off = __float2half2_rn(1056.0f);
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const std::uint32_t lo = (in.lo[t] >> (4 * (in.k >> 1))) & 0x0f0f0f0fu;
            const std::uint32_t hi = ((in.hi[t] >> (2 * in.k)) & 0x03030303u) << 4;
            bytes_to_h2(lo | hi, off, v[2 * t], v[2 * t + 1]);
        }
        s[0] = in.d * float(static_cast<signed char>(in.sc[0] & 0xffu));
        s[1] = in.d * float(static_cast<signed char>((in.sc[0] >> 8) & 0xffu));
        m = 0.0f;
    }
};

// Q6_K: unit u of super-block u / 8 is half h = (u % 8) / 4, columns l0 .. l0 + 7 (l0 = 8 (u % 4))
// of its four 32-weight quarters k: weights 128 h + 32 k + l0 + e, each quarter with its own
// 8-bit scale (scales[8 h + 2 k + l0 / 16]); q = low nibble | 2 high bits << 4, minus 32.
template <>
struct ggml_adaptor<ggml::block_q6_K> : ggml_adaptor_base<ggml::block_q6_K> {
    static constexpr int x_shift = 6, groups = 4;
    static constexpr bool fp32_runs = true, needs_xsum = false, contiguous = false;
    struct raw {
        std::uint32_t a[2], b[2], h[2], sc[2];
        float d;
        unsigned l0;
    };
    __device__ std::size_t x_run(std::size_t u, int i) const {
        return 256 * (u / 8) + 128 * ((u % 8) / 4) + 32 * std::size_t(i) + 8 * (u % 4);
    }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        const std::uint8_t* p = block(r, u / 8);
        const unsigned hh = unsigned(u % 8) / 4, l0 = 8 * unsigned(u % 4);
        out.l0 = l0;
        load_words_a2<2>(p + 64 * hh + l0, out.a);
        load_words_a2<2>(p + 64 * hh + 32 + l0, out.b);
        load_words_a2<2>(p + 128 + 32 * hh + l0, out.h);
        load_words_a2<2>(p + 192 + 8 * hh, out.sc);
        out.d = ld_half(p + 208);
    }
    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[4], float& m) const {
        const __half2 off = __float2half2_rn(1056.0f);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const std::uint32_t lo = ((k & 1 ? in.b[e] : in.a[e]) >> (4 * (k >> 1))) & 0x0f0f0f0fu;
                const std::uint32_t hi = ((in.h[e] >> (2 * k)) & 0x03030303u) << 4;
                bytes_to_h2(lo | hi, off, v[4 * k + 2 * e], v[4 * k + 2 * e + 1]);
            }
            const unsigned bi = 2 * unsigned(k) + in.l0 / 16;  // scale byte within the 8 loaded
            const int sc = int(static_cast<signed char>((in.sc[bi / 4] >> (8 * (bi % 4))) & 0xffu));
            s[k] = in.d * float(sc);
        }
        m = 0.0f;
    }
    // The same matrix in units of consecutive columns, for the tiled GEMM.
    q6_K_columns columns() const {
        q6_K_columns c;
        c.w = w;
        c.rows = rows;
        c.cols = cols;
        c.units = units;
        return c;
    }
};

template <class Block>
ggml_adaptor<Block> make_adaptor(const qview<ggml_format<Block>>& w) {
    if (!w.blocks) throw error("cuda: a null matrix pointer");
    if (w.cols % Block::weights) throw error("cuda: the row length is not a multiple of the block");
    if (reinterpret_cast<std::uintptr_t>(w.blocks) % 16) throw error("cuda: the blocks must be 16-byte aligned");
    ggml_adaptor<Block> a;
    a.w = w;
    a.rows = w.rows;
    a.cols = w.cols;
    a.units = w.cols / 32;
    return a;
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {

// y = W x for a matrix of llama.cpp blocks (Q4_0, Q8_0, Q4_K, Q6_K); x, y float or __half.
template <class Block, class XT, class YT>
void gemv(const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
template <int SM, class Block, class XT, class YT>
void gemv(backend::cuda<SM>, const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1<kernel::cuda::gemv_config<SM>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
// In fp32 sums (tensor cores from sm_80, gemv_mma.cuh; else gemv_fp32_kernel).
template <class Block, class XT, class YT>
void gemv(fp32_sums_t, const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1_accurate(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
// In half2 arithmetic with exact sums (gemv_exact.cuh): Q4_0, Q8_0, Q4_K; Q6_K takes fp32 sums.
template <class Block, class XT, class YT>
void gemv(exact_half_sums_t, const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_gemv1_exact<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}
// Y = X W^T for n tokens: x is n x cols, y is n x rows.
template <class Block, class XT, class YT>
void gemm(const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    kernel::cuda::launch_gemm(kernel::cuda::make_adaptor(w), x_dev, y_dev, n, stream);
}

// The same in fp32 sums for every n (the tiled kernel; gemm.cuh, launch_gemm_fp32).
template <class Block, class XT, class YT>
void gemm(fp32_sums_t, const qview<ggml_format<Block>>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    kernel::cuda::launch_gemm_fp32(kernel::cuda::make_adaptor(w), x_dev, y_dev, n, stream);
}

// Rows rows_dev[t] (t < n, device memory) of W in fp32 at out_dev + t * cols: an embedding
// lookup from a quantized table, each weight as the fp32 kernels multiply it (exact for integer
// codes).
template <class Block>
void decode_rows(const qview<ggml_format<Block>>& w, const int* rows_dev, std::size_t n, float* out_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_decode_rows(kernel::cuda::make_adaptor(w), rows_dev, n, out_dev, stream);
}

// A view of the device copy at `to` of a matrix whose host blob is at `from`.
template <class Block>
qview<ggml_format<Block>> rebase(qview<ggml_format<Block>> v, const void* from, const void* to) {
    v.blocks = reinterpret_cast<const Block*>(static_cast<const std::uint8_t*>(to) +
                                              (reinterpret_cast<const std::uint8_t*>(v.blocks) - static_cast<const std::uint8_t*>(from)));
    return v;
}

}  // namespace cuda
}  // namespace edgeq
