// GEMV and GEMM y = W x on a CUDA device for every grouped format (format/grouped.hpp):
//
//     edgeq::cuda::gemv(w, x_dev, y_dev, stream);                       // x, y: float or __half
//     edgeq::cuda::gemv(edgeq::backend::cuda_sm53{}, w, x_dev, y_dev, stream);  // gemv_config<53>
//     edgeq::cuda::gemm(w, x_dev, y_dev, n, stream);   // n tokens: x is n x cols, y is n x rows
//
// w is a qview whose pointers are device pointers (edgeq::cuda::rebase() turns a host view of a
// blob into one of its device copy); x and y are in device memory. Calls are asynchronous on
// `stream`; launch errors and unusable arguments throw edgeq::error.
//
// C++14 for nvcc >= 10.2 (sm_53, the Jetson Nano, upwards): no Boost.Hana, no xsimd, no
// cuda_bf16.h. The kernels are gemv_core.cuh (batch <= 16) and gemm.cuh (larger batches); this
// file says how a 32-weight chunk of a grouped format is loaded and decoded.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../format/grouped.hpp"
#include "../../format/mantissa3.hpp"
#include "../../policy/backend.hpp"
#include "codebook.cuh"
#include "gemm.cuh"
#include "gemv_core.cuh"
#include "gemv_exact.cuh"
#include "unpack.cuh"

namespace edgeq {
namespace kernel {
namespace cuda {

// A group's scale: fp16 through the read-only cache and the hardware conversion; fp32 and
// double-quantized scales as qview decodes them.
template <class F, class S>
__device__ __forceinline__ float group_scale(const qview<F>& w, std::size_t i, S) {
    return w.scale_at(i);
}
template <class F>
__device__ __forceinline__ float group_scale(const qview<F>& w, std::size_t i, fp16_t) {
    return __half2float(__ushort_as_half(__ldg(&w.scales[i].bits)));
}

// A unit is one packed chunk (core/bitpack.hpp): 32 consecutive weights of one group.
template <class F>
struct grouped_adaptor {
    static constexpr int bits = F::bits;
    static constexpr int chunk_bytes = plane_split<bits>::chunk_bytes;
    // Up to 4-bit codes |q - z| <= 15: 16 half products of x / 16 stay finite for |x| < 4000.
    // Wider codes: x / 256 and each run of 4 products goes to fp32 on its own.
    static constexpr int x_shift = bits <= 4 ? 4 : 8;
    static constexpr bool fp32_runs = bits > 4;
    static constexpr bool needs_xsum = false;
    static constexpr bool contiguous = true;
    // Batch 1 decodes 4-bit chunks in an order that suits their bytes (gemv_core.cuh, x_order):
    // uniform codes with lop3 in nibble pair order (nibbles_paired; below sm_90, as
    // gemv_config::nibble_pairs says), code-book codes a byte at a time (decode_paired).
    static constexpr x_order staged_order =
        !F::is_uniform ? x_order::byte_pairs : bits == 4 ? x_order::nibble_pairs : x_order::columns;
    // Batch 1: rows per warp chosen per matrix (launch_staged_auto); measured best for these.
    static constexpr bool auto_rows = true;
    static constexpr bool row_extra = false;  // no per-row term beyond the units
    // Teams of warps per row (gemv_config, as measured): 2-, 3- and 4-bit chunks (8, 12, 16
    // bytes: few bytes in flight per lane) on long rows, 3-bit on every matrix that fits one
    // wave, 2- and 4-bit (NF4 too) also from rows of 128 units and on short rows that fit two
    // waves (H100, int4-g128 / nf4-g64-dq / int2-g128: 2048 x 5632 -14% / -28% / -12% of the
    // time, 5632 x 2048 -16% / -18% / -18%, 4096 x 4096 -8% / -11% / +5%, the large shapes
    // unchanged); wider codes only on small matrices.
    static constexpr int team_mode = bits == 3 ? 2 : bits <= 4 ? 3 : 0;
    // 8-bit: a row per warp in blocks of 32 warps (int8-g32 at 4096 x 11008: 2546 GB/s, 2456 with 16).
    static constexpr bool wide_rows = bits == 8;
    static constexpr int groups = 1;
    // Exact half sums (gemv_exact.cuh): the largest |q - z| of integer codes; none for code books.
    static constexpr int code_max = !F::is_uniform ? 0 : F::asymmetric ? (1 << bits) - 1 : 1 << (bits - 1);
    // NF4: a pair of codes (one byte of two nibbles) to a half2 of code-book values.
    static constexpr int table_size = F::is_uniform ? 0 : 256;
    static_assert(F::is_uniform || bits == 4, "cuda: the code-book kernels are written for 4-bit codes (NF4)");

