// The reference kernels for llama.cpp's block formats (format/ggml/): plain loops over the
// integer codes of each block, the meaning every other backend is tested against.
//
// int8-activation dot products (gemv_q8): the legacy 32-weight blocks against q8_block (the
// activation block's s = d * sum(q) makes Q4_1/Q5_1's min term exact), the k-quants and IQ4_XS
// against ggml::block_q8_K (its 16-wide sums do the same for Q2_K/Q4_K/Q5_K's mins);
// activation_of<F> (kernel/activation.hpp) names the type.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../core/matrix_view.hpp"
#include "../../format/ggml/decode.hpp"
#include "../../format/ggml/format.hpp"
#include "../../policy/backend.hpp"
#include "../activation.hpp"

namespace edgeq {
namespace kernel {
namespace ggml_ref {

// --- the integer code of every weight of a block (offsets applied, scales not) -----------------

// Written as plain loops over contiguous bytes (one per field and bit position) so that the
// compiler vectorizes them. T is std::int8_t for the integer dot products, float for the fp32 GEMV
// of the SIMD levels (widened straight from the bytes: no int8 round trip through memory).
template <class T>
inline void nibbles(const std::uint8_t* qs, T* q, int offset) {
    for (int j = 0; j < 16; ++j) q[j] = T((qs[j] & 15) - offset);
    for (int j = 0; j < 16; ++j) q[j + 16] = T((qs[j] >> 4) - offset);
}
template <class T>
inline void codes(const ggml::block_q4_0& b, T* q) { nibbles(b.qs, q, 8); }
template <class T>
inline void codes(const ggml::block_q4_1& b, T* q) { nibbles(b.qs, q, 0); }
template <class T>
inline void codes(const ggml::block_iq4_nl& b, T* q) {
    for (int j = 0; j < 16; ++j) q[j] = T(ggml::kvalues_iq4nl(b.qs[j] & 15));
    for (int j = 0; j < 16; ++j) q[j + 16] = T(ggml::kvalues_iq4nl(b.qs[j] >> 4));
}
template <class T>
inline void codes5(const std::uint8_t* qs, const std::uint8_t* qh8, T* q, int offset) {
    const std::uint32_t h = ggml::load_qh(qh8);
    for (int j = 0; j < 32; ++j) q[j] = T((((j < 16 ? qs[j] : qs[j - 16] >> 4) & 15) | (int((h >> j) & 1u) << 4)) - offset);
}
template <class T>
inline void codes(const ggml::block_q5_0& b, T* q) { codes5(b.qs, b.qh, q, 16); }
template <class T>
inline void codes(const ggml::block_q5_1& b, T* q) { codes5(b.qs, b.qh, q, 0); }
template <class T>
inline void codes(const ggml::block_q8_0& b, T* q) {
    for (int j = 0; j < 32; ++j) q[j] = b.qs[j];
}
template <class T>
inline void codes(const ggml::block_q2_K& b, T* q) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) q[128 * h + 32 * k + l] = T((b.qs[32 * h + l] >> (2 * k)) & 3);
}
template <class T>
inline void codes(const ggml::block_q3_K& b, T* q) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l)
                q[128 * h + 32 * k + l] =
                    T((((b.qs[32 * h + l] >> (2 * k)) & 3) | (((b.hmask[l] >> (4 * h + k)) & 1) << 2)) - 4);
}
template <class T>
inline void codes(const ggml::block_q4_K& b, T* q) {
    for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) q[64 * j + l] = T(b.qs[32 * j + l] & 15);
        for (int l = 0; l < 32; ++l) q[64 * j + 32 + l] = T(b.qs[32 * j + l] >> 4);
    }
}
template <class T>
inline void codes(const ggml::block_q5_K& b, T* q) {
    for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) q[64 * j + l] = T((b.qs[32 * j + l] & 15) | (((b.qh[l] >> (2 * j)) & 1) << 4));
        for (int l = 0; l < 32; ++l) q[64 * j + 32 + l] = T((b.qs[32 * j + l] >> 4) | (((b.qh[l] >> (2 * j + 1)) & 1) << 4));
    }
}
template <class T>
inline void codes(const ggml::block_q6_K& b, T* q) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int lo = (b.ql[64 * h + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
                const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = T((lo | (hi << 4)) - 32);
            }
}
template <class T>
inline void codes(const ggml::block_iq4_xs& b, T* q) {
    for (int ib = 0; ib < 8; ++ib) {
        for (int j = 0; j < 16; ++j) q[32 * ib + j] = T(ggml::kvalues_iq4nl(b.qs[16 * ib + j] & 15));
        for (int j = 0; j < 16; ++j) q[32 * ib + j + 16] = T(ggml::kvalues_iq4nl(b.qs[16 * ib + j] >> 4));
    }
}

// --- the float scale and offset of each sub-block: w = dsub * code + msub ------------------------
// Returns the number of sub-blocks (weights / sub-block length).

