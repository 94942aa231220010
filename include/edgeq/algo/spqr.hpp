// SpQR (Dettmers et al., 2023, "SpQR: A Sparse-Quantized Representation for Near-Lossless LLM
// Weight Compression"): GPTQ's sweep (algo/gptq.hpp) over small groups (16 columns) whose
// min-max statistics are themselves quantized to 3 bits, with the weights that would cost the
// most kept apart in float16 (format/spqr.hpp).
//
//     edgeq::spqr_report rep;
//     auto q = edgeq::spqr_quantize(w, H, edgeq::spqr_options{}, pool, &rep);   // spqr_matrix<spqr_format<3>>
//     auto q4 = edgeq::spqr_quantize<edgeq::spqr_format<4>>(w, H);
//
// As the reference implementation (Vahe1994/SpQR, spqr_engine.py), with GPTQ's algebra: R upper
// with H = R R^T, so the reference's H_inv_cho[i][i] is 1 / R_ii.
//   - The sweep reaches a column group: for every row of a block of StatGroup rows, fit the
//     group on its current values, leaving out the likely outliers: weight k is one if fitting
//     the group without it lowers sum_j ((w_j - Q(w_j)) R_jj)^2 over the others by more than the
//     threshold (leave-one-out; min-max fits, so only the extreme weights change the fit). The
//     likely outliers are replaced by the mean of the others, the range (widened to hold 0) is
//     fitted (scale d = (max - min) / (2^b - 1), zero z = -min / d, not rounded), then the
//     block's StatGroup scales and zeros are quantized to StatBits on their min-max grids (fp16
//     ends).
//   - Each weight then takes its nearest code under the quantized statistics; it is an outlier
//     if ((w - q) R_ii)^2, the error GPTQ's loss would take (the OBS saliency (w - q)^2 /
//     [H^-1]_ii of the remaining columns), exceeds the threshold. An outlier keeps its value,
//     stored as a float16 residual over its nearest code; either way w - q moves the later
//     columns as in GPTQ (the lazy batches and their rank-128 updates are GPTQ's).
//   - Threshold: tau x mean over columns of var_rows(W[:, c]) R_cc^2 (the reference's
//     outlier_relative_threshold; tau = 0.2 by default, as the paper's LLaMA runs), or, with
//     outlier_fraction > 0, the (1 - fraction) quantile of the leave-one-out gains on the
//     original weights: a budget met approximately (the sweep moves the weights; the report
//     says how many were kept).
// Not done: the reference's act-order permutation (it would have to be stored with the matrix).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/half.hpp"
#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "../format/spqr.hpp"
#include "gptq.hpp"
#include "rtn.hpp"

