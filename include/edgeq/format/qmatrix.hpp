// An owning quantized matrix (host memory): the blob of format/grouped.hpp plus its shape.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/aligned_buffer.hpp"
#include "../core/error.hpp"
#include "grouped.hpp"

namespace edgeq {

template <class Format>
class qmatrix {
   public:
    using format = Format;
    using scale_type = typename Format::scale_type;

    qmatrix() = default;
    qmatrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols) {
        if (const char* why = Format::shape_problem(cols))
            throw error("cannot store a " + std::to_string(rows) + " x " + std::to_string(cols) + " matrix in " +
                        Format::name() + ": " + why);
        blob_ = aligned_buffer(Format::storage_bytes(rows, cols));
    }

    std::size_t rows() const { return rows_; }
    std::size_t cols() const { return cols_; }
    std::size_t storage_bytes() const { return blob_.size(); }
    const aligned_buffer& blob() const { return blob_; }

    qview<Format> view() const { return qview<Format>::from_blob(blob_.data(), rows_, cols_); }

    // Writers, for the algorithms that fill a matrix.
    std::uint8_t* row_codes(std::size_t r) { return blob_.data() + r * Format::row_code_bytes(cols_); }
    scale_type* scales() { return reinterpret_cast<scale_type*>(blob_.data() + Format::scales_offset(rows_, cols_)); }
    std::uint8_t* zeros() { return blob_.data() + Format::zeros_offset(rows_, cols_); }
    float* dq_factors() { return reinterpret_cast<float*>(blob_.data() + Format::dq_offset(rows_, cols_)); }
    void set_dq_mean(float m) { dq_factors()[Format::n_dq_blocks(rows_, cols_)] = m; }

   private:
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
    aligned_buffer blob_;
};

// Packs one row of unpacked codes (cols values below 2^bits) into its place.
template <class Format>
void pack_row(qmatrix<Format>& m, std::size_t r, const std::uint8_t* codes) {
    std::uint8_t* out = m.row_codes(r);
    for (std::size_t c = 0; c < m.cols(); c += chunk_weights)
        pack_chunk<Format::bits>(codes + c, out + c / chunk_weights * plane_split<Format::bits>::chunk_bytes);
}

// Unpacks codes [c0, c0 + n) of row r; c0 and n are multiples of 32.
template <class Format>
void unpack_codes(const qview<Format>& v, std::size_t r, std::size_t c0, std::size_t n, std::uint8_t* codes) {
    const std::uint8_t* in = v.row_codes(r);
    for (std::size_t c = c0; c < c0 + n; c += chunk_weights)
        unpack_chunk<Format::bits>(in + c / chunk_weights * plane_split<Format::bits>::chunk_bytes, codes + (c - c0));
}

}  // namespace edgeq