    struct raw {
        std::uint32_t words[bits];
        float scale;
        int zero;
    };

    qview<F> w;
    std::size_t rows, cols, units;

    __device__ static __half2 table_entry(int i) {
        return __floats2half2_rn(F::code_value(i & 15), F::code_value(i >> 4));
    }
    // Code books in fp32 sums (gemv_core.cuh, exact_lo_of): what table_entry's rounding to half left.
    static constexpr bool exact_lo = !F::is_uniform;
    __device__ static __half2 table_entry_lo(int i) {
        const float a = F::code_value(i & 15), b = F::code_value(i >> 4);
        return __floats2half2_rn(a - __half2float(__float2half_rn(a)), b - __half2float(__float2half_rn(b)));
    }
    // The lo halves in decode()'s order (columns) and in decode_paired()'s (a byte's two codes).
    __device__ void decode_lo(const raw& in, const __half2* lo, __half2 (&v)[16]) const {
        decode_codes(in, lo, v, std::false_type{});
    }
    __device__ void decode_paired_lo(const raw& in, const __half2* lo, __half2 (&v)[16]) const {
        book_pairs(codebook_regs::of<F, true>(), in, lo, v);
    }
    __device__ std::size_t x_run(std::size_t u, int i) const { return 32 * u + 8 * std::size_t(i); }

    __device__ const std::uint8_t* unit_bytes(std::size_t r, std::size_t u) const { return w.row_codes(r) + u * chunk_bytes; }
    __device__ void load(std::size_t r, std::size_t u, raw& out) const {
        load_chunk<bits>(w.row_codes(r) + u * chunk_bytes, out.words);
        const std::size_t g = F::group ? std::size_t(unsigned(u) / unsigned(F::group / 32)) : 0;
        const std::size_t gi = r * (cols / (F::group ? std::size_t(F::group) : cols)) + g;
        out.scale = group_scale(w, gi, typename F::scale_type{});
        out.zero = F::asymmetric ? int(__ldg(w.zeros + gi)) : F::implicit_zero;
    }

    __device__ void decode(const raw& in, const __half2* table, __half2 (&v)[16], float (&s)[1], float& m) const {
        s[0] = in.scale;
        m = 0.0f;
        decode_codes(in, table, v, std::integral_constant<bool, F::is_uniform>{});
    }

    __device__ void decode_paired(const raw& in, const __half2* table, __half2 (&v)[16], float (&s)[1], float& m) const {
        s[0] = in.scale;
        m = 0.0f;
        paired_codes(in, table, v, std::integral_constant<bool, F::is_uniform>{});
    }

