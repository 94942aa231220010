// SpQR (Dettmers et al., 2023): a dense part of low-bit codes in small groups whose statistics
// are themselves quantized, plus a few outlier weights kept in float16 in a sparse matrix.
//
//     spqr_format<Bits = 3, Group = 16, StatBits = 3, StatGroup = 16>
//
// Dense part. Row r, group j (columns [j G, (j+1) G)) decodes w = d * (q - z), q in
// [0, 2^Bits), with a scale d > 0 and a zero point z in code units that need not be an integer
// (the paper's min-max fit, d = (max - min) / (2^Bits - 1), z = -min / d; the quantizer widens
// the range to hold 0, so z is in [0, 2^Bits - 1]). The first-level statistics are quantized to
// StatBits bits over the StatGroup rows r of one row block that share the column group j, the
// direction the paper uses, so that GPTQ's sweep can fit and quantize them all when it reaches
// column j G:
//     d = d_min + d_step * qd      z = z_min + z_step * qz      (qd, qz in [0, 2^StatBits))
// with d_min, d_step, z_min, z_step in float16 (the paper's 16-bit second level).
//
// Sparse part: outliers as CSR, each a float16 *residual* added to the dense value (so the
// effective weight is d (q - z) + half(o)): y = D x + S x is two independent products, and the
// dense code under an outlier is the nearest one, which keeps the residual (and its float16
// rounding) small.
//
// A matrix of R rows and C columns is one blob of sections, each starting on a 64-byte boundary:
//     codes    R * C * Bits / 8 bytes, row r at r * C * Bits / 8, 32-weight chunks as
//              core/bitpack.hpp describes (a group of 16 is half a chunk)
//     stats    ceil(R / StatGroup) * (C / G) stat blocks (spqr_stat_block below), block
//              (b, j) at b * (C / G) + j: the codes of rows b*StatGroup .. and their fp16 ranges
//     row_ptr  R + 1 uint32: row r's outliers are [row_ptr[r], row_ptr[r+1])
//     index    nnz column indices, uint16 when C <= 65536, else uint32; increasing within a row
//     values   nnz float16 residuals
// nnz = row_ptr[R], so the layout follows from (R, C) and the blob itself.
//
// Bits per weight, exactly (no alignment padding):
//     Bits + 8 sizeof(stat block) / (G StatGroup)              dense (R a multiple of StatGroup)
//     + 32 (R + 1) / (R C) + nnz (16 + index bits) / (R C)     sparse
// 3 + 160 / 256 = 3.625 for the default, the paper's w + (s + z) / b1 + 64 / (b1 b2).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "../config.hpp"
#include "../core/aligned_buffer.hpp"
#include "../core/bitpack.hpp"
#include "../core/error.hpp"
#include "../core/half.hpp"
#include "grouped.hpp"

namespace edgeq {

namespace detail {
// The name of spqr_format<Bits, Group, StatBits, StatGroup>, as the registry spells it:
// "spqr-3bit-g16", with "-s2" / "-sg32" for statistics other than 3 bits over 16 rows.
inline std::string spqr_name(int bits, int group, int stat_bits, int stat_group) {
    return "spqr-" + std::to_string(bits) + "bit-g" + std::to_string(group) +
           (stat_bits != 3 ? "-s" + std::to_string(stat_bits) : std::string()) +
           (stat_group != 16 ? "-sg" + std::to_string(stat_group) : std::string());
}

// Code i of a packed 32-code chunk (core/bitpack.hpp): plane of width w, byte i % 4w, bit
// (i / 4w) w. Reads one code without unpacking the chunk.
template <int Bits>
EDGEQ_HOST_DEVICE inline int chunk_code(const std::uint8_t* chunk, int i) {
    using p = plane_split<Bits>;
    constexpr int lb = p::low_bytes, hb = p::high_bytes > 0 ? p::high_bytes : 1;
    int q = (chunk[i % lb] >> ((i / lb) * p::low)) & ((1 << p::low) - 1);
    if (p::high) q |= ((chunk[lb + i % hb] >> ((i / hb) * p::high)) & ((1 << p::high) - 1)) << p::low;
    return q;
}
}  // namespace detail

// The statistics of StatGroup rows for one column group: StatGroup scale codes, then
// StatGroup zero codes, packed in 32-code chunks, then the second level in float16.
template <int StatBits, int StatGroup>
struct spqr_stat_block {
    static constexpr int n_codes = 2 * StatGroup;
    static constexpr int code_bytes = n_codes / chunk_weights * plane_split<StatBits>::chunk_bytes;
    std::uint8_t codes[code_bytes];
    fp16_t d_min, d_step, z_min, z_step;

