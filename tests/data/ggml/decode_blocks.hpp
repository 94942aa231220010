// Pseudo-random llama.cpp blocks, the same on every machine (splitmix64, no <random>
// distributions): random bytes with finite fp16 scales of sane size. Shared by
// tests/test_ggml_kernels.cpp and decode_golden.cpp (which makes decode_digests.txt with ggml).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <edgeq/format/ggml/blocks.hpp>

namespace edgeq {
namespace ggml_test {

constexpr std::size_t digest_blocks = 64;

struct splitmix64 {
    std::uint64_t s;
    std::uint64_t operator()() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

// A binary16 scale of either sign with magnitude in [2^-10, 2^-3), or positive for a min.
inline fp16_t random_scale(splitmix64& g, bool positive) {
    const std::uint64_t r = g();
    const unsigned exp = 5 + unsigned(r % 7), mant = unsigned((r >> 8) & 0x3ff), sign = positive ? 0u : unsigned((r >> 20) & 1);
    return fp16_t{std::uint16_t((sign << 15) | (exp << 10) | mant)};
}

template <class Block>
void randomize(Block& b, splitmix64& g) {
    unsigned char* p = reinterpret_cast<unsigned char*>(&b);
    for (std::size_t i = 0; i < sizeof(Block); i += 8) {
        const std::uint64_t r = g();
        std::memcpy(p + i, &r, sizeof(Block) - i < 8 ? sizeof(Block) - i : 8);
    }
}

inline void sane(ggml::block_q4_0& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_q4_1& b, splitmix64& g) { b.d = random_scale(g, true), b.m = random_scale(g, false); }
inline void sane(ggml::block_q5_0& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_q5_1& b, splitmix64& g) { b.d = random_scale(g, true), b.m = random_scale(g, false); }
inline void sane(ggml::block_q8_0& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_iq4_nl& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_q2_K& b, splitmix64& g) { b.d = random_scale(g, true), b.dmin = random_scale(g, true); }
inline void sane(ggml::block_q3_K& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_q4_K& b, splitmix64& g) { b.d = random_scale(g, true), b.dmin = random_scale(g, true); }
inline void sane(ggml::block_q5_K& b, splitmix64& g) { b.d = random_scale(g, true), b.dmin = random_scale(g, true); }
inline void sane(ggml::block_q6_K& b, splitmix64& g) { b.d = random_scale(g, false); }
inline void sane(ggml::block_iq4_xs& b, splitmix64& g) { b.d = random_scale(g, false); }

template <class Block>
void fill_blocks(Block* blocks, std::size_t n, std::uint64_t seed) {
    splitmix64 g{seed * 0x2545f4914f6cdd1dull + 1};
    for (std::size_t i = 0; i < n; ++i) {
        randomize(blocks[i], g);
        sane(blocks[i], g);
    }
}

// n activations in [-4, 4) exactly representable (24-bit integers times 2^-21), every 97th
// times 16: outliers, as LLMs have.
inline void random_floats(float* x, std::size_t n, std::uint64_t seed) {
    splitmix64 g{seed * 0x9e3779b97f4a7c15ull + 3};
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t v = std::int32_t(g() >> 40) - (1 << 23);
        x[i] = float(v) * (1.0f / 2097152.0f) * (i % 97 == 5 ? 16.0f : 1.0f);
    }
}

// FNV-1a over bytes.
inline std::uint64_t fnv1a_bytes(const void* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

// FNV-1a over the float bit patterns.
inline std::uint64_t fnv1a(const float* y, std::size_t n) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, &y[i], 4);
        for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xffu)) * 0x100000001b3ull;
    }
    return h;
}

}  // namespace ggml_test
}  // namespace edgeq
