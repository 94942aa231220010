// Perplexity and KL divergence of a model over a token stream, under two protocols:
//
// gptq (../shared/reference/README.md, the GPTQ/AWQ papers' evaluation): the whole text
//   tokenized without BOS, cut into non-overlapping windows of n_ctx tokens (the partial last
//   window dropped, at most max_windows = 64 of them), each window fed alone from position 0,
//   positions 1..n_ctx-1 scored: ppl = exp(mean NLL).
// llamacpp (llama.cpp tools/perplexity/perplexity.cpp, perplexity()): the text tokenized WITH
//   BOS (common_tokenize(..., add_special = true)), chunks of n_ctx tokens (all of them unless
//   --chunks), at least 2 * n_ctx tokens needed; when the model adds a BOS the first token of
//   every chunk is replaced by BOS (not prepended); only the second half is scored: logits
//   n_ctx/2 .. n_ctx-2 predict tokens n_ctx/2 + 1 .. n_ctx-1 (n_ctx - n_ctx/2 - 1 per chunk).
//   It reports "PPL = exp(mean NLL) +/- ppl * sqrt(var(NLL) / (count - 1))".
//
// kl_divergence follows llama.cpp's --kl-divergence: over the positions the protocol scores,
// KLD = sum_i p_base(i) (log p_base(i) - log p(i)) (terms with log p_base <= -16 skipped, as
// llama.cpp does), with the mean and its uncertainty, percentiles, the share of positions whose
// argmax agrees ("Same top p") and the token probability differences.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/thread_pool.hpp"
#include "llama.hpp"
#include "sampler.hpp"
#include "model.hpp"

