// SpQR kernels (format/spqr.hpp) over xsimd::batch<float, Arch>, the front functions for an
// spqr_view (edgeq::dequantize_row, gemv, gemm, as kernels.hpp has for the grouped formats), and
// spqr_linear, the edgeq::linear that holds an SpQR matrix (fp32 activations only).
//
// The dense part runs as the grouped kernels do: chunks unpacked with SWAR, widened to float
// lanes (kernel::widen, AVX2's pmovzx and NEON's vmovl where they exist), fma per group, the
// zero point applied once per group through the group's sum of x (that correction summed in
// lanes). The statistics of a block of StatGroup rows are decoded once per block into floats.
// The outliers (about 1% of a row) add a scalar sparse dot product.
//
// Kept apart from kernels.hpp because spqr_linear needs linear.hpp, which includes kernels.hpp
// (the same arrangement as the dense formats' kernel/simd/dense.hpp).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "../../core/matrix_view.hpp"
#include "../../core/thread_pool.hpp"
#include "../../format/spqr.hpp"
#include "../../kernels.hpp"
#include "../../linear.hpp"
#include "../../policy/backend.hpp"
#include "../backends.hpp"
#include "../scalar/spqr.hpp"
#include "unpack.hpp"
#include "widen.hpp"

namespace edgeq {
namespace kernel {
namespace detail {

// float16 to float for the second-level statistics and the outliers: one instruction where the target has it.
inline float spqr_half(std::uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return half_to_float(h);
#endif
}

// The scales and zeros of one block of StatGroup rows as floats, decoded when a row of another
// block comes: one SWAR unpack and four float16 conversions per group and block, so a row
// reads its statistics as two plain arrays.
template <class F>
class spqr_stats_cache {
   public:
    explicit spqr_stats_cache(std::size_t ng) : ng_(ng), d_(F::stat_group * ng), z_(F::stat_group * ng) {}

    // d[j] and z[j] of row r, for every group j.
    void row(const spqr_view<F>& w, std::size_t r, const float*& d, const float*& z) {
        constexpr int SG = F::stat_group;
        const std::size_t b = r / SG;
        if (b != block_) {
            const typename F::stat_block* blk = w.stats + b * ng_;
            alignas(64) std::uint8_t codes[2 * SG];
            for (std::size_t j = 0; j < ng_; ++j) {
                for (int c = 0; c < 2 * SG; c += chunk_weights)
                    unpack32<F::stat_bits>(blk[j].codes + c / chunk_weights * plane_split<F::stat_bits>::chunk_bytes,
                                           codes + c);
                const float da = spqr_half(blk[j].d_min.bits), ds = spqr_half(blk[j].d_step.bits),
                            za = spqr_half(blk[j].z_min.bits), zs = spqr_half(blk[j].z_step.bits);
                for (int i = 0; i < SG; ++i) {
                    d_[std::size_t(i) * ng_ + j] = da + ds * float(codes[i]);
                    z_[std::size_t(i) * ng_ + j] = za + zs * float(codes[SG + i]);
                }
            }
            block_ = b;
        }
        d = &d_[r % SG * ng_];
        z = &z_[r % SG * ng_];
    }

