// The grouped formats: uniform int-N (2..8 bits, symmetric or with a zero point) and NF4, with
// one scale per group of G weights of a row (or per row), stored as fp16, fp32 or double-
// quantized 8-bit codes.
//
// A matrix of R rows and C columns is one byte blob of sections, each starting on a 64-byte
// boundary (so the blob can live in a GGUF tensor or a device buffer as it is):
//     codes   R * C * bits / 8 bytes; row r starts at r * C * bits / 8; chunks of 32 weights
//             packed as core/bitpack.hpp describes
//     scales  R * (C / G) scales, row-major, of the scale storage type
//     zeros   R * (C / G) bytes, asymmetric formats only
//     dq      double_quant only: ceil(R * (C / G) / 256) fp32 block factors, then one fp32 mean
// Bits per weight: bits + (scale bits + 8 if asymmetric) / G  (+ 32 / (256 G) with double_quant).
// Decoding: w = d * (v(q) - z) with v the code-book (q itself for the uniform grid), z the zero
// point (2^(bits-1) for symmetric uniform, 0 for NF4) and d the group scale.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../config.hpp"
#include "../core/bitpack.hpp"
#include "../core/half.hpp"
#include "../policy/codebook.hpp"
#include "../policy/scale.hpp"

namespace edgeq {

namespace detail {
EDGEQ_HOST_DEVICE constexpr std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }

template <class Codebook>
struct codebook_value {
    EDGEQ_HOST_DEVICE static float value(int q) { return Codebook::value(q); }
};
template <>
struct codebook_value<uniform_grid> {
    EDGEQ_HOST_DEVICE static float value(int q) { return float(q); }
};
}  // namespace detail

template <class Codebook, int Bits, int Group, bool Asymmetric, class ScaleT>
struct grouped_format {
    using codebook = Codebook;
    using scale_type = ScaleT;
    static constexpr int bits = Bits;
    static constexpr int group = Group;  // 0: one group per row
    static constexpr bool asymmetric = Asymmetric;
    static constexpr bool is_uniform = std::is_same<Codebook, uniform_grid>::value;
    static constexpr bool is_double_quant = std::is_same<ScaleT, dq8_t>::value;
    static constexpr int max_code = (1 << Bits) - 1;
    // The zero point that symmetric formats do not store.
    static constexpr int implicit_zero = is_uniform ? (1 << (Bits - 1)) : 0;
    static constexpr int dq_block = 256;

    static_assert(Bits >= 2 && Bits <= 8, "grouped_format: 2 to 8 bits");
    static_assert(!(Asymmetric && !is_uniform), "grouped_format: only the uniform grid has a zero point");

    static constexpr double bits_per_weight(long row_length = 4096) {
        const double g = Group ? double(Group) : double(row_length);
        const double scale_bits = is_double_quant ? 8.0 + 32.0 / dq_block : 8.0 * sizeof(ScaleT);
        return double(Bits) + (scale_bits + (Asymmetric ? 8.0 : 0.0)) / g;
    }

    EDGEQ_HOST_DEVICE static constexpr std::size_t group_size(std::size_t cols) { return Group ? std::size_t(Group) : cols; }
    EDGEQ_HOST_DEVICE static constexpr std::size_t groups_per_row(std::size_t cols) { return cols / group_size(cols); }
    EDGEQ_HOST_DEVICE static constexpr std::size_t row_code_bytes(std::size_t cols) { return cols * Bits / 8; }