namespace edgeq {
namespace engine {

enum class ppl_protocol { gptq, llamacpp };

struct perplexity_options {
    ppl_protocol protocol = ppl_protocol::gptq;
    int n_ctx = 512;
    int max_windows = 64;  // gptq: 64; llamacpp: -1 (every chunk) unless --chunks
    bool add_bos = true;   // llamacpp only: replace each chunk's first token by config.bos_id
    // Called after each window with (windows done, windows in all, running mean NLL).
    std::function<void(int, int, double)> progress;
};

struct perplexity_result {
    double mean_nll = 0.0;
    double ppl = 0.0;
    double ppl_uncertainty = 0.0;  // llama.cpp's "+/-"
    std::size_t n_scored = 0;
    int n_windows = 0;
    std::vector<double> window_mean_nll;
};

namespace detail {

// -log softmax(logits)[tok], with the sum of exponentials in double.
inline double nll_of(const float* logits, std::size_t vocab, int tok) {
    float mx = logits[0];
    for (std::size_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
    double s = 0.0;
    for (std::size_t i = 0; i < vocab; ++i) s += std::exp(double(logits[i]) - double(mx));
    return std::log(s) + double(mx) - double(logits[tok]);
}

struct windows {
    int count = 0;
    int first_scored_logit = 0;  // logits [first, n_ctx - 1) are scored

    windows(const perplexity_options& o, std::size_t n_tokens) {
        if (o.n_ctx < 2) throw error("perplexity: n_ctx must be at least 2");
        const std::size_t avail = n_tokens / std::size_t(o.n_ctx);
        if (o.protocol == ppl_protocol::llamacpp && n_tokens < 2 * std::size_t(o.n_ctx))
            throw error("perplexity: the llama.cpp protocol needs at least " + std::to_string(2 * o.n_ctx) +
                        " tokens for n_ctx " + std::to_string(o.n_ctx) + ", the text has " + std::to_string(n_tokens));
        if (avail == 0)
            throw error("perplexity: the text has " + std::to_string(n_tokens) + " tokens, fewer than one window of " +
                        std::to_string(o.n_ctx));
        count = o.max_windows < 0 ? int(avail) : int(std::min<std::size_t>(avail, std::size_t(o.max_windows)));
        first_scored_logit = o.protocol == ppl_protocol::gptq ? 0 : o.n_ctx / 2;
    }
};

// The window w of tokens as the protocol feeds it.
inline std::vector<int> window_tokens(const std::vector<int>& tokens, int w, const perplexity_options& o, int bos) {
    std::vector<int> win(tokens.begin() + std::ptrdiff_t(w) * o.n_ctx, tokens.begin() + std::ptrdiff_t(w + 1) * o.n_ctx);
    if (o.protocol == ppl_protocol::llamacpp && o.add_bos && bos >= 0) win[0] = bos;  // a model without BOS adds none
    return win;
}

}  // namespace detail

// Perplexity through any session with reset() and eval(ids, n, logits, all_positions): the CPU
// llama_session below, or the GPU one (examples/edgeq/cuda_engine.hpp). Its context holds o.n_ctx.
template <class Session>
perplexity_result perplexity_of_session(Session& s, const llama_config& c, const std::vector<int>& tokens,
                                        const perplexity_options& o) {
    const detail::windows ws(o, tokens.size());
    const std::size_t vocab = std::size_t(c.vocab_size), n_ctx = std::size_t(o.n_ctx);
    std::vector<float> logits(n_ctx * vocab);
    perplexity_result r;
    double sum = 0.0, sum2 = 0.0;
    for (int w = 0; w < ws.count; ++w) {
        const std::vector<int> win = detail::window_tokens(tokens, w, o, c.bos_id);
        s.reset();
        s.eval(win.data(), n_ctx, logits.data(), true);
        double wsum = 0.0;
        std::size_t wn = 0;
        for (std::size_t i = std::size_t(ws.first_scored_logit); i + 1 < n_ctx; ++i, ++wn) {
            const double nll = detail::nll_of(&logits[i * vocab], vocab, win[i + 1]);
            wsum += nll;
            sum2 += nll * nll;
        }
        sum += wsum;
        r.n_scored += wn;
        r.window_mean_nll.push_back(wsum / double(wn));
        if (o.progress) o.progress(w + 1, ws.count, sum / double(r.n_scored));
    }
    r.n_windows = ws.count;
    r.mean_nll = sum / double(r.n_scored);
    r.ppl = std::exp(r.mean_nll);
    const double var = sum2 / double(r.n_scored) - r.mean_nll * r.mean_nll;
    r.ppl_uncertainty = var > 0 && r.n_scored > 1 ? r.ppl * std::sqrt(var / double(r.n_scored - 1)) : 0.0;
    return r;
}

inline perplexity_result perplexity(const llama_model& m, const std::vector<int>& tokens, const perplexity_options& o = {},
                                    thread_pool& pool = default_pool()) {
    const detail::windows check(o, tokens.size());  // a text too short is refused before the KV cache is allocated
    (void)check;
    llama_session s(m, pool, o.n_ctx);
    return perplexity_of_session(s, m.config, tokens, o);
}

struct kl_divergence_result {
    perplexity_result ppl, ppl_base;  // windows' NLLs of the model and of the reference
    double mean_kld = 0.0, kld_uncertainty = 0.0;
    double max_kld = 0.0, median_kld = 0.0, p99_kld = 0.0, p90_kld = 0.0, min_kld = 0.0;
    double same_top = 0.0;             // share of positions whose argmax agrees
    double mean_dp = 0.0, rms_dp = 0.0, max_abs_dp = 0.0;  // p(token) - p_base(token)
    std::size_t count = 0;
};

// KL divergence of model q from the reference model base (same vocabulary) over tokens.
inline kl_divergence_result kl_divergence(const llama_model& q, const llama_model& base, const std::vector<int>& tokens,
                                          const perplexity_options& o = {}, thread_pool& pool = default_pool()) {
    if (q.config.vocab_size != base.config.vocab_size)
        throw error("kl_divergence: the vocabularies differ (" + std::to_string(q.config.vocab_size) + " and " +
                    std::to_string(base.config.vocab_size) + ")");
    const detail::windows ws(o, tokens.size());
    const std::size_t vocab = std::size_t(q.config.vocab_size), n_ctx = std::size_t(o.n_ctx);
    llama_session sq(q, pool, o.n_ctx), sb(base, pool, o.n_ctx);
    std::vector<float> lq(n_ctx * vocab), lb(n_ctx * vocab);
    std::vector<double> klds;
    kl_divergence_result r;
    double nq = 0, nq2 = 0, nb = 0, nb2 = 0, k1 = 0, k2 = 0, d1 = 0, d2 = 0;
    std::size_t same = 0;
    for (int w = 0; w < ws.count; ++w) {
        const std::vector<int> win = detail::window_tokens(tokens, w, o, base.config.bos_id);
        sq.reset();
        sb.reset();
        sq.eval(win.data(), n_ctx, lq.data(), true);
        sb.eval(win.data(), n_ctx, lb.data(), true);
        double wq = 0, wb = 0;
        std::size_t wn = 0;
        for (std::size_t i = std::size_t(ws.first_scored_logit); i + 1 < n_ctx; ++i, ++wn) {
            const float* a = &lq[i * vocab];
            const float* b = &lb[i * vocab];
            const int tok = win[i + 1];
            // log-sum-exp of both rows
            float ma = a[0], mb = b[0];
            for (std::size_t j = 1; j < vocab; ++j) ma = std::max(ma, a[j]), mb = std::max(mb, b[j]);
            double sa = 0, sb2 = 0;
            for (std::size_t j = 0; j < vocab; ++j) sa += std::exp(double(a[j]) - ma), sb2 += std::exp(double(b[j]) - mb);
            const double za = ma + std::log(sa), zb = mb + std::log(sb2);
            const double nll = za - a[tok], nll_b = zb - b[tok];
            double kld = 0.0;
            for (std::size_t j = 0; j < vocab; ++j) {
                const double lpb = double(b[j]) - zb;
                if (lpb > -16.0) kld += std::exp(lpb) * (lpb - (double(a[j]) - za));
            }
            same += argmax(a, vocab) == argmax(b, vocab);
            const double dp = std::exp(-nll) - std::exp(-nll_b);
            nq += nll, nq2 += nll * nll, nb += nll_b, nb2 += nll_b * nll_b, wq += nll, wb += nll_b;
            k1 += kld, k2 += kld * kld, d1 += dp, d2 += dp * dp;
            r.max_abs_dp = std::max(r.max_abs_dp, std::fabs(dp));
            klds.push_back(kld);
        }
        r.ppl.window_mean_nll.push_back(wq / double(wn));
        r.ppl_base.window_mean_nll.push_back(wb / double(wn));
        if (o.progress) o.progress(w + 1, ws.count, k1 / double(klds.size()));
    }
    const double n = double(klds.size());
    r.count = klds.size();
    auto fill = [&](perplexity_result& p, double s, double s2) {
        p.n_windows = ws.count;
        p.n_scored = r.count;
        p.mean_nll = s / n;
        p.ppl = std::exp(p.mean_nll);
        const double var = s2 / n - p.mean_nll * p.mean_nll;
        p.ppl_uncertainty = var > 0 && n > 1 ? p.ppl * std::sqrt(var / (n - 1)) : 0.0;
    };
    fill(r.ppl, nq, nq2);
    fill(r.ppl_base, nb, nb2);
    r.mean_kld = k1 / n;
    const double kvar = k2 / n - r.mean_kld * r.mean_kld;
    r.kld_uncertainty = kvar > 0 && n > 1 ? std::sqrt(kvar / (n - 1)) : 0.0;
    std::sort(klds.begin(), klds.end());
    auto pct = [&](double f) {  // linear interpolation, as llama.cpp's percentile()
        const double p = f * double(klds.size() - 1);
        const std::size_t i = std::size_t(p);
        return (1 - (p - double(i))) * klds[i] + (p - double(i)) * klds[std::min(i + 1, klds.size() - 1)];
    };
    r.min_kld = klds.front();
    r.max_kld = klds.back();
    r.median_kld = pct(0.5);
    r.p90_kld = pct(0.9);
    r.p99_kld = pct(0.99);
    r.same_top = double(same) / n;
    r.mean_dp = d1 / n;
    r.rms_dp = std::sqrt(d2 / n);
    return r;
}

}  // namespace engine
}  // namespace edgeq
