// One line of edgeq bench's table: what was measured for one scheme, and what is derived from
// the measurements afterwards (token agreement with the baseline, the Pareto front, the Jetson
// Nano estimate). A number that was not measured is NaN (null in JSON, empty in CSV).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bench {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

inline bool known(double v) { return v == v; }

// A number of a child's JSON (nested keys "a/b"); NaN when absent or not a number.
inline double number_at(const nlohmann::json& j, const std::string& path) {
    const nlohmann::json* p = &j;
    std::size_t b = 0;
    while (b <= path.size()) {
        std::size_t e = path.find('/', b);
        if (e == std::string::npos) e = path.size();
        const std::string key = path.substr(b, e - b);
        if (!p->is_object() || !p->contains(key)) return nan;
        p = &(*p)[key];
        b = e + 1;
    }
    return p->is_number() ? p->get<double>() : nan;
}

struct answer {
    std::string prompt, text;
    std::vector<int> tokens;
};

// Shapes that the Jetson estimate needs, from the GGUF metadata.
struct model_shape {
    int n_layers = 0, kv_dim = 0;
};

struct row {
    std::string scheme;
    bool baseline = false;
    std::string status = "pending";  // ok, failed, interrupted
    std::string error;               // why it failed: "quantize: edgeq quantize: ..."

    // Size: every tensor, and the layer matrices alone (q k v o gate up down).
    double file_bytes = nan, tensor_bytes = nan, elements = nan, linear_bytes = nan, linear_elements = nan;
    double bytes_per_token = nan;  // weights a decoded token reads (the embedding: one row)
    model_shape shape;
    double quantize_seconds = nan;
    bool quantize_cached = false, eval_cached = false;

    // Speed and memory: `edgeq run` with the speed prompt, --runs times.
    double prompt_tokens = nan, decode_tokens = nan;
    double prompt_tps = nan, prompt_tps_min = nan, prompt_tps_max = nan;
    double decode_tps = nan, decode_tps_min = nan, decode_tps_max = nan;
    double peak_rss_bytes = nan, peak_device_bytes = nan;

    // Quality.
    double ppl = nan, ppl_uncertainty = nan, kl_mean = nan, kl_uncertainty = nan, kl_p99 = nan, same_top = nan;
    std::vector<answer> answers;

    // Derived (fill_derived).
    double agreement = nan;
    double jetson_tps_peak = nan, jetson_tps_est = nan, jetson_bytes_needed = nan;
    int jetson_fits = -1;  // -1 unknown
    bool pareto = false;

    bool ok() const { return status == "ok"; }
    double bits_per_weight() const { return elements > 0 ? 8.0 * tensor_bytes / elements : nan; }
    double linear_bits_per_weight() const { return linear_elements > 0 ? 8.0 * linear_bytes / linear_elements : nan; }
};

// The Jetson Nano: 4 GB LPDDR4 at 25.6 GB/s shared by CPU and GPU.
struct jetson_settings {
    double bandwidth = 25.6e9;     // bytes/s, the data sheet's peak
    double efficiency = 0.67;      // docs/cuda.md: int4-g128 GEMV at 67% of copy bandwidth (H100)
    double memory = 4.0 * 1024 * 1024 * 1024;
    double overhead = 1.0 * 1024 * 1024 * 1024;  // L4T, CUDA context, activations (stated, not measured)
    double kv_bytes = 2;           // f16 KV cache, as llama.cpp keeps it
    int ctx = 2048;
};

// The fraction of positions where two greedy generations agree (the longer one's length; two
// empty ones agree).
inline double token_agreement(const std::vector<int>& a, const std::vector<int>& b) {
    const std::size_t n = std::max(a.size(), b.size());
    if (n == 0) return 1.0;
    std::size_t same = 0;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) same += a[i] == b[i];
    return double(same) / double(n);
}

