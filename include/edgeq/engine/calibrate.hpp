// Calibrated quantization of a model, block by block: the driver behind GPTQ, AWQ and the
// importance matrix (issue 5's "calibration").
//
//   windows   random windows of calibration tokens (calibration_windows)
//   hidden    their hidden states at the current block's input, kept for all windows
//   per block l:
//     1. run block l (float weights) over every window, feeding what enters each matrix to the
//        statistics of its input: attn_in (q, k, v), attn_out (o), ffn_in (gate, up), ffn_mid
//        (down): the Hessian 2 X^T X / n, E[x^2] and mean |x| (algo/hessian.hpp). This pass's
//        outputs are not used, so ffn_down's product is skipped (a quarter of the block's
//        multiply-adds), and the weights are float32 copies (the packed float GEMM);
//     2. optionally (AWQ) search a scale per input channel for each group of matrices that
//        share an input, multiply the group's columns by it and divide what produces the input
//        by it (the RMSNorm weight; v's rows for o without GQA; up's rows for down), so the
//        float model computes the same;
//     3. hand each of the seven matrices, with its float weights and input statistics, to the
//        caller's quantizer, which returns the linear that replaces it;
//     4. run the quantized block over the windows again: its outputs are the next block's
//        inputs, so later blocks are calibrated on what the quantized model computes (by
//        default with the quantized weights decoded to float32, as the reference GPTQ does:
//        the packed float GEMM is several times faster than the int8-activation path).
//
// Memory: the hidden states of the windows (n x seqlen x dim floats) plus one block's
// statistics (Hessians of dim^2, q_dim^2 and hidden^2 doubles), never the whole model's
// activations. The embedding and classifier are left as they are (the caller decides).
#pragma once
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../algo/hessian.hpp"
#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../core/progress.hpp"
#include "../core/thread_pool.hpp"
#include "../kernel/simd/dense.hpp"
#include "../linear.hpp"
#include "llama.hpp"
#include "model.hpp"

