// Dense-format kernels (format/dense.hpp) over xsimd::batch<float, Arch>, and dense_linear<E>,
// the edgeq::linear that holds a dense matrix.
//
// Elements are widened to float lanes by dense_load<Arch, E> (f32: a plain load; f16 and bf16:
// element by element in the generic version, F16C / a 16-bit shift on AVX2, vcvt / vshll on
// NEON). Every output is one fma chain over the full batches of its row, a horizontal sum, then
// the cols % lanes tail with std::fma in column order. gemv and the small-batch gemm follow
// exactly that order, so they give bit-identical products; batches of dense_packed_min_tokens or
// more take the packed GEMM (kernel/packed_gemm.hpp, 4-5x faster), which sums in 256-column
// slices and so differs by float rounding. Threads split rows only, so the thread count never
// changes a result.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../core/matrix_view.hpp"
#include "../../format/dense.hpp"
#include "../../linear.hpp"
#include "../../policy/backend.hpp"
#include "../backends.hpp"
#include "../packed_gemm.hpp"
#include "../scalar/dense.hpp"

#if EDGEQ_HAS_AVX2 || EDGEQ_HAS_NEON
#if EDGEQ_HAS_NEON
#include <arm_neon.h>
#else
#include <immintrin.h>
#endif
#endif

