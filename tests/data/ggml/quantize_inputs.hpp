// Inputs of the quantizer golden test, shared by tests/test_ggml_quantize.cpp and the tool that
// asked ggml for the expected bytes (quantize_digests.txt). Only integer arithmetic and double
// additions, multiplications and divisions (no libm), so every machine makes the same floats as
// long as a * b + c is not contracted into an fma (ISO C++ modes, as the project builds).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace edgeq {
namespace ggml_qtest {

// 64-bit LCG (Knuth's MMIX constants); 53 high bits as a double in [0, 1).
struct lcg {
    std::uint64_t s;
    explicit lcg(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
    double uniform() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return double(s >> 11) * (1.0 / 9007199254740992.0);
    }
    // Irwin-Hall: the sum of 12 uniforms minus 6 has mean 0 and variance 1.
    double gauss() {
        double sum = 0.0;
        for (int i = 0; i < 12; ++i) sum += uniform();
        return sum - 6.0;
    }
};

enum input_kind : int {
    gaussian = 0,   // N(0, 0.02^2)-like
    heavy = 1,      // gaussian / (0.05 + u): heavy tails
    outliers = 2,   // gaussian, 1% of weights x40
    offset = 3,     // mostly positive (0.3 + 0.05 g), odd rows negative
    special = 4,    // per row: constant, zero blocks, tiny values, grid values with ties
    n_kinds = 5
};

inline const char* kind_name(int k) {
    static const char* names[] = {"gaussian", "heavy", "outliers", "offset", "special"};
    return names[k];
}

constexpr std::size_t golden_rows = 8, golden_cols = 512;
constexpr int golden_seeds = 3;

// Row r of the `special` kind; cols is a multiple of 256.
inline float special_value(lcg& g, std::size_t r, std::size_t c) {
    const double v = g.gauss();
    switch (r % 8) {
        case 0: return 0.5f;                                            // a row of one constant
        case 1: return c < 256 ? 0.0f : float(-0.25);                   // zero super-block, then constant
        case 2: return (c / 32) % 2 ? float(0.02 * v) : 0.0f;            // alternate zero blocks
        case 3: return float(1e-7 * v);                                 // tiny: fp16 subnormal scales
        case 4: return float(double(long(v * 8.0)) / 8.0);              // a grid: exact ties
        case 5: return (c % 37) == 0 ? float(3.0 * v) : float(1e-3 * v);  // sparse large values
        case 6: return float(1e-12 * v);                                // below fp16's range
        default: return c % 2 ? float(0.02 * v) : float(0.02 * v + 0.01);
    }
}

// A rows x cols matrix of one kind and seed, row-major.
inline std::vector<float> make_input(int kind, int seed, std::size_t rows, std::size_t cols) {
    lcg g(std::uint64_t(kind) * 1000u + std::uint64_t(seed));
    std::vector<float> x(rows * cols);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
            float& y = x[r * cols + c];
            switch (kind) {
                case gaussian: y = float(0.02 * g.gauss()); break;
                case heavy: {
                    const double n = g.gauss();
                    y = float(0.01 * n / (0.05 + g.uniform()));
                    break;
                }
                case outliers: {
                    const double n = 0.02 * g.gauss();
                    y = float(g.uniform() < 0.01 ? 40.0 * n : n);
                    break;
                }
                case offset: {
                    const double n = 0.3 + 0.05 * g.gauss();
                    y = float(r % 2 ? -n : n);
                    break;
                }
                default: y = special_value(g, r, c); break;
            }
        }
    return x;
}

// An importance vector (an imatrix's E[x^2]): positive, spread over two orders of magnitude.
inline std::vector<float> make_importance(int seed, std::size_t cols) {
    lcg g(0xABCDu + std::uint64_t(seed));
    std::vector<float> w(cols);
    for (float& v : w) {
        const double u = g.uniform();
        v = float(0.01 + 2.0 * u * u * u);
    }
    return w;
}

inline std::uint64_t fnv1a(const void* data, std::size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

}  // namespace ggml_qtest
}  // namespace edgeq
