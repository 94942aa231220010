// llama.cpp's Q4_0 and Q8_0 hold the same values as the grouped formats int4-g32 and int8-g32
// (format/grouped.hpp: symmetric grid, fp16 scale per 32 weights), in another byte order:
//
//   Q4_0   18-byte blocks {d, 16 bytes}: w = d (q - 8), byte j holds weights j and j + 16
//          -> int4-g32: the same 16 bytes are its 4-bit chunk (core/bitpack.hpp), zero 8
//   Q8_0   34-byte blocks {d, 32 signed bytes}: w = d q
//          -> int8-g32: code q + 128 (q ^ 0x80), zero 128
//
// Both take 4.5 / 8.5 bits per weight either way (plus at most 63 bytes of section alignment).
// Why repack: inside a row the blocks are only 2-byte aligned, so a GPU kernel reads them with
// several narrow loads per 32 weights; the twin's codes are 16-byte aligned, its scales a separate
// array (kernel/cuda/grouped.cuh reads 16 bytes per load). The GPU engine repacks on upload
// (engine/cuda/llama_gpu.cuh); the values, and so the products, are unchanged bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../grouped.hpp"
#include "blocks.hpp"

namespace edgeq {
namespace ggml {

template <class Block>
struct grouped_twin;  // no twin: the block has more than one scale or a minimum

template <>
struct grouped_twin<block_q4_0> {
    using format = grouped_format<uniform_grid, 4, 32, false, fp16_t>;
    static void chunk(const block_q4_0& b, std::uint8_t* out) {
        for (int j = 0; j < 16; ++j) out[j] = b.qs[j];
    }
};

template <>
struct grouped_twin<block_q8_0> {
    using format = grouped_format<uniform_grid, 8, 32, false, fp16_t>;
    static void chunk(const block_q8_0& b, std::uint8_t* out) {
        for (int j = 0; j < 32; ++j) out[j] = std::uint8_t(std::uint8_t(b.qs[j]) ^ 0x80u);
    }
};

// Rows [r0, r0 + n) of a matrix of `cols` weights per row (blocks: those n rows, as GGUF stores
// them) into the twin's sections: codes receives n * cols * bits / 8 bytes (the rows' chunks),
// scales n * cols / 32 values. Called a few rows at a time, so no full second copy is needed.
template <class Block>
void to_grouped_twin(const Block* blocks, std::size_t n, std::size_t cols, std::uint8_t* codes, fp16_t* scales) {
    using twin = grouped_twin<Block>;
    constexpr std::size_t chunk_bytes = std::size_t(twin::format::bits) * 4;
    const std::size_t count = n * (cols / Block::weights);
    for (std::size_t i = 0; i < count; ++i) {
        twin::chunk(blocks[i], codes + i * chunk_bytes);
        scales[i] = blocks[i].d;
    }
}

}  // namespace ggml
}  // namespace edgeq
