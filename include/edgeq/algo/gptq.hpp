// GPTQ (Frantar et al., 2022): quantizes a linear layer's weights column by column and moves the
// columns not yet quantized to absorb each column's error, as the layer's input statistics
// H = 2 X^T X / n say (algo/hessian.hpp). Generic over the storage format through
// group_codec<Format> (algo/group_codec.hpp, algo/ggml/codes.hpp): every grouped format (int2-8,
// any group, symmetric or not, NF4) and every llama.cpp block type.
//
//     const auto q = gptq_quantize<format_of<S>>(w, H.data(), opt);   // qmatrix, as quantize<S>
//
// Conventions, as the reference implementation (IST-DASLab/gptq):
//   - dead inputs: H_ii == 0 sets H_ii = 1 and the weight column to 0;
//   - dampening: damp * mean(diag H) is added to the diagonal (default 1%); if H is still not
//     positive definite the dampening is multiplied by 10, up to three times;
//   - lazy batches: columns in blocks of 128; inside a block the update is applied column by
//     column, to the rest of the matrix once per block (a rank-128 update);
//   - groups: a group's parameters are fitted when the sweep reaches its first column, on the
//     weights as updated so far; with static_groups every group is fitted on the original weights
//     first. act_order (columns by decreasing H_ii) implies static groups, so the groups stay
//     runs of consecutive original columns and the stored layout is the plain format's;
//   - llama.cpp types: at a block's first column the type's own quantizer fits the block's scales
//     on the current weights; each weight then takes the nearest code under those scales.
//
// The algebra. The reference factors U = chol(H^-1) (upper) and, after quantizing column i,
// subtracts (w_i - q_i) / U_ii * U_i,j from every later column j. With H = R R^T (R upper, the
// Cholesky factor of H taken from the last row up), U = R^-1, and the same sweep reads
//     v_j = w_j + sum_{k<j} (w_k - q_k) R_kj / R_jj
// with w the original weights and v the value column j has when it is quantized. So one Cholesky
// of H (n^3/3) replaces the reference's Cholesky, inverse and second Cholesky, and the corrections
// are sums over the original weights' errors, not over a chain of updated values. The proxy loss
//     sum_k ((v_k - q_k) R_kk)^2 = tr((W - Q) H (W - Q)^T)   (H dampened)
// comes out of the sweep for free (report.loss).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "../format/qmatrix.hpp"
#include "../scheme.hpp"
#include "ggml/codes.hpp"
#include "group_codec.hpp"
#include "linalg.hpp"
#include "rtn.hpp"