   private:
    std::size_t ng_;
    std::size_t block_ = std::size_t(-1);
    std::vector<float> d_, z_;
};

// The sparse half with that conversion.
template <class F>
inline float spqr_sparse_dot_fast(const spqr_view<F>& w, std::size_t r, const float* x) {
    float s = 0.0f;
    const std::size_t k0 = w.row_ptr[r], k1 = w.row_ptr[r + 1];
    if (w.index16)
        for (std::size_t k = k0; k < k1; ++k) s += spqr_half(w.values[k]) * x[w.index16[k]];
    else
        for (std::size_t k = k0; k < k1; ++k) s += spqr_half(w.values[k]) * x[w.index32[k]];
    return s;
}

}  // namespace detail

template <class A, class F>
void dequantize_row(backend::simd<A>, const spqr_view<F>& w, std::size_t r, float* out) {
    using f32 = xsimd::batch<float, A>;
    constexpr int L = int(f32::size), n = chunk_weights / L;
    static_assert(F::group % L == 0, "spqr: a group holds whole batches");
    const std::uint8_t* row = w.row_codes(r);
    for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
        alignas(64) std::uint8_t codes[chunk_weights];
        unpack32<F::bits>(row + c / chunk_weights * plane_split<F::bits>::chunk_bytes, codes);
        for (int k = 0; k < n; ++k) {
            const std::size_t j = (c + std::size_t(k * L)) / F::group;
            const float d = w.scale(r, j);
            xsimd::fms(f32(d), widen<A>::u8_to_f32(codes + k * L), f32(d * w.zero(r, j)))
                .store_unaligned(out + c + k * L);
        }
    }
    detail::spqr_sparse_add(w, r, out);
}

template <class A, class F>
void gemv_rows(backend::simd<A>, const spqr_view<F>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr int L = int(f32::size), n = chunk_weights / L, per_group = F::group / L;
    // Groups that end inside a chunk (16) get an accumulator each; longer ones span chunks.
    constexpr int in_chunk = F::group < chunk_weights ? chunk_weights / F::group : 1;
    static_assert(F::group % L == 0, "spqr: a group holds whole batches");
    const std::size_t ng = w.groups_per_row();
    std::vector<float> xs(ng, 0.0f);
    for (std::size_t c = 0; c < w.cols; ++c) xs[c / F::group] += x[c];
    detail::spqr_stats_cache<F> cache(ng);
    for (std::size_t r = r0; r < r1; ++r) {
        const float *d, *z;
        cache.row(w, r, d, z);
        // sum_j d_j z_j xs_j, in lanes: a serial float sum would cost more than the dense part.
        f32 corr(0.0f);
        std::size_t j = 0;
        for (; j + L <= ng; j += L)
            corr =
                xsimd::fma(f32::load_unaligned(d + j) * f32::load_unaligned(z + j), f32::load_unaligned(&xs[j]), corr);
        float correction = xsimd::hadd(corr);
        for (; j < ng; ++j) correction += d[j] * z[j] * xs[j];
        const std::uint8_t* row = w.row_codes(r);
        f32 total[in_chunk], acc(0.0f);
        for (f32& t : total) t = f32(0.0f);
        for (std::size_t c = 0; c < w.cols; c += chunk_weights) {
            alignas(64) std::uint8_t codes[chunk_weights];
            unpack32<F::bits>(row + c / chunk_weights * plane_split<F::bits>::chunk_bytes, codes);
            if (F::group < chunk_weights) {
                // Independent chains per group of the chunk, so the fma latencies overlap.
                for (int g = 0; g < in_chunk; ++g) {
                    f32 a = f32(0.0f);
                    for (int k = g * per_group; k < (g + 1) * per_group; ++k)
                        a = xsimd::fma(widen<A>::u8_to_f32(codes + k * L), f32::load_unaligned(x + c + k * L), a);
                    total[g] = xsimd::fma(f32(d[c / F::group + g]), a, total[g]);
                }
            } else {
                for (int k = 0; k < n; ++k)
                    acc = xsimd::fma(widen<A>::u8_to_f32(codes + k * L), f32::load_unaligned(x + c + k * L), acc);
                if ((c + chunk_weights) % F::group == 0) {
                    total[0] = xsimd::fma(f32(d[c / F::group]), acc, total[0]);
                    acc = f32(0.0f);
                }
            }
        }
        for (int g = 1; g < in_chunk; ++g) total[0] += total[g];
        y[r] = xsimd::hadd(total[0]) - correction + detail::spqr_sparse_dot_fast(w, r, x);
    }
}

// Prompt processing: four rows decoded once (dense and sparse), then every token against them.
// The tag is kept whole so the tile is decoded by the most specific dequantize_row.
template <class B, class F, class A = typename B::arch>
void gemm_rows(B, const spqr_view<F>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t R = 4, L = f32::size;
    const std::size_t cols = w.cols;  // a multiple of 32, so of L
    std::vector<float, xsimd::aligned_allocator<float>> tile(R * cols);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        for (std::size_t i = 0; i < nr; ++i) dequantize_row(B{}, w, rb + i, tile.data() + i * cols);
        for (std::size_t i = nr; i < R; ++i) std::fill(tile.begin() + i * cols, tile.begin() + (i + 1) * cols, 0.0f);
        for (std::size_t t = 0; t < x.rows; ++t) {
            const float* xt = x.row(t);
            f32 a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
            for (std::size_t c = 0; c < cols; c += L) {
                const f32 u = f32::load_unaligned(xt + c);
                a0 = xsimd::fma(f32::load_aligned(tile.data() + c), u, a0);
                a1 = xsimd::fma(f32::load_aligned(tile.data() + cols + c), u, a1);
                a2 = xsimd::fma(f32::load_aligned(tile.data() + 2 * cols + c), u, a2);
                a3 = xsimd::fma(f32::load_aligned(tile.data() + 3 * cols + c), u, a3);
            }
            const float s[R] = {xsimd::hadd(a0), xsimd::hadd(a1), xsimd::hadd(a2), xsimd::hadd(a3)};
            for (std::size_t i = 0; i < nr; ++i) y(t, rb + i) = s[i];
        }
    }
}

}  // namespace kernel

