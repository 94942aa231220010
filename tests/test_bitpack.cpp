#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include <edgeq/core/bitpack.hpp>
#include <edgeq/format/mantissa3.hpp>
#include <edgeq/kernel/simd/unpack.hpp>

namespace {

template <int Bits>
void round_trip() {
    std::mt19937 rng(Bits);
    for (int trial = 0; trial < 500; ++trial) {
        std::uint8_t codes[32], back[32], fast[32];
        for (auto& c : codes) c = std::uint8_t(rng() & ((1u << Bits) - 1u));
        if (trial == 0)
            for (auto& c : codes) c = std::uint8_t((1u << Bits) - 1u);  // all bits set
        edgeq::packed_chunk<Bits> packed;
        edgeq::pack_chunk<Bits>(codes, packed.bytes);
        edgeq::unpack_chunk<Bits>(packed.bytes, back);
        edgeq::kernel::unpack32<Bits>(packed.bytes, fast);
        for (int i = 0; i < 32; ++i) {
            REQUIRE(back[i] == codes[i]);
            REQUIRE(fast[i] == codes[i]);
        }
    }
}

}  // namespace

TEST_CASE("packing round-trips for every width, reference and SWAR unpack", "[bitpack]") {
    round_trip<2>();
    round_trip<3>();
    round_trip<4>();
    round_trip<5>();
    round_trip<6>();
    round_trip<8>();
}

TEST_CASE("packed chunks are dense: 32 codes take exactly 4 * bits bytes", "[bitpack]") {
    STATIC_REQUIRE(sizeof(edgeq::packed_chunk<3>) * 8 == 32 * 3);
    STATIC_REQUIRE(sizeof(edgeq::packed_chunk<5>) * 8 == 32 * 5);
    STATIC_REQUIRE(sizeof(edgeq::packed_chunk<6>) * 8 == 32 * 6);
}

TEST_CASE("the 4-bit plane puts codes j and j+16 in byte j, low nibble first", "[bitpack]") {
    std::uint8_t codes[32];
    for (int i = 0; i < 32; ++i) codes[i] = std::uint8_t(i & 15);
    std::uint8_t out[16];
    edgeq::pack_chunk<4>(codes, out);
    for (int j = 0; j < 16; ++j) CHECK(out[j] == std::uint8_t(codes[j] | (codes[j + 16] << 4)));
}

TEST_CASE("3-bit codes keep their high bit in a 1-bit plane after the 2-bit plane", "[bitpack]") {
    std::uint8_t codes[32] = {};
    codes[5] = 4;  // only the high bit, of code 5: byte 5 % 4 = 1 of the 1-bit plane, bit 5 / 4 = 1
    std::uint8_t out[12];
    edgeq::pack_chunk<3>(codes, out);
    for (int j = 0; j < 12; ++j) CHECK(out[j] == (j == 8 + 1 ? 2 : 0));
}

TEST_CASE("int3 in half mantissas: the layout of format/mantissa3.hpp, and the round trip from the planes", "[bitpack]") {
    const auto words = [](const std::uint8_t* b, int i) {
        return std::uint32_t(b[4 * i]) | std::uint32_t(b[4 * i + 1]) << 8 | std::uint32_t(b[4 * i + 2]) << 16 |
               std::uint32_t(b[4 * i + 3]) << 24;
    };
    std::uint8_t codes[32] = {}, out[12], back[32];
    codes[13] = 5;  // pair 6: word 1, slot 1, high half: bits 16 + 3 .. 16 + 5
    codes[30] = 6;  // pair 15, low half: bit 15 of words 1 and 2
    codes[31] = 1;  // pair 15, high half: bit 31 of word 0
    edgeq::pack_mantissa3(codes, out);
    CHECK(words(out, 0) == 0x80000000u);
    CHECK(words(out, 1) == ((5u << 19) | 0x8000u));
    CHECK(words(out, 2) == 0x8000u);

    std::mt19937 rng(3);
    for (int trial = 0; trial < 500; ++trial) {
        for (auto& c : codes) c = std::uint8_t(trial == 0 ? 7 : rng() & 7u);
        std::uint8_t planes[12];
        edgeq::pack_chunk<3>(codes, planes);
        edgeq::planes_to_mantissa3(planes, 1, out);
        edgeq::unpack_mantissa3(out, back);
        for (int i = 0; i < 32; ++i) REQUIRE(back[i] == codes[i]);
    }
}