// Agreement with the baseline, Jetson estimates, Pareto front (file size against perplexity).
inline void fill_derived(std::vector<row>& rows, const jetson_settings& js) {
    const row* base = nullptr;
    for (const row& r : rows)
        if (r.baseline && r.ok()) base = &r;
    for (row& r : rows) {
        r.agreement = nan;
        r.pareto = false;
        if (!r.ok()) continue;
        if (base && base->answers.size() == r.answers.size() && !r.answers.empty()) {
            double sum = 0;
            for (std::size_t i = 0; i < r.answers.size(); ++i) sum += token_agreement(r.answers[i].tokens, base->answers[i].tokens);
            r.agreement = sum / double(r.answers.size());
        }
        if (r.shape.n_layers > 0) {
            const double kv_per_pos = 2.0 * r.shape.n_layers * r.shape.kv_dim * js.kv_bytes;  // keys and values
            // Decoding reads every weight once plus, on average, half a full KV cache.
            const double per_token = r.bytes_per_token + kv_per_pos * js.ctx / 2;
            r.jetson_tps_peak = js.bandwidth / per_token;
            r.jetson_tps_est = js.bandwidth * js.efficiency / per_token;
            r.jetson_bytes_needed = r.tensor_bytes + kv_per_pos * js.ctx + js.overhead;
            r.jetson_fits = r.jetson_bytes_needed <= js.memory ? 1 : 0;
        }
    }
    for (row& r : rows) {
        if (!r.ok() || !known(r.ppl) || !known(r.file_bytes)) continue;
        bool dominated = false;
        for (const row& o : rows)
            if (&o != &r && o.ok() && known(o.ppl) && o.file_bytes <= r.file_bytes && o.ppl <= r.ppl &&
                (o.file_bytes < r.file_bytes || o.ppl < r.ppl))
                dominated = true;
        r.pareto = !dominated;
    }
}

inline nlohmann::json to_json(const row& r) {
    nlohmann::json answers = nlohmann::json::array();
    for (const answer& a : r.answers) answers.push_back({{"prompt", a.prompt}, {"text", a.text}, {"tokens", a.tokens}});
    auto num = [](double v) { return known(v) && std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    return {{"scheme", r.scheme},
            {"baseline", r.baseline},
            {"status", r.status},
            {"error", r.error},
            {"file_bytes", num(r.file_bytes)},
            {"tensor_bytes", num(r.tensor_bytes)},
            {"elements", num(r.elements)},
            {"bits_per_weight", num(r.bits_per_weight())},
            {"linear_bytes", num(r.linear_bytes)},
            {"linear_elements", num(r.linear_elements)},
            {"linear_bits_per_weight", num(r.linear_bits_per_weight())},
            {"quantize_seconds", num(r.quantize_seconds)},
            {"quantize_cached", r.quantize_cached},
            {"eval_cached", r.eval_cached},
            {"ppl", num(r.ppl)},
            {"ppl_uncertainty", num(r.ppl_uncertainty)},
            {"kl_mean", num(r.kl_mean)},
            {"kl_uncertainty", num(r.kl_uncertainty)},
            {"kl_p99", num(r.kl_p99)},
            {"same_top", num(r.same_top)},
            {"prompt_tokens", num(r.prompt_tokens)},
            {"prompt_tps_median", num(r.prompt_tps)},
            {"prompt_tps_min", num(r.prompt_tps_min)},
            {"prompt_tps_max", num(r.prompt_tps_max)},
            {"decode_tokens", num(r.decode_tokens)},
            {"decode_tps_median", num(r.decode_tps)},
            {"decode_tps_min", num(r.decode_tps_min)},
            {"decode_tps_max", num(r.decode_tps_max)},
            {"peak_rss_bytes", num(r.peak_rss_bytes)},
            {"peak_device_bytes", num(r.peak_device_bytes)},
            {"agreement", num(r.agreement)},
            {"bytes_per_token", num(r.bytes_per_token)},
            {"jetson_tps_peak", num(r.jetson_tps_peak)},
            {"jetson_tps_est", num(r.jetson_tps_est)},
            {"jetson_bytes_needed", num(r.jetson_bytes_needed)},
            {"jetson_fits", r.jetson_fits < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.jetson_fits == 1)},
            {"pareto", r.pareto},
            {"answers", answers}};
}

// The columns of results.csv, in order (answers are in results.json and the report only).
inline std::vector<std::string> csv_columns() {
    return {"scheme",          "status",           "error",           "baseline",          "file_bytes",
            "tensor_bytes",    "elements",         "bits_per_weight", "linear_bytes",      "linear_elements",
            "linear_bits_per_weight", "quantize_seconds", "quantize_cached", "ppl",         "ppl_uncertainty",
            "kl_mean",         "kl_uncertainty",   "kl_p99",          "same_top",          "prompt_tokens",
            "prompt_tps_median", "prompt_tps_min", "prompt_tps_max",  "decode_tokens",     "decode_tps_median",
            "decode_tps_min",  "decode_tps_max",   "peak_rss_bytes",  "peak_device_bytes", "agreement",
            "bytes_per_token", "jetson_tps_peak",  "jetson_tps_est",  "jetson_bytes_needed", "jetson_fits",
            "pareto"};
}

}  // namespace bench
