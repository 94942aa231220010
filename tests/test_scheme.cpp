#include <catch2/catch.hpp>

#include <type_traits>

#include <edgeq/scheme.hpp>

namespace eq = edgeq;

TEST_CASE("scheme defaults: rtn, uniform grid, 4 bits, group 128, symmetric, fp16 scales", "[scheme]") {
    using s = eq::scheme<>;
    STATIC_REQUIRE(std::is_same<s::algorithm, eq::rtn<>>::value);
    STATIC_REQUIRE(s::format::bits == 4);
    STATIC_REQUIRE(s::format::group == 128);
    STATIC_REQUIRE(!s::format::asymmetric);
    STATIC_REQUIRE(std::is_same<s::format::scale_type, eq::fp16_t>::value);
    STATIC_REQUIRE(eq::bits_per_weight<s>() == 4.125);
}

TEST_CASE("policies compose in any order", "[scheme]") {
    using a = eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric, eq::rtn<eq::clip_search>>;
    using b = eq::scheme<eq::rtn<eq::clip_search>, eq::asymmetric, eq::group<64>, eq::bits<3>>;
    STATIC_REQUIRE(std::is_same<a::format, b::format>::value);
    STATIC_REQUIRE(a::algorithm::clip);
}

TEST_CASE("bits_per_weight is a constant expression that counts codes, scales and zero points", "[scheme]") {
    constexpr double int3 = eq::bits_per_weight<eq::scheme<eq::bits<3>, eq::group<64>, eq::asymmetric>>();
    STATIC_REQUIRE(int3 == 3.0 + (16.0 + 8.0) / 64.0);
    STATIC_REQUIRE(eq::bits_per_weight<eq::scheme<eq::bits<2>, eq::group<32>, eq::fp32_scale>>() == 3.0);
    STATIC_REQUIRE(eq::bits_per_weight<eq::scheme<eq::bits<8>, eq::per_row, eq::fp32_scale>>(4096) == 8.0 + 32.0 / 4096);
    STATIC_REQUIRE(eq::bits_per_weight<eq::scheme<eq::bits<8>, eq::per_row, eq::fp32_scale>>(512) == 8.0 + 32.0 / 512);
    // NF4 at QLoRA's settings: fp32 absmax per 64 = 4.5; double quantized = 4 + 8/64 + 32/(64*256).
    STATIC_REQUIRE(eq::bits_per_weight<eq::scheme<eq::nf4, eq::fp32_scale>>() == 4.5);
    STATIC_REQUIRE(eq::bits_per_weight<eq::scheme<eq::nf4, eq::double_quant>>() == 4.0 + 8.0 / 64 + 32.0 / (64 * 256));
}

TEST_CASE("NF4 defaults to QLoRA's block of 64 and 4 bits", "[scheme]") {
    using s = eq::scheme<eq::nf4>;
    STATIC_REQUIRE(s::format::group == 64);
    STATIC_REQUIRE(s::format::bits == 4);
    STATIC_REQUIRE(!s::format::is_uniform);
}

TEST_CASE("storage size of a format matches its bits per weight", "[scheme]") {
    using f = eq::format_of<eq::scheme<eq::bits<5>, eq::group<128>, eq::asymmetric>>;
    const std::size_t rows = 256, cols = 4096;
    // Sections are 64-byte aligned, so the blob equals the exact size when every section is a multiple of 64.
    CHECK(f::storage_bytes(rows, cols) * 8 == std::size_t(f::bits_per_weight(cols) * rows * cols));
}