    // Scale and zero of row i (< StatGroup) of the block.
    EDGEQ_HOST_DEVICE int scale_code(int i) const { return code(i); }
    EDGEQ_HOST_DEVICE int zero_code(int i) const { return code(StatGroup + i); }
    EDGEQ_HOST_DEVICE float scale(int i) const { return d_min.to_float() + d_step.to_float() * float(scale_code(i)); }
    EDGEQ_HOST_DEVICE float zero(int i) const { return z_min.to_float() + z_step.to_float() * float(zero_code(i)); }

   private:
    EDGEQ_HOST_DEVICE int code(int i) const {
        return detail::chunk_code<StatBits>(codes + i / chunk_weights * plane_split<StatBits>::chunk_bytes,
                                            i % chunk_weights);
    }
};
// The default block: 16 rows x (3-bit scale + 3-bit zero) = 12 bytes, plus 4 x fp16.
static_assert(sizeof(spqr_stat_block<3, 16>) == 20,
              "3-bit stats of 16 rows: 12 bytes of codes + 8 bytes of fp16 ranges");
static_assert(sizeof(spqr_stat_block<2, 32>) == 24,
              "2-bit stats of 32 rows: 16 bytes of codes + 8 bytes of fp16 ranges");

template <int Bits = 3, int Group = 16, int StatBits = 3, int StatGroup = 16>
struct spqr_format {
    static constexpr int bits = Bits;
    static constexpr int group = Group;
    static constexpr int stat_bits = StatBits;
    static constexpr int stat_group = StatGroup;
    static constexpr int max_code = (1 << Bits) - 1;
    static constexpr int max_stat_code = (1 << StatBits) - 1;
    using stat_block = spqr_stat_block<StatBits, StatGroup>;
    static constexpr int stat_block_bits = int(8 * sizeof(stat_block));

    static_assert(Bits == 2 || Bits == 3 || Bits == 4 || Bits == 5 || Bits == 6 || Bits == 8,
                  "spqr_format: the dense codes pack 2, 3, 4, 5, 6 or 8 bits");
    static_assert(Group == 16 || (Group > 0 && Group % chunk_weights == 0),
                  "spqr_format: a group is 16 weights (half a packed chunk) or a multiple of 32");
    static_assert(StatBits == 2 || StatBits == 3 || StatBits == 4 || StatBits == 5 || StatBits == 6 || StatBits == 8,
                  "spqr_format: statistics pack 2, 3, 4, 5, 6 or 8 bits");
    static_assert(StatGroup > 0 && StatGroup % 16 == 0,
                  "spqr_format: a stat group is a multiple of 16 rows (its 2 x StatGroup codes fill 32-code chunks)");
    static_assert(stat_block_bits == 2 * StatGroup * StatBits + 4 * 16, "spqr_stat_block has no padding");

    // Dense part only, for a row count that is a multiple of StatGroup.
    static constexpr double dense_bits_per_weight() {
        return double(Bits) + double(stat_block_bits) / double(Group * StatGroup);
    }