    // Section offsets in the blob.
    EDGEQ_HOST_DEVICE static constexpr std::size_t codes_offset() { return 0; }
    EDGEQ_HOST_DEVICE static constexpr std::size_t n_scales(std::size_t rows, std::size_t cols) {
        return rows * groups_per_row(cols);
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t scales_offset(std::size_t rows, std::size_t cols) {
        return detail::align64(rows * row_code_bytes(cols));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t zeros_offset(std::size_t rows, std::size_t cols) {
        return scales_offset(rows, cols) + detail::align64(n_scales(rows, cols) * sizeof(ScaleT));
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t n_dq_blocks(std::size_t rows, std::size_t cols) {
        return is_double_quant ? (n_scales(rows, cols) + dq_block - 1) / dq_block : 0;
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t dq_offset(std::size_t rows, std::size_t cols) {
        return zeros_offset(rows, cols) + (Asymmetric ? detail::align64(n_scales(rows, cols)) : 0);
    }
    EDGEQ_HOST_DEVICE static constexpr std::size_t storage_bytes(std::size_t rows, std::size_t cols) {
        return dq_offset(rows, cols) + (is_double_quant ? detail::align64(4 * (n_dq_blocks(rows, cols) + 1)) : 0);
    }

    static std::string name() {
        return std::string(is_uniform ? "int" : "nf") + std::to_string(Bits) + " with " +
               (Group ? "groups of " + std::to_string(Group) : std::string("one group per row"));
    }

    // Why a shape cannot be stored, or nullptr if it can.
    static const char* shape_problem(std::size_t cols) {
        if (cols == 0) return "the matrix has no columns";
        if (cols % chunk_weights) return "the row length is not a multiple of 32, the packing chunk";
        if (Group && cols % std::size_t(Group)) return "the row length is not a multiple of the group size";
        return nullptr;
    }

    EDGEQ_HOST_DEVICE static float code_value(int q) { return detail::codebook_value<Codebook>::value(q); }
};

// A non-owning view of a stored matrix: what every kernel takes. Trivially copyable, so it can
// be passed to a CUDA kernel by value when its pointers are device pointers.
template <class Format>
struct qview {
    using format = Format;
    using scale_type = typename Format::scale_type;

    std::size_t rows = 0;
    std::size_t cols = 0;
    const std::uint8_t* codes = nullptr;
    const scale_type* scales = nullptr;
    const std::uint8_t* zeros = nullptr;     // asymmetric only
    const float* dq_factors = nullptr;       // double_quant only: per block of 256 scales
    float dq_mean = 0.0f;                    // double_quant only

    EDGEQ_HOST_DEVICE std::size_t group_size() const { return Format::group_size(cols); }
    EDGEQ_HOST_DEVICE std::size_t groups_per_row() const { return Format::groups_per_row(cols); }
    EDGEQ_HOST_DEVICE const std::uint8_t* row_codes(std::size_t r) const { return codes + r * Format::row_code_bytes(cols); }

    // Scale of group g of row r.
    EDGEQ_HOST_DEVICE float scale(std::size_t r, std::size_t g) const { return scale_at(r * groups_per_row() + g); }
    EDGEQ_HOST_DEVICE float scale_at(std::size_t i) const { return decode_scale(i, scale_type{}); }
    // Zero point of group g of row r (the implicit one for symmetric formats).
    EDGEQ_HOST_DEVICE int zero(std::size_t r, std::size_t g) const {
        return Format::asymmetric ? int(zeros[r * groups_per_row() + g]) : Format::implicit_zero;
    }

    // Views a blob laid out as Format describes.
    static qview from_blob(const std::uint8_t* blob, std::size_t rows, std::size_t cols) {
        qview v;
        v.rows = rows;
        v.cols = cols;
        v.codes = blob + Format::codes_offset();
        v.scales = reinterpret_cast<const scale_type*>(blob + Format::scales_offset(rows, cols));
        if (Format::asymmetric) v.zeros = blob + Format::zeros_offset(rows, cols);
        if (Format::is_double_quant) {
            v.dq_factors = reinterpret_cast<const float*>(blob + Format::dq_offset(rows, cols));
            v.dq_mean = v.dq_factors[Format::n_dq_blocks(rows, cols)];
        }
        return v;
    }

   private:
    template <class S>
    EDGEQ_HOST_DEVICE float decode_scale(std::size_t i, S) const { return scales[i].to_float(); }
    EDGEQ_HOST_DEVICE float decode_scale(std::size_t i, dq8_t) const {
        return dq_mean + float(scales[i].code) * dq_factors[i / Format::dq_block];
    }
};

}  // namespace edgeq