namespace edgeq {

struct gptq_options {
    double damp = 0.01;           // fraction of mean(diag H) added to the diagonal
    std::size_t block = 128;      // lazy-batch width (columns)
    bool act_order = false;       // quantize columns by decreasing H_ii (implies static_groups)
    bool static_groups = false;   // fit all groups on the original weights before the sweep
    quant_options quant;          // the format's fit options: clip search, importance per column
};

struct gptq_report {
    double loss = 0.0;            // tr((W - Q) H (W - Q)^T) with the dampened H
    double damp = 0.0;            // the dampening used (after any retries)
    std::size_t dead = 0;         // inputs with H_ii == 0
    double factor_seconds = 0.0;  // dead columns, static groups, order, H's Cholesky factor
    double sweep_seconds = 0.0;   // fitting and quantizing the columns
};

namespace detail {

// R with H = R R^T, R upper: the lower Cholesky factor of H with rows and columns reversed.
// Returns the strictly upper part divided by its column's diagonal (S_kj = R_kj / R_jj, float,
// what the sweep multiplies by) and the diagonal; false if H is not positive definite.
inline bool gptq_factor_reversed(std::vector<double>& a, std::size_t n, std::vector<float>& s, std::vector<double>& rdiag,
                                 thread_pool& pool) {
    if (!linalg::cholesky_lower(a.data(), n, n, pool)) return false;
    // R_kj = L[n-1-k][n-1-j] for j >= k.
    rdiag.resize(n);
    for (std::size_t k = 0; k < n; ++k) rdiag[k] = a[(n - 1 - k) * n + (n - 1 - k)];
    s.assign(n * n, 0.0f);
    pool.parallel_for(n, 16, [&](std::size_t k0, std::size_t k1) {
        for (std::size_t k = k0; k < k1; ++k)
            for (std::size_t j = k + 1; j < n; ++j) s[k * n + j] = float(a[(n - 1 - k) * n + (n - 1 - j)] / rdiag[j]);
    });
    return true;
}

inline bool gptq_factor(const std::vector<double>& h, std::size_t n, std::vector<float>& s, std::vector<double>& rdiag,
                        thread_pool& pool) {
    std::vector<double> a(n * n);
    pool.parallel_for(n, 16, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i)
            for (std::size_t j = 0; j <= i; ++j) a[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
    });
    return gptq_factor_reversed(a, n, s, rdiag, pool);
}

// Factors H + damp * mean_diag * I (gptq_factor), multiplying damp by 10 up to three times
// while it is not positive definite; returns the dampening used. Shared with SpQR (algo/spqr.hpp).
inline double gptq_factor_damped(const std::vector<double>& h, std::size_t n, double mean_diag, double damp,
                                 std::vector<float>& s, std::vector<double>& rdiag, thread_pool& pool,
                                 const char* who = "gptq") {
    for (int attempt = 0;; ++attempt) {
        std::vector<double> hd(h);
        for (std::size_t i = 0; i < n; ++i) hd[i * n + i] += damp * mean_diag;
        if (gptq_factor(hd, n, s, rdiag, pool)) return damp;
        if (attempt == 3)
            throw error(std::string(who) + ": the Hessian is not positive definite even with dampening " +
                        std::to_string(damp) + " x mean(diag H); is it a Hessian of this layer's inputs?");
        damp = damp > 0.0 ? damp * 10.0 : 0.01;
    }
}

// The lazy-batch width: a group fitted mid-sweep must see all its columns up to date, which holds
// when it starts at a block boundary or ends inside its block.
inline std::size_t gptq_block(std::size_t block, std::size_t group, std::size_t groups_per_row, bool static_groups) {
    block = std::max<std::size_t>(block, 1);
    if (static_groups || groups_per_row <= 1) return block;
    if (group <= block) return block / group * group;
    return group % block == 0 ? block : group;
}

}  // namespace detail

// What GPTQ computes from the Hessian alone: the dead inputs, the sweep order and the factor.
// Matrices that read the same input (q, k, v; gate, up) share it: gptq_prepare once, then
// gptq_quantize per matrix gives what gptq_quantize(w, h) gives for each.
struct gptq_factorization {
    std::size_t n = 0;
    bool act_order = false;
    std::vector<char> dead;          // H_ii == 0: the weight column is zeroed
    std::vector<std::size_t> perm;   // perm[i]: the original column quantized i-th
    std::vector<float> s;            // S_kj = R_kj / R_jj (upper, n x n, in sweep order)
    std::vector<double> rdiag;       // R_kk
    double damp = 0.0;               // the dampening used (after any retries)
    std::size_t n_dead = 0;
    double seconds = 0.0;            // what preparing took
};