    EDGEQ_HOST_DEVICE static constexpr std::size_t group_size(std::size_t) { return std::size_t(Group); }
    EDGEQ_HOST_DEVICE static constexpr std::size_t groups_per_row(std::size_t cols) {
        return cols / std::size_t(Group);
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t row_code_bytes(std::size_t cols) { return cols * Bits / 8; }
    EDGEQ_HOST_DEVICE static constexpr std::size_t row_blocks(std::size_t rows) {
        return (rows + StatGroup - 1) / StatGroup;
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t n_stat_blocks(std::size_t rows, std::size_t cols) {
        return row_blocks(rows) * groups_per_row(cols);
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t index_bytes(std::size_t cols) { return cols <= 65536 ? 2 : 4; }

    // Section offsets in the blob.
    EDGEQ_HOST_DEVICE static constexpr std::size_t stats_offset(std::size_t rows, std::size_t cols) {
        return detail::align64(rows * row_code_bytes(cols));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t row_ptr_offset(std::size_t rows, std::size_t cols) {
        return stats_offset(rows, cols) + detail::align64(n_stat_blocks(rows, cols) * sizeof(stat_block));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t index_offset(std::size_t rows, std::size_t cols) {
        return row_ptr_offset(rows, cols) + detail::align64(4 * (rows + 1));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t values_offset(std::size_t rows, std::size_t cols, std::size_t nnz) {
        return index_offset(rows, cols) + detail::align64(nnz * index_bytes(cols));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t storage_bytes(std::size_t rows, std::size_t cols, std::size_t nnz) {
        return values_offset(rows, cols, nnz) + detail::align64(2 * nnz);
    }

    // Every stored bit, without the alignment padding.
    static constexpr double content_bits(std::size_t rows, std::size_t cols, std::size_t nnz) {
        return double(rows) * double(cols) * Bits + double(n_stat_blocks(rows, cols)) * stat_block_bits +
               32.0 * double(rows + 1) + double(nnz) * (16.0 + 8.0 * double(index_bytes(cols)));
    }

    // "spqr-3bit-g16" (detail::spqr_name): the registry's name, also what a GGUF file records.
    static std::string name() { return detail::spqr_name(Bits, Group, StatBits, StatGroup); }

    // Why a shape cannot be stored, or nullptr if it can.
    static const char* shape_problem(std::size_t rows, std::size_t cols) {
        if (rows == 0 || cols == 0) return "the matrix is empty";
        if (cols % chunk_weights) return "the row length is not a multiple of 32, the packing chunk";
        if (cols % std::size_t(Group)) return "the row length is not a multiple of the group size";
        if (rows >= (std::size_t(1) << 32) || cols >= (std::size_t(1) << 32))
            return "a dimension does not fit in 32 bits";
        return nullptr;
    }
};
static_assert(spqr_format<3, 16, 3, 16>::dense_bits_per_weight() == 3.625, "3 + (3 + 3) / 16 + 64 / 256");
static_assert(spqr_format<4, 16, 3, 16>::dense_bits_per_weight() == 4.625, "4 + (3 + 3) / 16 + 64 / 256");
static_assert(spqr_format<3, 32, 3, 16>::dense_bits_per_weight() == 3.3125, "3 + (3 + 3) / 32 + 64 / 512");

// A non-owning view of a stored SpQR matrix: what the kernels take.
template <class Format>
struct spqr_view {
    using format = Format;
    using stat_block = typename Format::stat_block;

    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t nnz = 0;
    const std::uint8_t* codes = nullptr;
    const stat_block* stats = nullptr;
    const std::uint32_t* row_ptr = nullptr;
    const std::uint16_t* index16 = nullptr;  // cols <= 65536
    const std::uint32_t* index32 = nullptr;  // otherwise
    const std::uint16_t* values = nullptr;   // float16 bits

    EDGEQ_HOST_DEVICE std::size_t group_size() const { return std::size_t(Format::group); }
    EDGEQ_HOST_DEVICE std::size_t groups_per_row() const { return Format::groups_per_row(cols); }
    EDGEQ_HOST_DEVICE const std::uint8_t* row_codes(std::size_t r) const {
        return codes + r * Format::row_code_bytes(cols);
    }
    // The stat block of row r's group j, and r's place in it.
    EDGEQ_HOST_DEVICE const stat_block& block(std::size_t r, std::size_t j) const {
        return stats[r / Format::stat_group * groups_per_row() + j];
    }
    EDGEQ_HOST_DEVICE float scale(std::size_t r, std::size_t j) const {
        return block(r, j).scale(int(r % Format::stat_group));
    }
    EDGEQ_HOST_DEVICE float zero(std::size_t r, std::size_t j) const {
        return block(r, j).zero(int(r % Format::stat_group));
    }
    EDGEQ_HOST_DEVICE std::size_t outlier_col(std::size_t k) const { return index16 ? index16[k] : index32[k]; }
    EDGEQ_HOST_DEVICE float outlier_value(std::size_t k) const { return half_to_float(values[k]); }

    // Views a blob laid out as Format describes (nnz is read from it).
    static spqr_view from_blob(const std::uint8_t* blob, std::size_t rows, std::size_t cols) {
        spqr_view v;
        v.rows = rows;
        v.cols = cols;
        v.codes = blob;
        v.stats = reinterpret_cast<const stat_block*>(blob + Format::stats_offset(rows, cols));
        v.row_ptr = reinterpret_cast<const std::uint32_t*>(blob + Format::row_ptr_offset(rows, cols));
        v.nnz = v.row_ptr[rows];
        const std::uint8_t* idx = blob + Format::index_offset(rows, cols);
        if (Format::index_bytes(cols) == 2)
            v.index16 = reinterpret_cast<const std::uint16_t*>(idx);
        else
            v.index32 = reinterpret_cast<const std::uint32_t*>(idx);
        v.values = reinterpret_cast<const std::uint16_t*>(blob + Format::values_offset(rows, cols, v.nnz));
        return v;
    }
};

// The owning matrix (host memory): the blob above plus its shape.
template <class Format>
class spqr_matrix {
   public:
    using format = Format;
    using stat_block = typename Format::stat_block;

    spqr_matrix() = default;
    // A zeroed matrix with room for nnz outliers (row_ptr[rows] is set to nnz).
    spqr_matrix(std::size_t rows, std::size_t cols, std::size_t nnz) : rows_(rows), cols_(cols), nnz_(nnz) {
        if (const char* why = Format::shape_problem(rows, cols))
            throw error("cannot store a " + std::to_string(rows) + " x " + std::to_string(cols) + " matrix in " +
                        Format::name() + ": " + why);
        if (nnz >= (std::size_t(1) << 32) || nnz > rows * cols)
            throw error(Format::name() + ": " + std::to_string(nnz) + " outliers in a " + std::to_string(rows) + " x " +
                        std::to_string(cols) + " matrix");
        blob_ = aligned_buffer(Format::storage_bytes(rows, cols, nnz));
        row_ptr()[rows] = std::uint32_t(nnz);
    }

    // A copy of a stored blob (a file's tensor data), checked: its size, the CSR structure
    // (row_ptr from 0, increasing, column indices increasing within a row and < cols), finite
    // fp16 values and second-level statistics. Throws edgeq::error naming the first problem.
    static spqr_matrix from_blob(const std::uint8_t* data, std::size_t bytes, std::size_t rows, std::size_t cols) {
        if (const char* why = Format::shape_problem(rows, cols))
            throw error("cannot read a " + std::to_string(rows) + " x " + std::to_string(cols) + " " + Format::name() +
                        " matrix: " + why);
        const std::size_t fixed = Format::index_offset(rows, cols);
        if (bytes < fixed)
            throw error(Format::name() + " blob of " + std::to_string(bytes) + " bytes, the shape needs at least " +
                        std::to_string(fixed));
        std::uint32_t nnz;
        std::memcpy(&nnz, data + Format::row_ptr_offset(rows, cols) + 4 * rows, 4);
        if (nnz > rows * cols || bytes != Format::storage_bytes(rows, cols, nnz))
            throw error(Format::name() + " blob of " + std::to_string(bytes) + " bytes with " + std::to_string(nnz) +
                        " outliers; that needs " + std::to_string(Format::storage_bytes(rows, cols, nnz)));
        spqr_matrix m(rows, cols, nnz);
        std::memcpy(m.blob_.data(), data, bytes);
        m.check();
        return m;
    }

    std::size_t rows() const { return rows_; }
    std::size_t cols() const { return cols_; }
    std::size_t nnz() const { return nnz_; }
    std::size_t storage_bytes() const { return blob_.size(); }
    const aligned_buffer& blob() const { return blob_; }
    spqr_view<Format> view() const { return spqr_view<Format>::from_blob(blob_.data(), rows_, cols_); }

    // Exact average bits per weight: codes, both levels of statistics, row_ptr, indices, values.
    double bits_per_weight() const {
        return Format::content_bits(rows_, cols_, nnz_) / (double(rows_) * double(cols_));
    }
    double outlier_fraction() const { return double(nnz_) / (double(rows_) * double(cols_)); }

    // Writers, for the quantizer.
    std::uint8_t* row_codes(std::size_t r) { return blob_.data() + r * Format::row_code_bytes(cols_); }
    stat_block* stats() { return reinterpret_cast<stat_block*>(blob_.data() + Format::stats_offset(rows_, cols_)); }
    std::uint32_t* row_ptr() {
        return reinterpret_cast<std::uint32_t*>(blob_.data() + Format::row_ptr_offset(rows_, cols_));
    }
    std::uint8_t* index() { return blob_.data() + Format::index_offset(rows_, cols_); }
    std::uint16_t* values() {
        return reinterpret_cast<std::uint16_t*>(blob_.data() + Format::values_offset(rows_, cols_, nnz_));
    }
    // Outlier k sits in column c (written in the index width of this shape).
    void set_outlier_col(std::size_t k, std::size_t c) {
        if (Format::index_bytes(cols_) == 2) {
            const std::uint16_t v = std::uint16_t(c);
            std::memcpy(index() + 2 * k, &v, 2);
        } else {
            const std::uint32_t v = std::uint32_t(c);
            std::memcpy(index() + 4 * k, &v, 4);
        }
    }

    // Throws edgeq::error if the sparse structure or a float16 field is corrupt.
    void check() const {
        const spqr_view<Format> v = view();
        const std::string who =
            Format::name() + " matrix " + std::to_string(rows_) + " x " + std::to_string(cols_) + ": ";
        if (v.row_ptr[0] != 0) throw error(who + "row_ptr[0] is " + std::to_string(v.row_ptr[0]) + ", not 0");
        for (std::size_t r = 0; r < rows_; ++r) {
            if (v.row_ptr[r + 1] < v.row_ptr[r] || v.row_ptr[r + 1] > nnz_)
                throw error(who + "row_ptr[" + std::to_string(r + 1) + "] = " + std::to_string(v.row_ptr[r + 1]) +
                            " is out of order or past the " + std::to_string(nnz_) + " outliers");
            for (std::size_t k = v.row_ptr[r]; k < v.row_ptr[r + 1]; ++k) {
                const std::size_t c = v.outlier_col(k);
                if (c >= cols_ || (k > v.row_ptr[r] && c <= v.outlier_col(k - 1)))
                    throw error(who + "outlier " + std::to_string(k) + " of row " + std::to_string(r) + " has column " +
                                std::to_string(c) + " (out of range or not increasing)");
                if (!std::isfinite(v.outlier_value(k)))
                    throw error(who + "outlier " + std::to_string(k) + " is not finite");
            }
        }
        for (std::size_t i = 0; i < Format::n_stat_blocks(rows_, cols_); ++i) {
            const stat_block& b = v.stats[i];
            if (!std::isfinite(b.d_min.to_float()) || !std::isfinite(b.d_step.to_float()) ||
                !std::isfinite(b.z_min.to_float()) || !std::isfinite(b.z_step.to_float()))
                throw error(who + "stat block " + std::to_string(i) + " has a non-finite float16 range");
        }
    }

   private:
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
    std::size_t nnz_ = 0;
    aligned_buffer blob_;
};

}  // namespace edgeq