namespace edgeq {
namespace engine {

// n windows of seqlen tokens at random offsets of tokens (seeded; the same seed gives the same
// windows). Throws when the text is shorter than one window.
inline std::vector<std::vector<int>> calibration_windows(const std::vector<int>& tokens, std::size_t n, std::size_t seqlen,
                                                         unsigned seed = 0) {
    if (n == 0 || seqlen == 0) throw error("calibration: --nsamples and --seqlen must be positive");
    if (tokens.size() < seqlen)
        throw error("calibration: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                    std::to_string(seqlen));
    std::mt19937_64 gen(seed);
    std::uniform_int_distribution<std::size_t> start(0, tokens.size() - seqlen);
    std::vector<std::vector<int>> w(n);
    for (std::vector<int>& win : w) {
        const std::size_t s = start(gen);
        win.assign(tokens.begin() + std::ptrdiff_t(s), tokens.begin() + std::ptrdiff_t(s + seqlen));
    }
    return w;
}

// The GGUF name of a layer matrix ("blk.3.attn_q"), as model.hpp lists them.
inline std::string matrix_name(std::size_t layer, layer_matrix which) {
    static const char* const names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    return "blk." + std::to_string(layer) + "." + names[int(which)];
}

// The inputs that matrices share: q, k, v read attn_in; o attn_out; gate and up ffn_in; down
// ffn_mid (silu(gate) * up).
enum class layer_input { attn_in, attn_out, ffn_in, ffn_mid };

// One matrix to quantize and what calibration saw entering it.
struct calib_matrix {
    std::string name;  // "blk.3.ffn_down"
    std::size_t layer;
    layer_matrix which;
    matrix_view<const float> weights;  // the float weights (decoded), times `scales` per column
    const input_stats& inputs;         // statistics of its inputs over every calibration token
    matrix_view<const float> sample;   // up to calib_options::sample_rows of those inputs
    // The channel scales the weights were multiplied by (empty: none). The statistics and the
    // sample are of the unscaled inputs: the scaled matrix sees x / scales.
    const std::vector<float>& scales;
};

// The matrices that read one input, for a scale search (AWQ): their weights are searched jointly
// because one scale per channel is folded into the one thing that produces the input.
struct calib_group {
    std::size_t layer;
    layer_input input;
    std::vector<matrix_view<const float>> weights;  // q, k, v | o | gate, up | down
    const input_stats& inputs;
    matrix_view<const float> sample;
};

// Returns the linear that replaces the matrix (same shape).
using calib_quantizer = std::function<std::unique_ptr<linear>(const calib_matrix&)>;

struct calib_options {
    bool hessian = true;          // GPTQ needs it; the importance matrix and AWQ's scales do not
    std::size_t sample_rows = 0;  // input rows kept per group for the quantizer (spread evenly)
    // AWQ: a scale per input channel for the group (empty: leave the group as it is).
    std::function<std::vector<float>(const calib_group&)> scale_search;
    // Called once per matrix with its final statistics (to save an importance matrix).
    std::function<void(const std::string& name, const input_stats& inputs)> on_stats;
    progress_fn progress;  // units: blocks
    // The second pass (4. above) on the quantized weights decoded to float32, as the reference
    // GPTQ runs its fake-quantized layers, through the packed float GEMM; false: through the
    // quantized linears themselves (int8 activations, as the engine runs the saved model).
    bool float_second_pass = true;
};

// What the driver measured, for the log.
struct calib_report {
    double forward_seconds = 0;     // running blocks over the windows (both passes, statistics included)
    double statistics_seconds = 0;  // of which in the statistics: the Hessians X^T X, E[x^2], samples
    double quantized_forward_seconds = 0;  // of which the second pass, on the quantized block
    double quantize_seconds = 0;    // inside the quantizer (GPTQ: Cholesky factor and sweep)
};

namespace detail {
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace detail

namespace detail {
// Multiplies column c of w (rows x cols, row-major) by s[c].
inline void scale_cols(std::vector<float>& w, std::size_t cols, const std::vector<float>& s) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= s[i % cols];
}
// The weights of l as floats, row-major.
inline std::vector<float> decoded(const linear& l) {
    std::vector<float> w(l.rows() * l.cols());
    for (std::size_t r = 0; r < l.rows(); ++r) l.dequantize_row(r, &w[r * l.cols()]);
    return w;
}
// While alive: the seven matrices of a block replaced by others (slots[k] by with[k], where
// given); the originals are put back on destruction, also when the forward pass throws.
class swapped_block {
   public:
    swapped_block(std::unique_ptr<linear>** slots, std::unique_ptr<linear>* with) : slots_(slots) {
        for (int k = 0; k < 7; ++k)
            if (with[k]) {
                saved_[k] = std::move(*slots_[k]);
                *slots_[k] = std::move(with[k]);
            }
    }
    ~swapped_block() {
        for (int k = 0; k < 7; ++k)
            if (saved_[k]) *slots_[k] = std::move(saved_[k]);
    }
    swapped_block(const swapped_block&) = delete;
    swapped_block& operator=(const swapped_block&) = delete;

   private:
    std::unique_ptr<linear>** slots_;  // seven
    std::unique_ptr<linear> saved_[7];
};

// Dense float32 copies of the decoded weights of each slot (none when off).
struct decoded_copies {
    std::unique_ptr<linear> m[7];
    decoded_copies(std::unique_ptr<linear>** slots, bool on) {
        if (!on) return;
        for (int k = 0; k < 7; ++k) {
            const std::vector<float> w = decoded(**slots[k]);
            m[k] = make_dense_linear<dense_f32>({w.data(), (*slots[k])->rows(), (*slots[k])->cols()});
        }
    }
};

// While alive (and on): the seven matrices replaced by dense float32 copies of their decoded
// weights (the second pass, 4. above).
class decoded_block {
   public:
    decoded_block(std::unique_ptr<linear>** slots, bool on) : copies_(slots, on), swap_(slots, copies_.m) {}

   private:
    decoded_copies copies_;
    swapped_block swap_;
};

// Stands in for ffn_down in the statistics pass, whose output nobody reads: the block's output
// is thrown away there, and down's input is observed before the product. Writes zeros (a
// quarter of the block's multiply-adds saved).
class unread_output : public linear {
   public:
    unread_output(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols) {}
    std::size_t rows() const override { return rows_; }
    std::size_t cols() const override { return cols_; }
    std::size_t storage_bytes() const override { return 0; }
    const std::uint8_t* storage_data() const override { return nullptr; }
    double bits_per_weight() const override { return 0.0; }
    std::string scheme_name() const override { return "unread"; }
    const char* backend_name() const override { return "none"; }

   protected:
    void do_gemv(const float*, float* y, thread_pool&) const override { std::fill(y, y + rows_, 0.0f); }
    void do_gemm(matrix_view<const float>, matrix_view<float> y, thread_pool&) const override {
        for (std::size_t t = 0; t < y.rows; ++t) std::fill(y.row(t), y.row(t) + rows_, 0.0f);
    }
    void do_dequantize_row(std::size_t, float*) const override {
        throw error("calibration: the statistics pass's stand-in for ffn_down has no weights");
    }

   private:
    std::size_t rows_, cols_;
};
}  // namespace detail

inline calib_report quantize_calibrated(llama_model& m, const std::vector<std::vector<int>>& windows, const calib_quantizer& quantize,
                                        const calib_options& opt = calib_options(), thread_pool& pool = default_pool()) {
    using clock = std::chrono::steady_clock;
    const llama_config& c = m.config;
    const std::size_t dim = std::size_t(c.dim), n_layers = m.layers.size();
    if (windows.empty()) throw error("calibration: no windows");
    std::size_t longest = 0;
    for (const std::vector<int>& w : windows) longest = std::max(longest, w.size());
    llama_session s(m, pool, int(longest));

    calib_report rep;
    std::size_t total = 0;
    for (const std::vector<int>& w : windows) total += w.size();
    const std::size_t sample_stride = opt.sample_rows ? std::max<std::size_t>(1, total / opt.sample_rows) : 1;
    auto t0 = clock::now();
    std::vector<std::vector<float>> hidden(windows.size());
    for (std::size_t i = 0; i < windows.size(); ++i) {
        hidden[i].resize(windows[i].size() * dim);
        s.embed(windows[i].data(), windows[i].size(), hidden[i].data());
    }
    rep.forward_seconds += detail::seconds_since(t0);

    for (std::size_t l = 0; l < n_layers; ++l) {
        llama_layer& L = m.layers[l];
        // Inputs shared by matrices, with a sample of their rows.
        input_stats stats[4] = {input_stats(dim, opt.hessian), input_stats(std::size_t(c.q_dim()), opt.hessian),
                                input_stats(dim, opt.hessian), input_stats(std::size_t(c.hidden_dim), opt.hessian)};
        std::vector<float> samples[4];
        auto input_of = [](layer_matrix w) {
            return w == layer_matrix::o ? layer_input::attn_out
                   : w == layer_matrix::gate || w == layer_matrix::up ? layer_input::ffn_in
                   : w == layer_matrix::down ? layer_input::ffn_mid
                                             : layer_input::attn_in;
        };
        // The seven matrices as floats.
        std::unique_ptr<linear>* slots[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w3, &L.w2};
        const layer_matrix order[] = {layer_matrix::q,    layer_matrix::k,  layer_matrix::v,   layer_matrix::o,
                                      layer_matrix::gate, layer_matrix::up, layer_matrix::down};
        std::vector<float> w[7];
        for (int k = 0; k < 7; ++k) w[k] = detail::decoded(**slots[k]);
        auto view = [&](int k) { return matrix_view<const float>(w[k].data(), (*slots[k])->rows(), (*slots[k])->cols()); };

        // 1. Statistics, from the block's float weights (each shared input counted once). The
        // pass runs on float32 copies of the decoded weights (what the quantizer is given; the
        // packed float GEMM is faster than decoding f16 while packing), without ffn_down's
        // product, whose output is not needed.
        t0 = clock::now();
        std::size_t row_index[4] = {0, 0, 0, 0};
        s.set_observer([&](std::size_t, layer_matrix w, matrix_view<const float> x) {
            if (w != layer_matrix::q && w != layer_matrix::o && w != layer_matrix::gate && w != layer_matrix::down) return;
            const int k = int(input_of(w));
            const auto ts = clock::now();
            stats[k].add(x, pool);
            for (std::size_t r = 0; r < x.rows; ++r, ++row_index[k])
                if (opt.sample_rows && row_index[k] % sample_stride == 0 && samples[k].size() < opt.sample_rows * x.cols)
                    samples[k].insert(samples[k].end(), x.row(r), x.row(r) + x.cols);
            rep.statistics_seconds += detail::seconds_since(ts);
        });
        {
            std::unique_ptr<linear> first[7];
            for (int k = 0; k < 6; ++k)  // (float32 weights are used as they are)
                if ((*slots[k])->scheme_name() != "f32") first[k] = make_dense_linear<dense_f32>(view(k));
            first[6].reset(new detail::unread_output(L.w2->rows(), L.w2->cols()));
            detail::swapped_block swap(slots, first);
            std::vector<float> h;
            for (std::size_t i = 0; i < windows.size(); ++i) {
                h = hidden[i];
                s.reset();
                s.forward_layers(h.data(), windows[i].size(), l, l + 1);
            }
        }
        s.set_observer(matmul_observer());
        rep.forward_seconds += detail::seconds_since(t0);
        auto sample_of = [&](int k) {
            return matrix_view<const float>(samples[k].data(), samples[k].size() / stats[k].cols(), stats[k].cols());
        };

        // 2. Scale search (AWQ), folded into what produces each input; all on float weights.
        std::vector<float> scales[4];
        t0 = clock::now();
        if (opt.scale_search) {
            const std::vector<int> members[4] = {{0, 1, 2}, {3}, {4, 5}, {6}};
            // o's input channel j is v's row j only without GQA (one v head per q head).
            const bool fold_o = c.n_kv_heads == c.n_heads;
            for (int g = 0; g < 4; ++g) {
                if (g == 1 && !fold_o) continue;
                calib_group grp{l, layer_input(g), {}, stats[g], sample_of(g)};
                for (int k : members[g]) grp.weights.push_back(view(k));
                std::vector<float> sc = opt.scale_search(grp);
                if (sc.empty()) continue;
                if (sc.size() != stats[g].cols()) throw error("calibration: the scale search returned a wrong length");
                for (int k : members[g]) detail::scale_cols(w[k], stats[g].cols(), sc);
                if (g == 0 || g == 2) {  // the RMSNorm weight
                    std::vector<float>& norm = g == 0 ? L.attn_norm : L.ffn_norm;
                    for (std::size_t j = 0; j < norm.size(); ++j) norm[j] /= sc[j];
                } else {  // the rows of v (for o) or up (for down), still float
                    std::vector<float>& prev = g == 1 ? w[2] : w[5];
                    const std::size_t cols = g == 1 ? L.wv->cols() : L.w3->cols();
                    for (std::size_t r = 0; r < sc.size(); ++r)
                        for (std::size_t j = 0; j < cols; ++j) prev[r * cols + j] /= sc[r];
                }
                scales[g] = std::move(sc);
            }
        }

        // 3. Quantize the seven matrices.
        for (int k = 0; k < 7; ++k) {
            const int g = int(input_of(order[k]));
            const calib_matrix job{matrix_name(l, order[k]), l, order[k], view(k), stats[g], sample_of(g), scales[g]};
            if (opt.on_stats) opt.on_stats(job.name, stats[g]);
            std::unique_ptr<linear> q;
            try {
                q = quantize(job);
            } catch (const error& e) {  // say which tensor (a row length a block type cannot hold)
                throw error(job.name + ": " + std::string(e.what()).substr(7));
            }
            if (!q || q->rows() != job.weights.rows || q->cols() != job.weights.cols)
                throw error("calibration: the quantizer of " + job.name + " returned a matrix of another shape");
            *slots[k] = std::move(q);
            std::vector<float>().swap(w[k]);
        }
        rep.quantize_seconds += detail::seconds_since(t0);

        // 4. The quantized block's outputs feed the next block.
        t0 = clock::now();
        if (l + 1 < n_layers) {
            detail::decoded_block swap(slots, opt.float_second_pass);
            for (std::size_t i = 0; i < windows.size(); ++i) {
                s.reset();
                s.forward_layers(hidden[i].data(), windows[i].size(), l, l + 1);
            }
        }
        rep.quantized_forward_seconds += detail::seconds_since(t0);
        rep.forward_seconds += detail::seconds_since(t0);
        report(opt.progress, l + 1, n_layers, "blk." + std::to_string(l));
    }
    return rep;
}

}  // namespace engine
}  // namespace edgeq
