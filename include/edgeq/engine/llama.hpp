// The forward pass of a Llama-family decoder, readable top to bottom (llama2.c's run.c, with
// every matrix product behind an edgeq::linear):
//
//   tokens -> embedding rows (decoded on the fly) -> per layer:
//     x += wo(attention(rope(wq(rmsnorm(x))), rope(wk(...)), wv(...)))     grouped-query, KV cache
//     x += w2(silu(w1(rmsnorm(x))) * w3(rmsnorm(x)))                        SwiGLU
//   -> rmsnorm -> logits = classifier(x)
//
// llama_session::eval runs n tokens at once: with n > 1 every product is one linear::gemm over
// the n rows (the prompt path), with n == 1 one linear::gemv (the decode path). Threads split the
// rows of each product and the (token, head) pairs of attention, never a sum, so the result
// does not depend on the thread count. Activations and the KV cache are float32.
//
// Calibration (GPTQ, AWQ, importance matrices) runs the layers one at a time over hidden states
// it keeps (forward_layers) and watches what enters each matrix (set_observer).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "../kernel/backends.hpp"
#include "../kernel/packed_gemm.hpp"
#include "../linear.hpp"
#include "config.hpp"
#include "model.hpp"

namespace edgeq {
namespace engine {

// out = x / sqrt(mean(x^2) + eps) * w
inline void rmsnorm(float* out, const float* x, const float* w, std::size_t n, float eps) {
    double ss = 0.0;
    for (std::size_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
    const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
    for (std::size_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

// Rotates each head of v (n_heads heads of hd values) by position pos. cos_sin holds cos and
// sin of pos * inv_freq[i] for the hd/2 pairs.
inline void rope(float* v, int n_heads, int hd, const float* cos_v, const float* sin_v, rope_pairing pairing) {
    const int half = hd / 2;
    for (int h = 0; h < n_heads; ++h) {
        float* x = v + h * hd;
        for (int i = 0; i < half; ++i) {
            // neox pairs i with i + d/2; interleaved pairs 2i with 2i + 1
            float& a = pairing == rope_pairing::neox ? x[i] : x[2 * i];
            float& b = pairing == rope_pairing::neox ? x[i + half] : x[2 * i + 1];
            const float a0 = a, b0 = b;
            a = a0 * cos_v[i] - b0 * sin_v[i];
            b = a0 * sin_v[i] + b0 * cos_v[i];
        }
    }
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// The seven matrices of a layer, in the order the forward pass multiplies them.
enum class layer_matrix { q, k, v, o, gate, up, down };

// What enters matrix `which` of layer `layer`: n rows of the matrix's cols() values.
using matmul_observer = std::function<void(std::size_t layer, layer_matrix which, matrix_view<const float> input)>;

class llama_session {
   public:
    // n_ctx: the longest sequence this session holds (0: the model's seq_len).
    explicit llama_session(const llama_model& m, thread_pool& pool = default_pool(), int n_ctx = 0)
        : m_(m), c_(m.config), pool_(pool), n_ctx_(n_ctx > 0 ? n_ctx : m.config.seq_len), inv_freq_(rope_inv_freq(m.config)) {
        const std::size_t cache = std::size_t(c_.n_layers) * std::size_t(n_ctx_) * std::size_t(c_.kv_dim());
        key_cache_.assign(cache, 0.0f);
        value_cache_.assign(cache, 0.0f);
    }

    const llama_model& model() const { return m_; }
    // Called before every product of a layer's matrix with its input (empty: no calls).
    void set_observer(matmul_observer o) { observer_ = std::move(o); }
    int n_ctx() const { return n_ctx_; }
    int n_past() const { return pos_; }
    // Forgets the context (the cache is overwritten as new tokens come).
    void reset() { pos_ = 0; }

    // Feeds n tokens at positions n_past() .. n_past() + n - 1. Writes the logits of every token
    // ([n, vocab]) to logits when all_logits, else only those of the last token ([vocab]).
    void eval(const int* tokens, std::size_t n, float* logits, bool all_logits = false) {
        if (n == 0) return;
        if (std::size_t(pos_) + n > std::size_t(n_ctx_))
            throw error("llama_session: " + std::to_string(pos_) + " + " + std::to_string(n) + " tokens exceed the context of " +
                        std::to_string(n_ctx_));
        const std::size_t dim = std::size_t(c_.dim);
        std::vector<float> x(n * dim), xb(n * dim);
        embed(tokens, n, x.data());
        forward_layers(x.data(), n, 0, m_.layers.size());

        // Final norm and classifier: every row, or the last one.
        const std::size_t first = all_logits ? 0 : n - 1;
        for (std::size_t t = first; t < n; ++t) rmsnorm(&xb[t * dim], &x[t * dim], m_.output_norm.data(), dim, c_.rms_eps);
        matmul(m_.classifier(), &xb[first * dim], logits, n - first);
        pos_ += int(n);
    }

    // The hidden states of n tokens (n x dim): rows of the embedding table.
    void embed(const int* tokens, std::size_t n, float* x) const {
        const std::size_t dim = std::size_t(c_.dim);
        for (std::size_t t = 0; t < n; ++t) {
            if (tokens[t] < 0 || tokens[t] >= c_.vocab_size)
                throw error("llama_session: token id " + std::to_string(tokens[t]) + " is outside the vocabulary of " +
                            std::to_string(c_.vocab_size));
            m_.token_embd->dequantize_row(std::size_t(tokens[t]), &x[t * dim]);
        }
    }

    // Runs layers [first, last) on the hidden states x (n x dim, updated in place) of tokens at
    // positions n_past() .. n_past() + n - 1, writing their keys and values to the cache. Does
    // not advance n_past(): eval does, after the last layer.
    void forward_layers(float* x, std::size_t n, std::size_t first, std::size_t last) {
        if (last > m_.layers.size() || first > last) throw error("llama_session::forward_layers: layers out of range");
        if (std::size_t(pos_) + n > std::size_t(n_ctx_))
            throw error("llama_session: " + std::to_string(pos_) + " + " + std::to_string(n) + " tokens exceed the context of " +
                        std::to_string(n_ctx_));
        const std::size_t dim = std::size_t(c_.dim), qd = std::size_t(c_.q_dim()), kvd = std::size_t(c_.kv_dim()),
                          hid = std::size_t(c_.hidden_dim);
        const int hd = c_.head_size(), half = hd / 2;
        std::vector<float> xb(n * dim), q(n * qd), k(n * kvd), v(n * kvd), att(n * qd), h1(n * hid), h3(n * hid),
            cs(n * std::size_t(hd));

        // cos and sin of every (position, frequency) this call needs.
        for (std::size_t t = 0; t < n; ++t)
            for (int i = 0; i < half; ++i) {
                const float angle = float(pos_ + int(t)) * inv_freq_[std::size_t(i)];
                cs[t * std::size_t(hd) + std::size_t(i)] = std::cos(angle);
                cs[t * std::size_t(hd) + std::size_t(half + i)] = std::sin(angle);
            }

        for (std::size_t l = first; l < last; ++l) {
            const llama_layer& L = m_.layers[l];
            // Attention block.
            for (std::size_t t = 0; t < n; ++t) rmsnorm(&xb[t * dim], &x[t * dim], L.attn_norm.data(), dim, c_.rms_eps);
            observe(l, layer_matrix::q, xb.data(), n, dim);
            matmul(*L.wq, xb.data(), q.data(), n);
            observe(l, layer_matrix::k, xb.data(), n, dim);
            matmul(*L.wk, xb.data(), k.data(), n);
            observe(l, layer_matrix::v, xb.data(), n, dim);
            matmul(*L.wv, xb.data(), v.data(), n);
            if (c_.qkv_bias) {
                add_bias(q.data(), L.bq, n);
                add_bias(k.data(), L.bk, n);
                add_bias(v.data(), L.bv, n);
            }
            for (std::size_t t = 0; t < n; ++t) {
                const float* cv = &cs[t * std::size_t(hd)];
                rope(&q[t * qd], c_.n_heads, hd, cv, cv + half, c_.pairing);
                rope(&k[t * kvd], c_.n_kv_heads, hd, cv, cv + half, c_.pairing);
                std::copy(&k[t * kvd], &k[t * kvd] + kvd, cache_row(key_cache_, l, std::size_t(pos_) + t));
                std::copy(&v[t * kvd], &v[t * kvd] + kvd, cache_row(value_cache_, l, std::size_t(pos_) + t));
            }
            attention(l, q.data(), att.data(), n);
            observe(l, layer_matrix::o, att.data(), n, qd);
            matmul(*L.wo, att.data(), xb.data(), n);
            for (std::size_t i = 0; i < n * dim; ++i) x[i] += xb[i];

            // Feed-forward block (SwiGLU).
            for (std::size_t t = 0; t < n; ++t) rmsnorm(&xb[t * dim], &x[t * dim], L.ffn_norm.data(), dim, c_.rms_eps);
            observe(l, layer_matrix::gate, xb.data(), n, dim);
            matmul(*L.w1, xb.data(), h1.data(), n);
            observe(l, layer_matrix::up, xb.data(), n, dim);
            matmul(*L.w3, xb.data(), h3.data(), n);
            for (std::size_t i = 0; i < n * hid; ++i) h1[i] = silu(h1[i]) * h3[i];
            observe(l, layer_matrix::down, h1.data(), n, hid);
            matmul(*L.w2, h1.data(), xb.data(), n);
            for (std::size_t i = 0; i < n * dim; ++i) x[i] += xb[i];
        }
    }

    // The decode path: one token, one gemv per matrix. Returns its logits.
    const std::vector<float>& decode(int token) {
        logits_.resize(std::size_t(c_.vocab_size));
        eval(&token, 1, logits_.data());
        return logits_;
    }
    // The prompt path: all tokens through gemm. Returns the logits of the last one.
    const std::vector<float>& prompt(const std::vector<int>& tokens) {
        logits_.resize(std::size_t(c_.vocab_size));
        eval(tokens.data(), tokens.size(), logits_.data());
        return logits_;
    }

   private:
    float* cache_row(std::vector<float>& cache, std::size_t layer, std::size_t pos) {
        return cache.data() + (layer * std::size_t(n_ctx_) + pos) * std::size_t(c_.kv_dim());
    }

    void observe(std::size_t layer, layer_matrix which, const float* x, std::size_t n, std::size_t cols) {
        if (observer_) observer_(layer, which, matrix_view<const float>(x, n, cols));
    }

    // y = W x for n rows of x: gemm when n > 1, gemv when n == 1.
    void matmul(const linear& w, const float* x, float* y, std::size_t n) {
        if (n == 1)
            w.gemv(x, y, pool_);
        else
            w.gemm(matrix_view<const float>(x, n, w.cols()), matrix_view<float>(y, n, w.rows()), pool_);
    }

    void add_bias(float* y, const std::vector<float>& b, std::size_t n) {
        for (std::size_t t = 0; t < n; ++t)
            for (std::size_t i = 0; i < b.size(); ++i) y[t * b.size() + i] += b[i];
    }

    // Causal grouped-query attention of n new tokens against the cache (which already holds
    // them): query head h reads kv head h / (n_heads / n_kv_heads). Batches of
    // attention_packed_min_tokens or more (prompts, calibration windows) run as two GEMMs per
    // head on the packed kernel; smaller ones (decode) as dot products per (token, head).
    static constexpr std::size_t attention_packed_min_tokens = 16;
    void attention(std::size_t l, const float* q, float* out, std::size_t n) {
        if (n >= attention_packed_min_tokens) return attention_packed(l, q, out, n);
        const int hd = c_.head_size(), group = c_.n_heads / c_.n_kv_heads;
        const std::size_t qd = std::size_t(c_.q_dim()), kvd = std::size_t(c_.kv_dim());
        const float scale = 1.0f / std::sqrt(float(hd));
        const float* keys = cache_row(key_cache_, l, 0);
        const float* values = cache_row(value_cache_, l, 0);
        const std::size_t n_heads = std::size_t(c_.n_heads);
        pool_.run(n * n_heads, [&](std::size_t task) {
            const std::size_t t = task / n_heads, h = task % n_heads;
            const std::size_t kvh = h / std::size_t(group), len = std::size_t(pos_) + t + 1;
            const float* qh = q + t * qd + h * std::size_t(hd);
            std::vector<float> s(len);
            float mx = -INFINITY;
            for (std::size_t j = 0; j < len; ++j) {
                const float* kj = keys + j * kvd + kvh * std::size_t(hd);
                float dot = 0.0f;
                for (int i = 0; i < hd; ++i) dot += qh[i] * kj[i];
                s[j] = dot * scale;
                mx = std::max(mx, s[j]);
            }
            float sum = 0.0f;
            for (std::size_t j = 0; j < len; ++j) sum += (s[j] = std::exp(s[j] - mx));
            float* o = out + t * qd + h * std::size_t(hd);
            std::fill(o, o + hd, 0.0f);
            for (std::size_t j = 0; j < len; ++j) {
                const float a = s[j] / sum;
                const float* vj = values + j * kvd + kvh * std::size_t(hd);
                for (int i = 0; i < hd; ++i) o[i] += a * vj[i];
            }
        });
    }

    // Per head, query rows in blocks of packed::mc: S = Q K^T over the keys the block can see
    // (tiles wholly above the causal diagonal skipped), a softmax per row with the masked
    // entries set to 0, then O = P V over the same keys. Every output is summed in key order,
    // so the result does not depend on the thread count.
    void attention_packed(std::size_t l, const float* q, float* out, std::size_t n) {
        namespace pk = kernel::packed;
        using tag = backend::best;
        constexpr std::size_t nr = pk::tile_nr<float>(tag{});
        const std::size_t hd = std::size_t(c_.head_size()), group = std::size_t(c_.n_heads / c_.n_kv_heads);
        const std::size_t qd = std::size_t(c_.q_dim()), kvd = std::size_t(c_.kv_dim()), pos0 = std::size_t(pos_);
        const float scale = 1.0f / std::sqrt(float(hd));
        const float* keys = cache_row(key_cache_, l, 0);
        const float* values = cache_row(value_cache_, l, 0);
        pool_.run(std::size_t(c_.n_heads), [&](std::size_t h) {
            const float* kh = keys + h / group * hd;
            const float* vh = values + h / group * hd;
            const std::size_t lds = pos0 + n;
            std::vector<float> p(std::min(pk::mc, n) * lds);
            for (std::size_t b0 = 0; b0 < n; b0 += pk::mc) {
                const std::size_t m = std::min(pk::mc, n - b0), len = pos0 + b0 + m;  // keys the block sees
                pk::gemm<float>(
                    tag{}, m, len, hd,
                    [&](std::size_t i0, std::size_t mm, std::size_t k0, std::size_t kn, float* dst) {
                        pk::pack_rows_as_strips(pk::mr, b0 + i0, mm, k0, kn, [&](std::size_t t) { return q + t * qd + h * hd; }, dst);
                    },
                    [&](std::size_t j0, std::size_t nn, std::size_t k0, std::size_t kn, float* dst) {
                        pk::pack_rows_as_strips(nr, j0, nn, k0, kn, [&](std::size_t j) { return kh + j * kvd; }, dst);
                    },
                    [&](std::size_t i, std::size_t j, std::size_t mm, std::size_t nn, bool first, const float* tile) {
                        for (std::size_t a = 0; a < mm; ++a)
                            for (std::size_t c = 0; c < nn; ++c) {
                                float& d = p[(i + a) * lds + j + c];
                                d = first ? tile[a * nr + c] : d + tile[a * nr + c];
                            }
                    },
                    [&](std::size_t i, std::size_t j) { return j > pos0 + b0 + i + pk::mr - 1; });
                for (std::size_t i = 0; i < m; ++i) {
                    float* s = &p[i * lds];
                    const std::size_t seen = pos0 + b0 + i + 1;
                    float mx = -INFINITY;
                    for (std::size_t j = 0; j < seen; ++j) mx = std::max(mx, s[j] *= scale);
                    float sum = 0.0f;
                    for (std::size_t j = 0; j < seen; ++j) sum += (s[j] = std::exp(s[j] - mx));
                    const float inv = 1.0f / sum;
                    for (std::size_t j = 0; j < seen; ++j) s[j] *= inv;
                    std::fill(s + seen, s + len, 0.0f);
                }
                pk::gemm<float>(
                    tag{}, m, hd, len,
                    [&](std::size_t i0, std::size_t mm, std::size_t k0, std::size_t kn, float* dst) {
                        pk::pack_rows_as_strips(pk::mr, i0, mm, k0, kn, [&](std::size_t i) { return &p[i * lds]; }, dst);
                    },
                    [&](std::size_t j0, std::size_t nn, std::size_t k0, std::size_t kn, float* dst) {
                        pk::pack_cols_as_strips(nr, j0, nn, k0, kn, [&](std::size_t j) { return vh + j * kvd; }, dst);
                    },
                    [&](std::size_t i, std::size_t j, std::size_t mm, std::size_t nn, bool first, const float* tile) {
                        for (std::size_t a = 0; a < mm; ++a) {
                            float* o = out + (b0 + i + a) * qd + h * hd + j;
                            for (std::size_t c = 0; c < nn; ++c) o[c] = first ? tile[a * nr + c] : o[c] + tile[a * nr + c];
                        }
                    });
            }
        });
    }

    const llama_model& m_;
    const llama_config& c_;
    thread_pool& pool_;
    int n_ctx_;
    int pos_ = 0;
    std::vector<float> inv_freq_;
    std::vector<float> key_cache_, value_cache_;  // [layer, position, kv_dim]
    std::vector<float> logits_;
    matmul_observer observer_;
};

}  // namespace engine
}  // namespace edgeq
