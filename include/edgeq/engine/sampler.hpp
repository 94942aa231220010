// Choosing the next token from logits: greedy, or sampling with repetition penalty, top-k,
// temperature and top-p (in that order, as llama.cpp's common sampler chain does), from a
// seeded xorshift generator that gives the same stream on every platform.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <vector>

namespace edgeq {
namespace engine {

struct sampler_params {
    float temperature = 0.8f;     // <= 0: greedy
    int top_k = 40;               // <= 0: all tokens
    float top_p = 0.95f;          // >= 1: no nucleus cut
    float repeat_penalty = 1.0f;  // 1: off; > 1 makes recent tokens less likely
    int repeat_last_n = 64;       // how many recent tokens the penalty looks at
    std::uint64_t seed = 42;
};

// xorshift64* (as llama2.c's run.c), seeded through splitmix64 so that every seed works.
class rng {
   public:
    explicit rng(std::uint64_t seed) {
        std::uint64_t z = seed + 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        state_ = (z ^ (z >> 31)) | 1u;
    }
    std::uint32_t next_u32() {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return std::uint32_t((state_ * 0x2545F4914F6CDD1Dull) >> 32);
    }
    // Uniform in [0, 1).
    float next_f32() { return float(next_u32() >> 8) / 16777216.0f; }

   private:
    std::uint64_t state_;
};

struct candidate {
    int id;
    float logit;  // after the repetition penalty
    float p;      // probability among the kept candidates
};

// Index of the largest value; the first on ties.
inline int argmax(const float* v, std::size_t n) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < n; ++i)
        if (v[i] > v[best]) best = i;
    return int(best);
}

class sampler {
   public:
    explicit sampler(const sampler_params& p = sampler_params()) : p_(p), rng_(p.seed) {}
    const sampler_params& params() const { return p_; }

    // The logits after the repetition penalty (llama.cpp's rule: a positive logit is divided by
    // the penalty, a negative one multiplied) over the distinct last repeat_last_n tokens.
    std::vector<float> penalized(const float* logits, std::size_t vocab, const std::vector<int>& history) const {
        std::vector<float> l(logits, logits + vocab);
        if (p_.repeat_penalty != 1.0f && p_.repeat_last_n > 0) {
            std::unordered_set<int> seen;
            const std::size_t from = history.size() > std::size_t(p_.repeat_last_n) ? history.size() - std::size_t(p_.repeat_last_n) : 0;
            for (std::size_t i = from; i < history.size(); ++i) {
                const int t = history[i];
                if (t < 0 || std::size_t(t) >= vocab || !seen.insert(t).second) continue;
                l[std::size_t(t)] = l[std::size_t(t)] > 0 ? l[std::size_t(t)] / p_.repeat_penalty : l[std::size_t(t)] * p_.repeat_penalty;
            }
        }
        return l;
    }

    // The tokens sampling can pick, most likely first, with their probabilities (summing to 1):
    // penalty, then top-k, then softmax at the temperature, then the smallest prefix whose mass
    // reaches top_p. Greedy (temperature <= 0) keeps the argmax alone.
    std::vector<candidate> candidates(const float* logits, std::size_t vocab, const std::vector<int>& history = {}) const {
        const std::vector<float> l = penalized(logits, vocab, history);
        std::vector<candidate> c(vocab);
        for (std::size_t i = 0; i < vocab; ++i) c[i] = candidate{int(i), l[i], 0.0f};
        auto before = [](const candidate& a, const candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
        std::size_t k = vocab;
        if (p_.temperature <= 0.0f)
            k = 1;
        else if (p_.top_k > 0)
            k = std::min(vocab, std::size_t(p_.top_k));
        std::partial_sort(c.begin(), c.begin() + std::ptrdiff_t(k), c.end(), before);
        c.resize(k);
        if (k == 1) {
            c[0].p = 1.0f;
            return c;
        }
        double sum = 0.0;
        for (candidate& x : c) sum += (x.p = std::exp((x.logit - c[0].logit) / p_.temperature));
        for (candidate& x : c) x.p = float(x.p / sum);
        if (p_.top_p < 1.0f) {
            double cum = 0.0;
            std::size_t keep = 0;
            while (keep < c.size() && cum < double(p_.top_p)) cum += c[keep++].p;
            c.resize(std::max<std::size_t>(keep, 1));
            double kept = 0.0;
            for (const candidate& x : c) kept += x.p;
            for (candidate& x : c) x.p = float(x.p / kept);
        }
        return c;
    }

    // The next token. history: the tokens so far (for the repetition penalty).
    int sample(const float* logits, std::size_t vocab, const std::vector<int>& history = {}) {
        if (p_.temperature <= 0.0f) {
            const std::vector<float> l = penalized(logits, vocab, history);
            return argmax(l.data(), vocab);
        }
        const std::vector<candidate> c = candidates(logits, vocab, history);
        const float r = rng_.next_f32();
        float cum = 0.0f;
        for (const candidate& x : c) {
            cum += x.p;
            if (r < cum) return x.id;
        }
        return c.back().id;  // rounding
    }

   private:
    sampler_params p_;
    rng rng_;
};

}  // namespace engine
}  // namespace edgeq