inline int sub_scales(const ggml::block_q4_0& b, float* d, float*) { return d[0] = b.d.to_float(), 1; }
inline int sub_scales(const ggml::block_q5_0& b, float* d, float*) { return d[0] = b.d.to_float(), 1; }
inline int sub_scales(const ggml::block_q8_0& b, float* d, float*) { return d[0] = b.d.to_float(), 1; }
inline int sub_scales(const ggml::block_iq4_nl& b, float* d, float*) { return d[0] = b.d.to_float(), 1; }
inline int sub_scales(const ggml::block_q4_1& b, float* d, float* m) { return d[0] = b.d.to_float(), m[0] = b.m.to_float(), 1; }
inline int sub_scales(const ggml::block_q5_1& b, float* d, float* m) { return d[0] = b.d.to_float(), m[0] = b.m.to_float(), 1; }
inline int sub_scales(const ggml::block_q2_K& b, float* d, float* m) {
    const float bd = b.d.to_float(), bm = b.dmin.to_float();
    for (int k = 0; k < 16; ++k) d[k] = bd * float(b.scales[k] & 15), m[k] = -(bm * float(b.scales[k] >> 4));
    return 16;
}
inline int sub_scales(const ggml::block_q3_K& b, float* d, float*) {
    const float bd = b.d.to_float();
    for (int k = 0; k < 16; ++k) d[k] = bd * float(ggml::q3k_scale(k, b.scales));
    return 16;
}
template <class B>
int sub_scales_k4(const B& b, float* d, float* m) {
    const float bd = b.d.to_float(), bm = b.dmin.to_float();
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        ggml::k4_scale_min(j, b.scales, sc, mn);
        d[j] = bd * float(sc), m[j] = -(bm * float(mn));
    }
    return 8;
}
inline int sub_scales(const ggml::block_q4_K& b, float* d, float* m) { return sub_scales_k4(b, d, m); }
inline int sub_scales(const ggml::block_q5_K& b, float* d, float* m) { return sub_scales_k4(b, d, m); }
inline int sub_scales(const ggml::block_q6_K& b, float* d, float*) {
    const float bd = b.d.to_float();
    for (int k = 0; k < 16; ++k) d[k] = bd * float(b.scales[k]);
    return 16;
}
inline int sub_scales(const ggml::block_iq4_xs& b, float* d, float*) {
    const float bd = b.d.to_float();
    for (int j = 0; j < 8; ++j) d[j] = bd * float(ggml::iq4xs_scale(j, b));
    return 8;
}
// Weights per sub-block (of sub_scales).
template <class B> struct sub_length : std::integral_constant<int, 32> {};
template <> struct sub_length<ggml::block_q2_K> : std::integral_constant<int, 16> {};
template <> struct sub_length<ggml::block_q3_K> : std::integral_constant<int, 16> {};
template <> struct sub_length<ggml::block_q6_K> : std::integral_constant<int, 16> {};
// Whether the format has an offset term (msub).
template <class B> struct has_min : std::false_type {};
template <> struct has_min<ggml::block_q4_1> : std::true_type {};
template <> struct has_min<ggml::block_q5_1> : std::true_type {};
template <> struct has_min<ggml::block_q2_K> : std::true_type {};
template <> struct has_min<ggml::block_q4_K> : std::true_type {};
template <> struct has_min<ggml::block_q5_K> : std::true_type {};

inline int idot(const std::int8_t* a, const std::int8_t* b, int n) {
    int s = 0;
    for (int i = 0; i < n; ++i) s += int(a[i]) * int(b[i]);
    return s;
}

// --- the integer dot product of nb blocks against their activations ----------------------------

// Q4_0, Q5_0, Q8_0, IQ4_NL: w = d * q.
template <class B>
float vec_dot_symmetric32(const B* w, const q8_block* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[32];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        acc += w[i].d.to_float() * x[i].d * float(idot(q, x[i].qs, 32));
    }
    return acc;
}
inline float vec_dot(const ggml::block_q4_0* w, const q8_block* x, std::size_t nb) { return vec_dot_symmetric32(w, x, nb); }
inline float vec_dot(const ggml::block_q5_0* w, const q8_block* x, std::size_t nb) { return vec_dot_symmetric32(w, x, nb); }
inline float vec_dot(const ggml::block_q8_0* w, const q8_block* x, std::size_t nb) { return vec_dot_symmetric32(w, x, nb); }
inline float vec_dot(const ggml::block_iq4_nl* w, const q8_block* x, std::size_t nb) { return vec_dot_symmetric32(w, x, nb); }

// Q4_1, Q5_1: w = d * q + m, and sum(m * x) = m * s.
template <class B>
float vec_dot_min32(const B* w, const q8_block* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[32];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        acc += w[i].d.to_float() * x[i].d * float(idot(q, x[i].qs, 32)) + w[i].m.to_float() * x[i].s;
    }
    return acc;
}
inline float vec_dot(const ggml::block_q4_1* w, const q8_block* x, std::size_t nb) { return vec_dot_min32(w, x, nb); }
inline float vec_dot(const ggml::block_q5_1* w, const q8_block* x, std::size_t nb) { return vec_dot_min32(w, x, nb); }

