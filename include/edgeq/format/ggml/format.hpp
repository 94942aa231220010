// A matrix stored in one of llama.cpp's block formats: rows of consecutive blocks, exactly as a
// GGUF tensor's data, so a tensor can be viewed in place from a memory-mapped file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../../config.hpp"
#include "../grouped.hpp"
#include "blocks.hpp"

namespace edgeq {

template <class Block>
struct ggml_format {
    using block_type = Block;
    static constexpr bool is_ggml = true;
    static constexpr int block_weights = Block::weights;
    using scale_type = fp16_t;  // for qmatrix<>; the blocks hold their own scales

    static constexpr double bits_per_weight(long /*row_length*/ = 4096) {
        return 8.0 * double(sizeof(Block)) / double(Block::weights);
    }
    static std::string name() { return Block::name(); }
    EDGEQ_HOST_DEVICE static constexpr std::size_t blocks_per_row(std::size_t cols) { return cols / Block::weights; }
    EDGEQ_HOST_DEVICE static constexpr std::size_t storage_bytes(std::size_t rows, std::size_t cols) {
        return rows * blocks_per_row(cols) * sizeof(Block);
    }
    // One row's bytes: qmatrix<>::row_codes(r) is then the first block of row r.
    EDGEQ_HOST_DEVICE static constexpr std::size_t row_code_bytes(std::size_t cols) {
        return blocks_per_row(cols) * sizeof(Block);
    }
    static const char* shape_problem(std::size_t cols) {
        if (cols == 0) return "the matrix has no columns";
        if (cols % std::size_t(Block::weights))
            return Block::weights == 32 ? "the row length is not a multiple of the 32-weight block"
                                        : "the row length is not a multiple of the 256-weight super-block";
        return nullptr;
    }
};

template <class Block>
struct qview<ggml_format<Block>> {
    using format = ggml_format<Block>;
    std::size_t rows = 0;
    std::size_t cols = 0;
    const Block* blocks = nullptr;

    EDGEQ_HOST_DEVICE const Block* row_blocks(std::size_t r) const { return blocks + r * format::blocks_per_row(cols); }
    static qview from_blob(const std::uint8_t* blob, std::size_t rows, std::size_t cols) {
        qview v;
        v.rows = rows;
        v.cols = cols;
        v.blocks = reinterpret_cast<const Block*>(blob);
        return v;
    }
};

template <class F>
struct is_ggml_format : std::false_type {};
template <class B>
struct is_ggml_format<ggml_format<B>> : std::true_type {};

}  // namespace edgeq