// h: the cols x cols Hessian (row-major, symmetric). Uses opt.damp and opt.act_order.
inline gptq_factorization gptq_prepare(const double* h, std::size_t n, const gptq_options& opt = {},
                                       thread_pool& pool = default_pool()) {
    const auto t0 = std::chrono::steady_clock::now();
    gptq_factorization f;
    f.n = n;
    f.act_order = opt.act_order;
    // Dead inputs: no signal, so the weight cannot matter; zero it and make H invertible.
    f.dead.assign(n, 0);
    std::vector<double> diag(n);
    for (std::size_t i = 0; i < n; ++i) {
        diag[i] = h[i * n + i];
        if (diag[i] == 0.0) f.dead[i] = 1, diag[i] = 1.0, ++f.n_dead;
    }
    f.perm.resize(n);
    std::iota(f.perm.begin(), f.perm.end(), std::size_t(0));
    if (opt.act_order)
        std::stable_sort(f.perm.begin(), f.perm.end(), [&](std::size_t a, std::size_t b) { return diag[a] > diag[b]; });
    double mean_diag = 0.0;
    for (std::size_t i = 0; i < n; ++i) mean_diag += diag[f.perm[i]];
    mean_diag /= double(n);
    // The dead-fixed, permuted H, written straight into the reversed lower triangle that
    // gptq_factor's Cholesky reads (no full copies of H on the way).
    const std::vector<std::size_t>& perm = f.perm;
    auto h_of = [&](std::size_t i, std::size_t j) {  // permuted, dead diagonal entries 1
        return i == j ? diag[perm[i]] : h[perm[i] * n + perm[j]];
    };
    double damp = opt.damp;
    std::vector<double> a(n * n);
    for (int attempt = 0;; ++attempt) {
        pool.parallel_for(n, 16, [&](std::size_t i0, std::size_t i1) {
            for (std::size_t i = i0; i < i1; ++i) {
                for (std::size_t j = 0; j < i; ++j) a[i * n + j] = h_of(n - 1 - i, n - 1 - j);
                a[i * n + i] = h_of(n - 1 - i, n - 1 - i) + damp * mean_diag;
            }
        });
        if (detail::gptq_factor_reversed(a, n, f.s, f.rdiag, pool)) break;
        if (attempt == 3)
            throw error("gptq: the Hessian is not positive definite even with dampening " + std::to_string(damp) +
                        " x mean(diag H); is it a Hessian of this layer's inputs?");
        damp = damp > 0.0 ? damp * 10.0 : 0.01;
    }
    f.damp = damp;
    f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return f;
}

inline gptq_factorization gptq_prepare(const std::vector<double>& h, std::size_t n, const gptq_options& opt = {},
                                       thread_pool& pool = default_pool()) {
    if (h.size() != n * n)
        throw error("gptq: the Hessian has " + std::to_string(h.size()) + " entries, the layer needs " + std::to_string(n) +
                    " x " + std::to_string(n));
    return gptq_prepare(h.data(), n, opt, pool);
}