   private:
    __device__ static void paired_codes(const raw& in, const __half2*, __half2 (&v)[16], std::true_type) {
        nibbles_paired(in.words, float(in.zero), v);
    }
    // Code book, byte pair order: words 0 and 1 looked up in registers, 2 and 3 in the shared
    // table, so that integer instructions and shared loads share the work (codebook.cuh; H100,
    // 11008 x 4096: all through the table 47% of the copy bandwidth, all in registers 54%, this 63%).
    __device__ static void paired_codes(const raw& in, const __half2* table, __half2 (&v)[16], std::false_type) {
        book_pairs(codebook_regs::of<F>(), in, table, v);
    }
    // `book` and `table` hold the same values (the code book, or its lo halves).
    __device__ static void book_pairs(const codebook_regs& book, const raw& in, const __half2* table, __half2 (&v)[16]) {
#pragma unroll
        for (int m = 0; m < 2; ++m) codebook_word(book, in.words[m], v + 4 * m);
#pragma unroll
        for (int m = 2; m < 4; ++m) {
            const std::uint32_t w = in.words[m];
            v[4 * m] = table[w & 0xffu];
            v[4 * m + 1] = table[(w >> 8) & 0xffu];
            v[4 * m + 2] = table[(w >> 16) & 0xffu];
            v[4 * m + 3] = table[w >> 24];
        }
    }
    __device__ static void decode_codes(const raw& in, const __half2*, __half2 (&v)[16], std::true_type) {
        const __half2 off = __float2half2_rn(float(1024 + in.zero));
#pragma unroll
        for (int t = 0; t < 8; ++t) bytes_to_h2(codes4<bits>(in.words, t), off, v[2 * t], v[2 * t + 1]);
    }
    __device__ static void decode_codes(const raw& in, const __half2* table, __half2 (&v)[16], std::false_type) {
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const std::uint32_t c = codes4<bits>(in.words, t);
            v[2 * t] = table[(c | (c >> 4)) & 0xffu];
            v[2 * t + 1] = table[((c >> 16) | (c >> 20)) & 0xffu];
        }
    }
};

template <class F>
grouped_adaptor<F> make_adaptor(const qview<F>& w) {
    if (!w.codes || !w.scales) throw error("cuda: a null matrix pointer");
    if (F::asymmetric && !w.zeros) throw error("cuda: an asymmetric format without zero points");
    if (F::is_double_quant && !w.dq_factors) throw error("cuda: a double-quantized format without its block factors");
    // load_chunk() reads whole chunks with 16-, 8- or 4-byte vector loads.
    if (reinterpret_cast<std::uintptr_t>(w.codes) % 16) throw error("cuda: the codes must be 16-byte aligned");
    grouped_adaptor<F> a;
    a.w = w;
    a.rows = w.rows;
    a.cols = w.cols;
    a.units = w.cols / chunk_weights;
    return a;
}

// int3 with its codes in half mantissas (format/mantissa3.hpp): per word three masks, one shift
// and two masks, and the pair in the words' top bits; pairs in column order. Launched with
// teams of warps on more shapes than the plane layout (team_mode 3, gemv_config).
template <class F>
struct mantissa3_adaptor : grouped_adaptor<F> {
    using typename grouped_adaptor<F>::raw;
    static constexpr x_order staged_order = x_order::columns;
    static constexpr int team_mode = 3;

    __device__ void decode(const raw& in, const __half2*, __half2 (&v)[16], float (&s)[1], float& m) const {
        s[0] = in.scale;
        m = 0.0f;
        // Slot k holds 1024 + 8^k c: subtract 1024 + z, or scale by 8^-k and subtract 1024 8^-k + z.
        const float z = float(in.zero);
        const __half2 off0 = __float2half2_rn(1024.0f + z), off1 = __float2half2_rn(-128.0f - z), off2 = __float2half2_rn(-16.0f - z);
        const __half2 eighth = __float2half2_rn(0.125f), sixty_fourth = __float2half2_rn(0.015625f);
        const std::uint32_t bias = 0x64006400u;
#pragma unroll
        for (int j = 0; j < 3; ++j) {
            const std::uint32_t w = in.words[j], t = w >> 9;
            v[5 * j] = __hsub2(as_half2((w & 0x00070007u) | bias), off0);
            v[5 * j + 1] = __hfma2(as_half2((w & 0x00380038u) | bias), eighth, off1);
            v[5 * j + 2] = __hfma2(as_half2((w & 0x01c001c0u) | bias), sixty_fourth, off2);
            v[5 * j + 3] = __hsub2(as_half2((t & 0x00070007u) | bias), off0);
            v[5 * j + 4] = __hfma2(as_half2((t & 0x00380038u) | bias), eighth, off1);
        }
        const std::uint32_t top = ((in.words[0] >> 15) & 0x00010001u) | ((in.words[1] >> 14) & 0x00020002u) |
                                  ((in.words[2] >> 13) & 0x00040004u) | bias;
        v[15] = __hsub2(as_half2(top), off0);
    }
};

template <class F>
mantissa3_adaptor<F> make_adaptor(const qview<mantissa3<F>>& w) {
    mantissa3_adaptor<F> a;
    static_cast<grouped_adaptor<F>&>(a) = make_adaptor(relabel<F>(w));
    return a;
}

}  // namespace cuda
}  // namespace kernel