namespace edgeq {
namespace kernel {

// f32::size elements from p, as floats.
template <class A, class E>
struct dense_load {
    using f32 = xsimd::batch<float, A>;
    static f32 load(const typename E::storage* p) {
        alignas(64) float v[f32::size];
        for (std::size_t i = 0; i < f32::size; ++i) v[i] = E::to_float(p[i]);
        return f32::load_aligned(v);
    }
};
template <class A>
struct dense_load<A, dense_f32> {
    using f32 = xsimd::batch<float, A>;
    static f32 load(const float* p) { return f32::load_unaligned(p); }
};

#if EDGEQ_HAS_AVX2
template <>
struct dense_load<xsimd::fma3<xsimd::avx2>, dense_bf16> {
    using f32 = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
    static f32 load(const std::uint16_t* p) {
        const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    }
};
#if defined(__F16C__)
template <>
struct dense_load<xsimd::fma3<xsimd::avx2>, dense_f16> {
    using f32 = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
    static f32 load(const std::uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};
#endif
#endif

#if EDGEQ_HAS_NEON
template <>
struct dense_load<xsimd::neon64, dense_bf16> {
    using f32 = xsimd::batch<float, xsimd::neon64>;
    static f32 load(const std::uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
};
template <>
struct dense_load<xsimd::neon64, dense_f16> {
    using f32 = xsimd::batch<float, xsimd::neon64>;
    static f32 load(const std::uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
};
#endif

template <class A, class E>
void dequantize_row(backend::simd<A>, const dense_view<E>& w, std::size_t r, float* out) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t L = f32::size;
    const typename E::storage* p = w.row(r);
    std::size_t c = 0;
    for (; c + L <= w.cols; c += L) dense_load<A, E>::load(p + c).store_unaligned(out + c);
    for (; c < w.cols; ++c) out[c] = E::to_float(p[c]);
}

template <class A, class E>
void gemv_rows(backend::simd<A>, const dense_view<E>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    using load = dense_load<A, E>;
    constexpr std::size_t L = f32::size;
    const std::size_t n = w.cols / L * L;
    auto tail = [&](const typename E::storage* p, float s) {
        for (std::size_t c = n; c < w.cols; ++c) s = std::fma(E::to_float(p[c]), x[c], s);
        return s;
    };
    std::size_t r = r0;
    // Four rows at a time: four independent fma chains, each row still summed in column order.
    for (; r + 4 <= r1; r += 4) {
        const typename E::storage *p0 = w.row(r), *p1 = w.row(r + 1), *p2 = w.row(r + 2), *p3 = w.row(r + 3);
        f32 a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
        for (std::size_t c = 0; c < n; c += L) {
            const f32 xv = f32::load_unaligned(x + c);
            a0 = xsimd::fma(load::load(p0 + c), xv, a0);
            a1 = xsimd::fma(load::load(p1 + c), xv, a1);
            a2 = xsimd::fma(load::load(p2 + c), xv, a2);
            a3 = xsimd::fma(load::load(p3 + c), xv, a3);
        }
        y[r] = tail(p0, xsimd::hadd(a0));
        y[r + 1] = tail(p1, xsimd::hadd(a1));
        y[r + 2] = tail(p2, xsimd::hadd(a2));
        y[r + 3] = tail(p3, xsimd::hadd(a3));
    }
    for (; r < r1; ++r) {
        const typename E::storage* p = w.row(r);
        f32 acc(0.0f);
        for (std::size_t c = 0; c < n; c += L) acc = xsimd::fma(load::load(p + c), f32::load_unaligned(x + c), acc);
        y[r] = tail(p, xsimd::hadd(acc));
    }
}

// Batches of at least this many tokens take the packed GEMM (kernel/packed_gemm.hpp); smaller
// ones the band kernel below, which agrees with gemv bit for bit.
constexpr std::size_t dense_packed_min_tokens = 16;

// Y = X W^T for rows r0 .. r1 of W, packed: A = X (tokens x cols), B = W^T, whose strips are W's
// rows widened to floats (f16/bf16 decoded here, once per K slice). Every output is the fma chain
// of each 256-column slice in order, the slices added in order, whatever the thread split.
template <class A, class E>
void gemm_rows_packed(backend::simd<A>, const dense_view<E>& w, matrix_view<const float> x, matrix_view<float> y,
                      std::size_t r0, std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t L = f32::size, nr = packed::tile_nr<float>(backend::simd<A>{});
    alignas(64) float row[packed::kc];
    auto pack_a = [&](std::size_t i0, std::size_t m, std::size_t k0, std::size_t kn, float* dst) {
        packed::pack_rows_as_strips(packed::mr, i0, m, k0, kn, [&](std::size_t t) { return x.row(t); }, dst);
    };
    auto pack_b = [&](std::size_t j0, std::size_t n, std::size_t k0, std::size_t kn, float* dst) {
        for (std::size_t s = 0; s < n; s += nr, dst += kn * nr)
            for (std::size_t j = 0; j < nr; ++j) {
                if (s + j >= n) {
                    for (std::size_t k = 0; k < kn; ++k) dst[k * nr + j] = 0.0f;
                    continue;
                }
                const typename E::storage* p = w.row(r0 + j0 + s + j) + k0;
                std::size_t k = 0;
                for (; k + L <= kn; k += L) dense_load<A, E>::load(p + k).store_aligned(row + k);
                for (; k < kn; ++k) row[k] = E::to_float(p[k]);
                for (k = 0; k < kn; ++k) dst[k * nr + j] = row[k];
            }
    };
    auto merge = [&](std::size_t i, std::size_t j, std::size_t m, std::size_t n, bool first, const float* tile) {
        for (std::size_t a = 0; a < m; ++a) {
            float* out = y.row(i + a) + r0 + j;
            const float* t = tile + a * nr;
            if (n == nr) {
                for (std::size_t c = 0; c < nr; c += L) {
                    const f32 v = f32::load_aligned(t + c);
                    (first ? v : v + f32::load_unaligned(out + c)).store_unaligned(out + c);
                }
            } else {
                for (std::size_t c = 0; c < n; ++c) out[c] = first ? t[c] : out[c] + t[c];
            }
        }
    };
    packed::gemm<float>(backend::simd<A>{}, x.rows, r1 - r0, w.cols, pack_a, pack_b, merge);
}

// Prompt processing, GEMM-shaped: a band of four rows (widened to floats once, f32 read in
// place) times three tokens at a time, twelve accumulators, over slices of 512 columns so that
// the band's slice and the tokens' slices stay in L1. Each accumulator is parked in `acc`
// between slices, so every output is still one fma chain in column order, then the same
// horizontal sum and tail as gemv_rows: the prompt path and the decode path agree bit for bit.
template <class A, class E>
void gemm_rows_band(backend::simd<A>, const dense_view<E>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
                    std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t R = 4, T = 3, L = f32::size, slice = 512;
    const std::size_t cols = w.cols, n = cols / L * L, tokens = x.rows;
    const bool widen = !std::is_same<E, dense_f32>::value;
    std::vector<float> tile(widen ? R * cols : 0);
    std::vector<f32, xsimd::aligned_allocator<f32>> acc(tokens * R);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        const float* rows[R];
        for (std::size_t i = 0; i < R; ++i) {
            const std::size_t r = rb + std::min(i, nr - 1);  // a short band repeats its last row
            if (widen) {
                if (i < nr) dequantize_row(backend::simd<A>{}, w, r, tile.data() + i * cols);
                rows[i] = tile.data() + std::min(i, nr - 1) * cols;
            } else {
                rows[i] = reinterpret_cast<const float*>(w.row(r));
            }
        }
        std::fill(acc.begin(), acc.end(), f32(0.0f));
        for (std::size_t c0 = 0; c0 < n; c0 += slice) {
            const std::size_t c1 = std::min(n, c0 + slice);
            std::size_t t = 0;
            for (; t + T <= tokens; t += T) {
                const float* xs[T] = {x.row(t), x.row(t + 1), x.row(t + 2)};
                f32 a[T][R];
                for (std::size_t k = 0; k < T; ++k)
                    for (std::size_t i = 0; i < R; ++i) a[k][i] = acc[(t + k) * R + i];
                for (std::size_t c = c0; c < c1; c += L) {
                    const f32 u0 = f32::load_unaligned(xs[0] + c), u1 = f32::load_unaligned(xs[1] + c),
                              u2 = f32::load_unaligned(xs[2] + c);
                    for (std::size_t i = 0; i < R; ++i) {
                        const f32 wv = f32::load_unaligned(rows[i] + c);
                        a[0][i] = xsimd::fma(wv, u0, a[0][i]);
                        a[1][i] = xsimd::fma(wv, u1, a[1][i]);
                        a[2][i] = xsimd::fma(wv, u2, a[2][i]);
                    }
                }
                for (std::size_t k = 0; k < T; ++k)
                    for (std::size_t i = 0; i < R; ++i) acc[(t + k) * R + i] = a[k][i];
            }
            for (; t < tokens; ++t) {
                const float* xt = x.row(t);
                for (std::size_t i = 0; i < R; ++i) {
                    f32 a = acc[t * R + i];
                    for (std::size_t c = c0; c < c1; c += L) a = xsimd::fma(f32::load_unaligned(rows[i] + c), f32::load_unaligned(xt + c), a);
                    acc[t * R + i] = a;
                }
            }
        }
        for (std::size_t t = 0; t < tokens; ++t) {
            const float* xt = x.row(t);
            for (std::size_t i = 0; i < nr; ++i) {
                float s = xsimd::hadd(acc[t * R + i]);
                for (std::size_t c = n; c < cols; ++c) s = std::fma(rows[i][c], xt[c], s);
                y(t, rb + i) = s;
            }
        }
    }
}

template <class A, class E>
void gemm_rows(backend::simd<A>, const dense_view<E>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    if (x.rows >= dense_packed_min_tokens) return gemm_rows_packed(backend::simd<A>{}, w, x, y, r0, r1);
    gemm_rows_band(backend::simd<A>{}, w, x, y, r0, r1);
}

}  // namespace kernel

// The dense formats as an edgeq::linear. scheme_name() is "f32", "f16" or "bf16".
template <class E, class Backend = backend::best>
class dense_linear final : public linear {
   public:
    explicit dense_linear(dense_matrix<E> m) : m_(std::move(m)), view_(m_.view()) {}