// GPTQ into Format with a prepared factor of the layer's Hessian (same act_order as opt).
// opt.quant.importance (per column) goes to every group fit.
template <class Format>
qmatrix<Format> gptq_quantize(matrix_view<const float> w, const gptq_factorization& f, const gptq_options& opt = {},
                              thread_pool& pool = default_pool(), gptq_report* report = nullptr) {
    using codec = group_codec<Format>;
    using params = typename codec::params;
    check_finite(w);
    qmatrix<Format> out(w.rows, w.cols);  // checks the shape first
    if (f.n != w.cols)
        throw error("gptq: the factor is of a Hessian of " + std::to_string(f.n) + " inputs, the layer has " +
                    std::to_string(w.cols));
    if (f.act_order != opt.act_order) throw error("gptq: the factor was prepared with another act_order");
    using clock = std::chrono::steady_clock;
    const auto t1 = clock::now();
    const std::size_t rows = w.rows, n = w.cols;
    const std::size_t gs = codec::group_size(n), ng = n / gs;
    const bool static_groups = opt.static_groups || opt.act_order;
    const float* imp = opt.quant.importance;
    const std::vector<std::size_t>& perm = f.perm;
    const std::vector<float>& s = f.s;
    const std::vector<double>& rdiag = f.rdiag;
    gptq_report rep;
    rep.dead = f.n_dead;
    rep.damp = f.damp;

    std::vector<float> w0(rows * n);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < n; ++c) w0[r * n + c] = f.dead[c] ? 0.0f : w(r, c);

    std::vector<params> ps(rows * ng);
    if (static_groups)
        pool.parallel_for(rows, 1, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t g = 0; g < ng; ++g)
                    ps[r * ng + g] = codec::fit(&w0[r * n + g * gs], gs, imp ? imp + g * gs : nullptr, opt.quant);
        });

    // v: the columns' current values (original + corrections); wp: the originals; both permuted.
    std::vector<float> wp(rows * n), v(rows * n);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t i = 0; i < n; ++i) wp[r * n + i] = v[r * n + i] = w0[r * n + perm[i]];
    std::vector<float>().swap(w0);
    std::vector<std::uint8_t> codes(rows * n);  // original column order
    std::vector<double> row_loss(rows, 0.0);

    const std::size_t bw = detail::gptq_block(opt.block, gs, ng, static_groups);
    std::vector<float> err(rows * bw);  // w - q of the current block, per row
    for (std::size_t i1 = 0; i1 < n; i1 += bw) {
        const std::size_t i2 = std::min(n, i1 + bw), nb = i2 - i1;
        pool.parallel_for(rows, 1, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                float* vr = &v[r * n];
                for (std::size_t i = i1; i < i2; ++i) {
                    const std::size_t col = perm[i], g = col / gs, k = col % gs;
                    // Without act_order col == i, so the group's columns are vr[i .. i + gs).
                    if (!static_groups && k == 0)
                        ps[r * ng + g] = codec::fit(vr + i, gs, imp ? imp + col : nullptr, opt.quant);
                    const float q = codec::quantize(ps[r * ng + g], k, vr[i], &codes[r * n + col]);
                    const float e = wp[r * n + i] - q;
                    err[r * bw + (i - i1)] = e;
                    const double l = (double(vr[i]) - q) * rdiag[i];
                    row_loss[r] += l * l;
                    const float* si = &s[i * n];
                    for (std::size_t j = i + 1; j < i2; ++j) vr[j] += e * si[j];
                }
            }
        });
        if (i2 < n)
            linalg::gemm_add_f32(rows, n - i2, nb, err.data(), bw, &s[i1 * n + i2], n, &v[i2], n, pool);
    }

    codec::store(out, ps, codes.data());
    rep.factor_seconds = f.seconds;
    rep.sweep_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    if (report) {
        rep.loss = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
        *report = rep;
    }
    return out;
}

// GPTQ into Format. h: the layer's cols x cols Hessian (row-major, symmetric), e.g.
// input_stats::hessian(). opt.quant.importance (per column) goes to every group fit.
template <class Format>
qmatrix<Format> gptq_quantize(matrix_view<const float> w, const double* h, const gptq_options& opt = {},
                              thread_pool& pool = default_pool(), gptq_report* report = nullptr) {
    check_finite(w);
    if (Format::shape_problem(w.cols)) qmatrix<Format>(w.rows, w.cols);  // refused (its message) before the factor
    return gptq_quantize<Format>(w, gptq_prepare(h, w.cols, opt, pool), opt, pool, report);
}

template <class Format>
qmatrix<Format> gptq_quantize(matrix_view<const float> w, const std::vector<double>& h, const gptq_options& opt = {},
                              thread_pool& pool = default_pool(), gptq_report* report = nullptr) {
    if (h.size() != w.cols * w.cols)
        throw error("gptq: the Hessian has " + std::to_string(h.size()) + " entries, the layer needs " +
                    std::to_string(w.cols) + " x " + std::to_string(w.cols));
    return gptq_quantize<Format>(w, h.data(), opt, pool, report);
}

// By scheme: quantize_gptq<scheme<bits<3>, group<64>>>(w, H) stores what quantize<S> would.
template <class Scheme>
qmatrix<format_of<Scheme>> quantize_gptq(matrix_view<const float> w, const std::vector<double>& h, const gptq_options& opt = {},
                                thread_pool& pool = default_pool(), gptq_report* report = nullptr) {
    static_assert(is_scheme<Scheme>::value, "edgeq::quantize_gptq<S>: S must be an edgeq::scheme<...>");
    return gptq_quantize<format_of<Scheme>>(w, h, opt, pool, report);
}

}  // namespace edgeq