inline float vec_dot(const ggml::block_q2_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[256];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        int isum = 0, msum = 0;
        for (int k = 0; k < 16; ++k) {
            isum += (w[i].scales[k] & 15) * idot(q + 16 * k, x[i].qs + 16 * k, 16);
            msum += (w[i].scales[k] >> 4) * int(x[i].bsums[k]);
        }
        acc += x[i].d * (w[i].d.to_float() * float(isum) - w[i].dmin.to_float() * float(msum));
    }
    return acc;
}

inline float vec_dot(const ggml::block_q3_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[256];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        int isum = 0;
        for (int k = 0; k < 16; ++k) isum += ggml::q3k_scale(k, w[i].scales) * idot(q + 16 * k, x[i].qs + 16 * k, 16);
        acc += x[i].d * w[i].d.to_float() * float(isum);
    }
    return acc;
}

// Q4_K, Q5_K: sub-blocks of 32 with a scale and a min each.
template <class B>
float vec_dot_k4(const B* w, const ggml::block_q8_K* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[256];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            ggml::k4_scale_min(j, w[i].scales, sc, m);
            isum += sc * idot(q + 32 * j, x[i].qs + 32 * j, 32);
            msum += m * (int(x[i].bsums[2 * j]) + int(x[i].bsums[2 * j + 1]));
        }
        acc += x[i].d * (w[i].d.to_float() * float(isum) - w[i].dmin.to_float() * float(msum));
    }
    return acc;
}
inline float vec_dot(const ggml::block_q4_K* w, const ggml::block_q8_K* x, std::size_t nb) { return vec_dot_k4(w, x, nb); }
inline float vec_dot(const ggml::block_q5_K* w, const ggml::block_q8_K* x, std::size_t nb) { return vec_dot_k4(w, x, nb); }

inline float vec_dot(const ggml::block_q6_K* w, const ggml::block_q8_K* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[256];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        int isum = 0;
        for (int k = 0; k < 16; ++k) isum += int(w[i].scales[k]) * idot(q + 16 * k, x[i].qs + 16 * k, 16);
        acc += x[i].d * w[i].d.to_float() * float(isum);
    }
    return acc;
}

inline float vec_dot(const ggml::block_iq4_xs* w, const ggml::block_q8_K* x, std::size_t nb) {
    float acc = 0.0f;
    std::int8_t q[256];
    for (std::size_t i = 0; i < nb; ++i) {
        codes(w[i], q);
        int isum = 0;
        for (int j = 0; j < 8; ++j) isum += ggml::iq4xs_scale(j, w[i]) * idot(q + 32 * j, x[i].qs + 32 * j, 32);
        acc += x[i].d * w[i].d.to_float() * float(isum);
    }
    return acc;
}

// fp32 activations: each block decoded, then summed in float.
template <class B>
float vec_dot_f32(const B* w, const float* x, std::size_t nb) {
    float acc = 0.0f, v[B::weights];
    for (std::size_t i = 0; i < nb; ++i) {
        ggml::dequantize_block(w[i], v);
        float s = 0.0f;
        for (int j = 0; j < B::weights; ++j) s += v[j] * x[i * B::weights + j];
        acc += s;
    }
    return acc;
}

}  // namespace ggml_ref

template <class B>
void dequantize_row(backend::scalar, const qview<ggml_format<B>>& w, std::size_t r, float* out) {
    ggml::dequantize_row(w.row_blocks(r), out, w.cols);
}

template <class B>
void gemv_rows(backend::scalar, const qview<ggml_format<B>>& w, const float* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = ggml_ref::vec_dot_f32(w.row_blocks(r), x, nb);
}

// Two overloads, one per activation type, so that each is more specialised than the grouped
// formats' gemv_q8_rows (which takes q8_block for any format).
template <class B>
void gemv_q8_rows(backend::scalar, const qview<ggml_format<B>>& w, const q8_block* x, float* y, std::size_t r0, std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = ggml_ref::vec_dot(w.row_blocks(r), x, nb);
}
template <class B>
void gemv_q8_rows(backend::scalar, const qview<ggml_format<B>>& w, const ggml::block_q8_K* x, float* y, std::size_t r0,
                  std::size_t r1) {
    const std::size_t nb = ggml_format<B>::blocks_per_row(w.cols);
    for (std::size_t r = r0; r < r1; ++r) y[r] = ggml_ref::vec_dot(w.row_blocks(r), x, nb);
}

template <class B>
void gemm_rows(backend::scalar, const qview<ggml_format<B>>& w, matrix_view<const float> x, matrix_view<float> y, std::size_t r0,
               std::size_t r1) {
    for (std::size_t t = 0; t < x.rows; ++t) gemv_rows(backend::scalar{}, w, x.row(t), y.row(t), r0, r1);
}

}  // namespace kernel
}  // namespace edgeq