namespace cuda {

// y = W x on the device, asynchronously on `stream`. W's pointers, x and y are device pointers;
// x is float or __half (cols values), y float or __half (rows values).
template <class F, class XT, class YT>
void gemv(const qview<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}

// The same with the launch shape tuned for one SM generation (backend::cuda_sm53, cuda_sm90).
template <int SM, class F, class XT, class YT>
void gemv(backend::cuda<SM>, const qview<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1<kernel::cuda::gemv_config<SM>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}

// The same in fp32 sums: the CPU's up to their order. On tensor cores from sm_80 (gemv_mma.cuh,
// fp32 x and y), else in fp32 FMAs (gemv_core.cuh, gemv_fp32_kernel, slower).
template <class F, class XT, class YT>
void gemv(fp32_sums_t, const qview<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    if (w.rows == 0) return;
    kernel::cuda::launch_gemv1_accurate(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}

// The same in half2 arithmetic with exact sums of the activations' integer parts (gemv_exact.cuh):
// integer codes; NF4 takes fp32 sums.
template <class F, class XT, class YT>
void gemv(exact_half_sums_t, const qview<F>& w, const XT* x_dev, YT* y_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_gemv1_exact<kernel::cuda::gemv_config<0>>(kernel::cuda::make_adaptor(w), x_dev, y_dev, stream);
}

// Y = X W^T for n tokens: x is n x cols (row-major), y is n x rows.
template <class F, class XT, class YT>
void gemm(const qview<F>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    kernel::cuda::launch_gemm(kernel::cuda::make_adaptor(w), x_dev, y_dev, n, stream);
}

// The same in fp32 sums for every n (the tiled kernel; gemm.cuh, launch_gemm_fp32).
template <class F, class XT, class YT>
void gemm(fp32_sums_t, const qview<F>& w, const XT* x_dev, YT* y_dev, std::size_t n, cudaStream_t stream = 0) {
    if (w.rows == 0 || n == 0) return;
    kernel::cuda::launch_gemm_fp32(kernel::cuda::make_adaptor(w), x_dev, y_dev, n, stream);
}

// Rows rows_dev[t] (t < n, device memory) of W in fp32 at out_dev + t * cols: an embedding
// lookup from a quantized table, each weight as the fp32 kernels multiply it (what the CPU
// decodes, to fp32 rounding).
template <class F>
void decode_rows(const qview<F>& w, const int* rows_dev, std::size_t n, float* out_dev, cudaStream_t stream = 0) {
    kernel::cuda::launch_decode_rows(kernel::cuda::make_adaptor(w), rows_dev, n, out_dev, stream);
}

// A view of the copy of a blob at `to` (e.g. a device buffer) from a view of the blob at `from`:
// every section keeps its offset. dq_mean, read from the host blob, is kept.
template <class F>
qview<F> rebase(qview<F> v, const void* from, const void* to) {
    const auto moved = [&](const void* p) -> const void* {
        return p ? static_cast<const std::uint8_t*>(to) + (static_cast<const std::uint8_t*>(p) - static_cast<const std::uint8_t*>(from))
                 : nullptr;
    };
    v.codes = static_cast<const std::uint8_t*>(moved(v.codes));
    v.scales = static_cast<const typename F::scale_type*>(moved(v.scales));
    v.zeros = static_cast<const std::uint8_t*>(moved(v.zeros));
    v.dq_factors = static_cast<const float*>(moved(v.dq_factors));
    return v;
}

}  // namespace cuda
}  // namespace edgeq