// The front, as kernels.hpp's for a qview: one row decoded, y = W x, Y = X W^T, split over rows.
template <class Backend = backend::best, class F>
void dequantize_row(const spqr_view<F>& w, std::size_t r, float* out) {
    kernel::dequantize_row(Backend{}, w, r, out);
}

template <class Backend = backend::best, class F>
void gemv(const spqr_view<F>& w, const float* x, float* y, thread_pool& pool = default_pool()) {
    // Tasks of whole stat blocks, so each decodes a block's float16 ranges once.
    const std::size_t align = (rows_per_task + F::stat_group - 1) / F::stat_group * F::stat_group;
    pool.parallel_for(w.rows, align,
                      [&](std::size_t r0, std::size_t r1) { kernel::gemv_rows(Backend{}, w, x, y, r0, r1); });
}

template <class Backend = backend::best, class F>
void gemm(const spqr_view<F>& w, matrix_view<const float> x, matrix_view<float> y, thread_pool& pool = default_pool()) {
    if (x.cols != w.cols || y.cols != w.rows || y.rows != x.rows)
        throw error("gemm: shapes do not match (W is " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ")");
    pool.parallel_for(w.rows, rows_per_task,
                      [&](std::size_t r0, std::size_t r1) { kernel::gemm_rows(Backend{}, w, x, y, r0, r1); });
}

// An SpQR matrix as an edgeq::linear: float activations only (has_int8_path() is false), the
// stored blob as storage_data(), the exact bits per weight (outliers and both levels of
// statistics counted), scheme_name() the format's name ("spqr-3bit-g16", the registry's).
template <class F, class Backend = backend::best>
class spqr_linear final : public linear {
   public:
    explicit spqr_linear(spqr_matrix<F> m) : m_(std::move(m)), view_(m_.view()) {}

    std::size_t rows() const override { return m_.rows(); }
    std::size_t cols() const override { return m_.cols(); }
    std::size_t storage_bytes() const override { return m_.storage_bytes(); }
    const std::uint8_t* storage_data() const override { return m_.blob().data(); }
    double bits_per_weight() const override { return m_.bits_per_weight(); }
    std::string scheme_name() const override { return F::name(); }
    const char* backend_name() const override { return Backend::name(); }

    const spqr_matrix<F>& matrix() const { return m_; }
    const spqr_view<F>& view() const { return view_; }

   protected:
    void do_gemv(const float* x, float* y, thread_pool& pool) const override {
        edgeq::gemv<Backend>(view_, x, y, pool);
    }
    void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const override {
        edgeq::gemm<Backend>(view_, x, y, pool);
    }
    void do_dequantize_row(std::size_t r, float* out) const override {
        kernel::dequantize_row(Backend{}, view_, r, out);
    }

   private:
    spqr_matrix<F> m_;
    spqr_view<F> view_;  // the blob does not move with m_ (aligned_buffer owns it on the heap)
};

template <class F, class Backend = backend::best>
std::unique_ptr<linear> make_spqr_linear(spqr_matrix<F> m) {
    return std::unique_ptr<linear>(new spqr_linear<F, Backend>(std::move(m)));
}

// The linear of a stored blob (a GGUF tensor's data), checked by spqr_matrix::from_blob: its
// size against the shape and its nnz, the CSR structure, the float16 fields.
template <class F, class Backend = backend::best>
std::unique_ptr<linear> spqr_linear_from_blob(const std::uint8_t* blob, std::uint64_t bytes, std::size_t rows,
                                              std::size_t cols) {
    if (bytes > std::uint64_t(std::size_t(-1))) throw error(F::name() + ": a blob larger than memory");
    return make_spqr_linear<F, Backend>(spqr_matrix<F>::from_blob(blob, std::size_t(bytes), rows, cols));
}

}  // namespace edgeq