    std::size_t rows() const override { return m_.rows(); }
    std::size_t cols() const override { return m_.cols(); }
    std::size_t storage_bytes() const override { return m_.storage_bytes(); }
    const std::uint8_t* storage_data() const override { return reinterpret_cast<const std::uint8_t*>(m_.data()); }
    double bits_per_weight() const override { return 8.0 * double(sizeof(typename E::storage)); }
    std::string scheme_name() const override { return E::name(); }
    const char* backend_name() const override { return Backend::name(); }
    const dense_view<E>& view() const { return view_; }

   protected:
    void do_gemv(const float* x, float* y, thread_pool& pool) const override {
        pool.parallel_for(view_.rows, rows_per_task,
                          [&](std::size_t r0, std::size_t r1) { kernel::gemv_rows(Backend{}, view_, x, y, r0, r1); });
    }
    void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const override {
        // The packed kernel repacks X per task: fewer, taller tasks for large batches.
        pool.parallel_for(view_.rows, x.rows >= kernel::dense_packed_min_tokens ? 4 * rows_per_task : rows_per_task,
                          [&](std::size_t r0, std::size_t r1) { kernel::gemm_rows(Backend{}, view_, x, y, r0, r1); });
    }
    void do_dequantize_row(std::size_t r, float* out) const override { kernel::dequantize_row(Backend{}, view_, r, out); }

   private:
    dense_matrix<E> m_;
    dense_view<E> view_;
};

// A dense linear of float weights w, stored as E.
template <class E, class Backend = backend::best>
std::unique_ptr<linear> make_dense_linear(matrix_view<const float> w) {
    return std::unique_ptr<linear>(new dense_linear<E, Backend>(dense_matrix<E>::from_float(w)));
}

// The same with the element type by name: "f32", "f16" or "bf16".
inline std::unique_ptr<linear> make_dense_linear(const std::string& type, matrix_view<const float> w) {
    if (type == "f32") return make_dense_linear<dense_f32>(w);
    if (type == "f16") return make_dense_linear<dense_f16>(w);
    if (type == "bf16") return make_dense_linear<dense_bf16>(w);
    throw error("make_dense_linear: unknown dense type '" + type + "' (f32, f16 or bf16)");
}

inline bool is_dense_type(const std::string& type) { return type == "f32" || type == "f16" || type == "bf16"; }

}  // namespace edgeq
