// The offline interface of a grouped format: choose a group's scale (and zero point), encode a
// weight to its nearest code, decode it back. RTN, GPTQ and AWQ all quantize through these, so
// every algorithm works with every format.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "../format/grouped.hpp"

namespace edgeq {

struct group_params {
    float scale = 0.0f;
    int zero = 0;  // subtracted from the code value (implicit for symmetric formats)
};

struct fit_options {
    bool clip_search = false;
    int clip_grid = 20;       // shrink factors tried: 1 down to 1 - max_shrink, evenly spaced
    float max_shrink = 0.5f;  // AWQ's auto-clip range
};

template <class Format>
struct group_fit {
    static int encode(float w, const group_params& p) {
        if (p.scale == 0.0f) return Format::is_uniform ? p.zero : nearest_code(0.0f);
        if (Format::is_uniform) {
            const float q = std::nearbyint(w / p.scale) + float(p.zero);
            return int(std::min(std::max(q, 0.0f), float(Format::max_code)));
        }
        return nearest_code(w / p.scale);
    }

    static float decode(int q, const group_params& p) { return p.scale * (Format::code_value(q) - float(p.zero)); }

    // Sum of imp_i * (w_i - decode(encode(w_i)))^2; imp may be null (all ones).
    static double error(const float* w, const float* imp, std::size_t n, const group_params& p) {
        double e = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const double d = double(w[i]) - double(decode(encode(w[i], p), p));
            e += (imp ? double(imp[i]) : 1.0) * d * d;
        }
        return e;
    }

    // Group parameters before the scale is rounded to its storage type.
    static group_params fit(const float* w, const float* imp, std::size_t n, const fit_options& opt) {
        group_params best = candidate(w, n, 1.0f);
        if (!opt.clip_search) return best;
        double best_err = error(w, imp, n, best);
        const int grid = std::max(opt.clip_grid, 2);
        for (int i = 0; i < grid; ++i) {
            const float f = 1.0f - opt.max_shrink * float(i) / float(grid - 1);
            group_params p = candidate(w, n, f);
            for (const group_params& c : {p, refit(w, imp, n, p)}) {
                const double e = error(w, imp, n, c);
                if (e < best_err) best_err = e, best = c;
            }
        }
        return best;
    }

   private:
    // The group's range shrunk by f.
    static group_params candidate(const float* w, std::size_t n, float f) {
        group_params p;
        if (Format::is_uniform && Format::asymmetric) {
            float lo = 0.0f, hi = 0.0f;  // the range always holds 0
            for (std::size_t i = 0; i < n; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
            lo *= f, hi *= f;
            p.scale = (hi - lo) / float(Format::max_code);
            p.zero = p.scale > 0.0f ? int(std::min(std::max(std::nearbyint(-lo / p.scale), 0.0f), float(Format::max_code))) : 0;
            return p;
        }
        float m = 0.0f;  // the weight of largest magnitude, with its sign
        for (std::size_t i = 0; i < n; ++i)
            if (std::fabs(w[i]) > std::fabs(m)) m = w[i];
        if (Format::is_uniform) {
            // The extreme weight lands on the -2^(bits-1) end, which has one more step.
            p.scale = -f * m / float(Format::implicit_zero);
            p.zero = Format::implicit_zero;
        } else {
            p.scale = f * std::fabs(m);
            p.zero = 0;
        }
        return p;
    }

    // The least-squares scale for the codes that p gives.
    static group_params refit(const float* w, const float* imp, std::size_t n, group_params p) {
        double num = 0.0, den = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const double v = double(Format::code_value(encode(w[i], p))) - double(p.zero);
            const double k = imp ? double(imp[i]) : 1.0;
            num += k * double(w[i]) * v;
            den += k * v * v;
        }
        if (den > 0.0) p.scale = float(num / den);
        return p;
    }

    static int nearest_code(float x) {
        int best = 0;
        float bd = std::fabs(x - Format::code_value(0));
        for (int q = 1; q <= Format::max_code; ++q) {
            const float d = std::fabs(x - Format::code_value(q));
            if (d < bd) bd = d, best = q;
        }
        return best;
    }
};

}  // namespace edgeq
