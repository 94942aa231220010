#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

#include <edgeq/core/half.hpp>

using edgeq::float_to_half;
using edgeq::half_to_float;

TEST_CASE("every half round-trips through float exactly", "[half]") {
    for (std::uint32_t h = 0; h < 0x10000u; ++h) {
        const float f = half_to_float(std::uint16_t(h));
        if (std::isnan(f)) {
            CHECK((h & 0x7c00u) == 0x7c00u);
            CHECK(std::isnan(half_to_float(float_to_half(f))));
            continue;
        }
        REQUIRE(float_to_half(f) == h);
    }
}

TEST_CASE("float to half rounds to nearest even", "[half]") {
    CHECK(float_to_half(1.0f) == 0x3c00);
    CHECK(float_to_half(-2.0f) == 0xc000);
    CHECK(float_to_half(65504.0f) == 0x7bff);
    CHECK(float_to_half(65520.0f) == 0x7c00);  // the halfway point to 2^16 rounds up to inf
    CHECK(float_to_half(65519.99f) == 0x7bff);
    CHECK(float_to_half(std::numeric_limits<float>::infinity()) == 0x7c00);
    // 1 + 2^-11 is halfway between 1 and the next half: ties go to the even mantissa (1).
    CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
    CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    // Subnormals: the smallest is 2^-24; half of it ties to zero (even), a bit more rounds up.
    CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(float_to_half(std::ldexp(1.5f, -25)) == 0x0001);
    CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 ulp ties to 2
    CHECK(float_to_half(-0.0f) == 0x8000);
}

TEST_CASE("float to half agrees with a float64 nearest search on random values", "[half]") {
    std::uint32_t s = 12345;
    for (int i = 0; i < 200000; ++i) {
        s = s * 1664525u + 1013904223u;
        const float f = std::ldexp(float(s >> 8) / float(1 << 24) * 2.0f - 1.0f, int(s % 40) - 26);
        const std::uint16_t h = float_to_half(f);
        const double err = std::fabs(double(half_to_float(h)) - double(f));
        // Neither neighbour is closer.
        for (int dlt : {-1, 1}) {
            const std::uint16_t n = std::uint16_t(h + dlt);
            if ((n & 0x7c00u) == 0x7c00u || ((n ^ h) & 0x8000u)) continue;
            REQUIRE(err <= std::fabs(double(half_to_float(n)) - double(f)));
        }
    }
}
