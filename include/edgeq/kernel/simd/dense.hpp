// Dense-format kernels (format/dense.hpp) over xsimd::batch<float, Arch>, and dense_linear<E>,
// the edgeq::linear that holds a dense matrix.
//
// Elements are widened to float lanes by dense_load<Arch, E> (f32: a plain load; f16 and bf16:
// element by element in the generic version, F16C / a 16-bit shift on AVX2, vcvt / vshll on
// NEON). Every output is one fma chain over the full batches of its row, a horizontal sum, then
// the cols % lanes tail with std::fma in column order. gemv and gemm follow exactly that order,
// so the prompt path and the decode path give bit-identical products, and threads split rows
// only, so the thread count never changes a result.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"
#include "../../core/error.hpp"
#include "../../core/matrix_view.hpp"
#include "../../format/dense.hpp"
#include "../../linear.hpp"
#include "../../policy/backend.hpp"
#include "../backends.hpp"
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

// Prompt processing: four rows widened to a float tile once, then two tokens by four rows per
// step, each output in the same order as gemv_rows.
template <class A, class E>
void gemm_rows(backend::simd<A>, const dense_view<E>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    using f32 = xsimd::batch<float, A>;
    constexpr std::size_t R = 4, L = f32::size;
    const std::size_t cols = w.cols, n = cols / L * L;
    std::vector<float> tile(R * cols);
    for (std::size_t rb = r0; rb < r1; rb += R) {
        const std::size_t nr = std::min(R, r1 - rb);
        for (std::size_t i = 0; i < nr; ++i) dequantize_row(backend::simd<A>{}, w, rb + i, tile.data() + i * cols);
        std::size_t t = 0;
        for (; t + 2 <= x.rows; t += 2) {
            const float* x0 = x.row(t);
            const float* x1 = x.row(t + 1);
            f32 a0[R], a1[R];
            for (std::size_t i = 0; i < R; ++i) a0[i] = a1[i] = f32(0.0f);
            for (std::size_t c = 0; c < n; c += L) {
                const f32 u0 = f32::load_unaligned(x0 + c), u1 = f32::load_unaligned(x1 + c);
                for (std::size_t i = 0; i < nr; ++i) {
                    const f32 wv = f32::load_unaligned(tile.data() + i * cols + c);
                    a0[i] = xsimd::fma(wv, u0, a0[i]);
                    a1[i] = xsimd::fma(wv, u1, a1[i]);
                }
            }
            for (std::size_t i = 0; i < nr; ++i) {
                const float* wr = tile.data() + i * cols;
                float s0 = xsimd::hadd(a0[i]), s1 = xsimd::hadd(a1[i]);
                for (std::size_t c = n; c < cols; ++c) {
                    s0 = std::fma(wr[c], x0[c], s0);
                    s1 = std::fma(wr[c], x1[c], s1);
                }
                y(t, rb + i) = s0;
                y(t + 1, rb + i) = s1;
            }
        }
        for (; t < x.rows; ++t) {
            const float* xt = x.row(t);
            for (std::size_t i = 0; i < nr; ++i) {
                const float* wr = tile.data() + i * cols;
                f32 a(0.0f);
                for (std::size_t c = 0; c < n; c += L) a = xsimd::fma(f32::load_unaligned(wr + c), f32::load_unaligned(xt + c), a);
                float s = xsimd::hadd(a);
                for (std::size_t c = n; c < cols; ++c) s = std::fma(wr[c], xt[c], s);
                y(t, rb + i) = s;
            }
        }
    }
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
        pool.parallel_for(view_.rows, rows_per_task,
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