namespace edgeq {

struct spqr_options {
    double damp = 0.01;              // GPTQ's dampening, fraction of mean(diag H)
    std::size_t block = 128;         // lazy-batch width (rounded down to a multiple of the group)
    bool outliers = true;            // false: dense part only (GPTQ with quantized statistics)
    double outlier_threshold = 0.2;  // tau, relative to mean_c var_rows(W[:, c]) R_cc^2
    double outlier_fraction = 0.0;   // > 0: pick the threshold for about this fraction instead
};

struct spqr_report {
    double loss = 0.0;  // tr((W - Q) H (W - Q)^T), H dampened
    double damp = 0.0;
    std::size_t dead = 0;  // inputs with H_ii == 0 (their weights are zeroed)
    std::size_t outliers = 0;
    double threshold = 0.0;       // the absolute threshold on ((w - q) R_ii)^2
    double factor_seconds = 0.0;  // dead inputs, threshold, H's Cholesky factor
    double sweep_seconds = 0.0;   // fitting, quantizing, packing
};

namespace detail {

// Min-max statistics of [lo, hi] widened to hold 0 (as GPTQ's quantizer), so that z stays in
// [0, max_code] and a block's 3-bit grid of zeros is not stretched by one narrow, far-off group.
// An all-zero group gets d = 1 / max_code, z = 0.
inline void spqr_minmax(float lo, float hi, int max_code, float& d, float& z) {
    lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
    d = (hi > lo ? hi - lo : 1.0f) / float(max_code);
    z = -lo / d;
}

inline int spqr_encode(float w, float d, float z, int max_code) {
    if (!(d > 0.0f)) return 0;
    const float q = std::nearbyint(w / d + z);
    return int(std::min(std::max(q, 0.0f), float(max_code)));
}
inline float spqr_decode(int q, float d, float z) { return d * (float(q) - z); }

// gain[k]: how much sum_j ((x_j - Q(x_j)) rd_j)^2 drops when x_k is left out of the group (its
// own error, and for an extreme weight the refit of the others). As the reference's
// get_leave_one_out_error, with min-max fits: leaving out a non-extreme weight keeps the fit.
inline void spqr_loo_gain(const float* x, const double* rd, int n, int max_code, double* gain) {
    auto errors = [&](float lo, float hi, int skip, double* e) {
        float d, z;
        spqr_minmax(lo, hi, max_code, d, z);
        double s = 0.0;
        for (int j = 0; j < n; ++j) {
            const double t = (double(x[j]) - spqr_decode(spqr_encode(x[j], d, z, max_code), d, z)) * rd[j];
            if (e) e[j] = t * t;
            if (j != skip) s += t * t;
        }
        return s;
    };
    int amin = 0, amax = 0;
    for (int j = 1; j < n; ++j) {
        if (x[j] < x[amin]) amin = j;
        if (x[j] > x[amax]) amax = j;
    }
    double e[256];  // groups are at most 256 here (checked by the caller)
    const double base = errors(x[amin], x[amax], -1, e);
    for (int k = 0; k < n; ++k) {
        if (k != amin && k != amax) {
            gain[k] = e[k];
            continue;
        }
        float lo = std::numeric_limits<float>::max(), hi = -lo;
        for (int j = 0; j < n; ++j)
            if (j != k) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
        gain[k] = n > 1 ? base - errors(lo, hi, k, nullptr) : e[k];
    }
}

// The group's float statistics, fitted without its likely outliers (gain above thr), which are
// replaced by the mean of the others as in the reference. degenerate: the kept weights are 0.
inline void spqr_fit_group(const float* x, const double* rd, int n, int max_code, double thr, float& d, float& z,
                           bool& degenerate) {
    float lo = x[0], hi = x[0];
    if (std::isfinite(thr)) {
        double gain[256];
        spqr_loo_gain(x, rd, n, max_code, gain);
        double sum = 0.0;
        int kept = 0;
        for (int k = 0; k < n; ++k)
            if (!(gain[k] > thr)) sum += x[k], ++kept;
        const float mean = kept ? float(sum / kept) : 0.0f;
        lo = hi = gain[0] > thr ? mean : x[0];
        for (int k = 0; k < n; ++k) {
            const float v = gain[k] > thr ? mean : x[k];
            lo = std::min(lo, v), hi = std::max(hi, v);
        }
    } else {
        for (int k = 1; k < n; ++k) lo = std::min(lo, x[k]), hi = std::max(hi, x[k]);
    }
    degenerate = !(std::max(hi, 0.0f) > std::min(lo, 0.0f));  // the kept weights are all 0
    spqr_minmax(lo, hi, max_code, d, z);
}

// Min-max grid of StatBits over the values v[i] with use[i]; returns the fp16 ends and writes
// the codes of every value.
inline void spqr_stat_grid(const float* v, const bool* use, int n, int max_code, fp16_t& mn16, fp16_t& st16,
                           int* codes) {
    float mn = std::numeric_limits<float>::max(), mx = -mn;
    for (int i = 0; i < n; ++i)
        if (use[i]) mn = std::min(mn, v[i]), mx = std::max(mx, v[i]);
    mn16 = fp16_t::from_float(mn);
    st16 = fp16_t::from_float((mx - mn) / float(max_code));
    const float a = mn16.to_float(), s = st16.to_float();
    if (!std::isfinite(a) || !std::isfinite(s))
        throw error("spqr: a group statistic (" + std::to_string(mn) + " .. " + std::to_string(mx) +
                    ") overflows its float16 second level");
    for (int i = 0; i < n; ++i)
        codes[i] = s > 0.0f ? int(std::min(std::max(std::nearbyint((v[i] - a) / s), 0.0f), float(max_code))) : 0;
}

// Writes 2 x StatGroup stat codes into their 32-code chunks.
template <int StatBits>
inline void spqr_pack_stats(const int* codes, int n, std::uint8_t* out) {
    for (int c = 0; c < n; c += chunk_weights) {
        std::uint8_t b[chunk_weights];
        for (int i = 0; i < chunk_weights; ++i) b[i] = std::uint8_t(codes[c + i]);
        pack_chunk<StatBits>(b, out + c / chunk_weights * plane_split<StatBits>::chunk_bytes);
    }
}

// pool.parallel_for(n, 1, fn) for a fn that may throw: the pool does not carry exceptions
// across threads, so the first one is kept and rethrown here.
template <class Fn>
void spqr_parallel(thread_pool& pool, std::size_t n, const Fn& fn) {
    std::exception_ptr failure;
    std::mutex mu;
    pool.parallel_for(n, 1, [&](std::size_t a, std::size_t b) {
        try {
            fn(a, b);
        } catch (...) {
            std::lock_guard<std::mutex> lk(mu);
            if (!failure) failure = std::current_exception();
        }
    });
    if (failure) std::rethrow_exception(failure);
}

// The statistics of one column group for the nr rows of a row block (row i's weights at
// x + i * stride): first level per row without its likely outliers, second level over the
// block into sb; dq, zq get the decoded scale and zero of each row.
template <class F>
void spqr_fit_block(const float* x, std::size_t stride, std::size_t nr, const double* rd, double thr,
                    typename F::stat_block& sb, float* dq, float* zq) {
    constexpr int SG = F::stat_group, M = F::max_code, MS = F::max_stat_code;
    float d[SG], z[SG];
    bool degen, use[SG];
    int cd[2 * SG];
    int nuse = 0;
    for (std::size_t i = 0; i < std::size_t(SG); ++i) {
        use[i] = false;
        d[i] = z[i] = 0.0f;
        if (i >= nr) continue;
        spqr_fit_group(x + i * stride, rd, F::group, M, thr, d[i], z[i], degen);
        use[i] = !degen;
        nuse += use[i];
    }
    if (!nuse)
        for (std::size_t i = 0; i < nr; ++i) use[i] = true;
    spqr_stat_grid(d, use, SG, MS, sb.d_min, sb.d_step, cd);
    spqr_stat_grid(z, use, SG, MS, sb.z_min, sb.z_step, cd + SG);
    const float da = sb.d_min.to_float(), ds = sb.d_step.to_float(), za = sb.z_min.to_float(),
                zs = sb.z_step.to_float();
    for (std::size_t i = 0; i < nr; ++i) {
        if (!use[i]) {
            // An all-zero group, left out of the grids: the codes that decode 0 best.
            const float c = 0.0f;
            float best = std::numeric_limits<float>::max();
            for (int a = 0; a <= MS; ++a)
                for (int b = 0; b <= MS; ++b) {
                    const float dd = da + ds * float(a), zz = za + zs * float(b);
                    const float e = std::fabs(spqr_decode(spqr_encode(c, dd, zz, M), dd, zz) - c);
                    if (e < best) best = e, cd[i] = a, cd[SG + i] = b;
                }
        }
        dq[i] = da + ds * float(cd[i]);
        zq[i] = za + zs * float(cd[SG + i]);
    }
    spqr_pack_stats<F::stat_bits>(cd, 2 * SG, sb.codes);
}

// The threshold at which about `fraction` of the weights are kept, found by bisection on what
// SpQR without GPTQ's updates keeps in up to 16 evenly spaced row blocks: the same fits and
// the same per-weight test as the sweep, so only the sweep's moving weights make it approximate.
template <class F>
double spqr_threshold_for(const std::vector<float>& w, std::size_t rows, std::size_t n, const std::vector<double>& rd,
                          double fraction, thread_pool& pool) {
    constexpr int G = F::group, SG = F::stat_group, M = F::max_code;
    const std::size_t nrb = F::row_blocks(rows), ns = std::min<std::size_t>(nrb, 16);
    std::vector<std::size_t> blocks(ns);
    std::size_t weights = 0;
    for (std::size_t i = 0; i < ns; ++i) {
        blocks[i] = i * nrb / ns;
        weights += std::min<std::size_t>(SG, rows - blocks[i] * SG) * n;
    }
    std::vector<std::size_t> kept(ns);
    auto count = [&](double thr) {
        spqr_parallel(pool, ns, [&](std::size_t s0, std::size_t s1) {
            typename F::stat_block sb;
            float dq[SG], zq[SG];
            for (std::size_t s = s0; s < s1; ++s) {
                const std::size_t rlo = blocks[s] * SG, nr = std::min<std::size_t>(SG, rows - rlo);
                kept[s] = 0;
                for (std::size_t gi = 0; gi < n; gi += G) {
                    spqr_fit_block<F>(&w[rlo * n + gi], n, nr, &rd[gi], thr, sb, dq, zq);
                    for (std::size_t i = 0; i < nr; ++i)
                        for (std::size_t c = gi; c < gi + G; ++c) {
                            const float x = w[(rlo + i) * n + c];
                            const double e =
                                (double(x) - spqr_decode(spqr_encode(x, dq[i], zq[i], M), dq[i], zq[i])) * rd[c];
                            kept[s] += e * e > thr;
                        }
                }
            }
        });
        return double(std::accumulate(kept.begin(), kept.end(), std::size_t(0))) / double(weights);
    };
    // Bracket, then bisect log(thr): the kept fraction falls as the threshold rises.
    double hi = 0.0;
    for (std::size_t c = 0; c < n; ++c) hi = std::max(hi, rd[c] * rd[c]);
    double wmax = 0.0;
    for (const float x : w) wmax = std::max(wmax, double(std::fabs(x)));
    hi *= 4.0 * wmax * wmax + 1e-30;  // above every weight's whole squared value
    double lo = hi * 1e-12;
    for (int it = 0; it < 20; ++it) {  // 27.6 / 2^20: the threshold to 3e-5 relative
        const double mid = std::sqrt(lo * hi);
        (count(mid) > fraction ? lo : hi) = mid;
    }
    return hi;
}

}  // namespace detail

// SpQR of w (rows x cols) with the layer's cols x cols Hessian h (row-major, symmetric), e.g.
// input_stats::hessian().
template <class F = spqr_format<>>
spqr_matrix<F> spqr_quantize(matrix_view<const float> w, const double* h, const spqr_options& opt = {},
                             thread_pool& pool = default_pool(), spqr_report* report = nullptr) {
    constexpr int G = F::group, SG = F::stat_group, M = F::max_code;
    static_assert(G <= 256, "spqr_quantize: groups of at most 256 weights");
    using stat_block = typename F::stat_block;
    check_finite(w);
    const std::size_t rows = w.rows, n = w.cols;
    if (const char* why = F::shape_problem(rows, n))
        throw error("cannot store a " + std::to_string(rows) + " x " + std::to_string(n) + " matrix in " + F::name() +
                    ": " + why);
    if (!(opt.outlier_fraction >= 0.0 && opt.outlier_fraction < 1.0) || !(opt.outlier_threshold >= 0.0))
        throw error("spqr: outlier_fraction must be in [0, 1) and outlier_threshold >= 0");
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const std::size_t ng = n / G, nrb = F::row_blocks(rows);
    spqr_report rep;

    // Dead inputs, as GPTQ: no signal, so the weight cannot matter.
    std::vector<double> hw(h, h + n * n);
    std::vector<float> w0(rows * n);
    std::vector<char> dead(n, 0);
    double mean_diag = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        if (hw[i * n + i] == 0.0) dead[i] = 1, hw[i * n + i] = 1.0, ++rep.dead;
        mean_diag += hw[i * n + i] / double(n);
    }
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < n; ++c) w0[r * n + c] = dead[c] ? 0.0f : w(r, c);

    std::vector<float> s;
    std::vector<double> rdiag;
    rep.damp = detail::gptq_factor_damped(hw, n, mean_diag, opt.damp, s, rdiag, pool, "spqr");
    std::vector<double>().swap(hw);

    double thr = std::numeric_limits<double>::infinity();
    if (opt.outliers && opt.outlier_fraction > 0.0) {
        thr = detail::spqr_threshold_for<F>(w0, rows, n, rdiag, opt.outlier_fraction, pool);
    } else if (opt.outliers) {
        // The reference's scale: mean over columns of var_rows(W[:, c]) / H_inv_cho[c][c]^2.
        double scale = 0.0;
        for (std::size_t c = 0; c < n; ++c) {
            double m = 0.0, q = 0.0;
            for (std::size_t r = 0; r < rows; ++r) m += w0[r * n + c];
            m /= double(rows);
            for (std::size_t r = 0; r < rows; ++r) q += (w0[r * n + c] - m) * (w0[r * n + c] - m);
            scale += q / double(rows > 1 ? rows - 1 : 1) * rdiag[c] * rdiag[c];
        }
        thr = opt.outlier_threshold * scale / double(n);
    }
    rep.threshold = thr;
    const auto t1 = clock::now();

    std::vector<float> v(w0);  // the columns' current values
    std::vector<std::uint8_t> codes(rows * n);
    std::vector<stat_block> stats(nrb * ng, stat_block{});
    std::vector<std::vector<std::pair<std::uint32_t, std::uint16_t>>> outl(rows);
    std::vector<double> row_loss(rows, 0.0);
    const std::size_t bw = opt.block <= std::size_t(G) ? std::size_t(G) : opt.block / G * G;
    std::vector<float> err(rows * bw);

    for (std::size_t i1 = 0; i1 < n; i1 += bw) {
        const std::size_t i2 = std::min(n, i1 + bw), nb = i2 - i1;
        // Rows are independent but for the statistics a block of SG rows shares: one task per block.
        detail::spqr_parallel(pool, nrb, [&](std::size_t b0, std::size_t b1) {
            float dq[SG], zq[SG];
            for (std::size_t b = b0; b < b1; ++b) {
                const std::size_t rlo = b * SG, nr = std::min<std::size_t>(SG, rows - rlo);
                for (std::size_t gi = i1; gi < i2; gi += G) {
                    // Both levels of statistics on the block's current values.
                    detail::spqr_fit_block<F>(&v[rlo * n + gi], n, nr, &rdiag[gi], thr, stats[b * ng + gi / G], dq, zq);

                    // The group's columns, row by row, with GPTQ's in-block updates.
                    for (std::size_t i = 0; i < nr; ++i) {
                        const std::size_t r = rlo + i;
                        float* vr = &v[r * n];
                        for (std::size_t c = gi; c < gi + G; ++c) {
                            const float x = vr[c];
                            const int q = detail::spqr_encode(x, dq[i], zq[i], M);
                            const float deq = detail::spqr_decode(q, dq[i], zq[i]);
                            float qe = deq;
                            const double crit = (double(x) - deq) * rdiag[c];
                            if (crit * crit > thr) {
                                const std::uint16_t o = float_to_half(x - deq);
                                qe = deq + half_to_float(o);
                                if (!std::isfinite(qe))
                                    throw error("spqr: an outlier (" + std::to_string(x) + ") overflows float16");
                                outl[r].emplace_back(std::uint32_t(c), o);
                            }
                            codes[r * n + c] = std::uint8_t(q);
                            const float e = w0[r * n + c] - qe;
                            err[r * bw + (c - i1)] = e;
                            const double l = (double(x) - qe) * rdiag[c];
                            row_loss[r] += l * l;
                            const float* si = &s[c * n];
                            for (std::size_t k = c + 1; k < i2; ++k) vr[k] += e * si[k];
                        }
                    }
                }
            }
        });
        if (i2 < n)
            linalg::rank_update<float>(rows, n - i2, nb, linalg::strided<float>{err.data(), bw, 1}, &s[i1 * n + i2], n,
                                       &v[i2], n, 1.0f, false, pool);
    }

    std::size_t nnz = 0;
    for (const auto& o : outl) nnz += o.size();
    spqr_matrix<F> out(rows, n, nnz);
    using p = plane_split<F::bits>;
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < n; c += chunk_weights)
            pack_chunk<F::bits>(&codes[r * n + c], out.row_codes(r) + c / chunk_weights * p::chunk_bytes);
    std::memcpy(static_cast<void*>(out.stats()), stats.data(), stats.size() * sizeof(stat_block));
    std::size_t k = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        out.row_ptr()[r] = std::uint32_t(k);
        for (const auto& o : outl[r]) out.set_outlier_col(k, o.first), out.values()[k++] = o.second;
    }

    rep.outliers = nnz;
    rep.factor_seconds = std::chrono::duration<double>(t1 - t0).count();
    rep.sweep_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    if (report) {
        rep.loss = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
        *report = rep;
    }
    return out;
}

template <class F = spqr_format<>>
spqr_matrix<F> spqr_quantize(matrix_view<const float> w, const std::vector<double>& h, const spqr_options& opt = {},
                             thread_pool& pool = default_pool(), spqr_report* report = nullptr) {
    if (h.size() != w.cols * w.cols)
        throw error("spqr: the Hessian has " + std::to_string(h.size()) + " entries, the layer needs " +
                    std::to_string(w.cols) + " x " + std::to_string(w.cols));
    return spqr_quantize<F>(w, h.data(), opt, pool, report);
}

}  // namespace edgeq
