// Dense weight formats: float32, IEEE float16 and bfloat16, one element per weight, rows
// contiguous, no groups and no shape constraint (a row of 172 is fine). They are what an
// unquantized checkpoint holds (llama2.c fp32, safetensors F16/BF16, GGUF F32/F16) and what the
// engine runs when no scheme is asked for. The kernels are kernel/scalar/dense.hpp and
// kernel/simd/dense.hpp; the type-erased edgeq::linear is dense_linear<E> in the latter.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../core/aligned_buffer.hpp"
#include "../core/error.hpp"
#include "../core/half.hpp"
#include "../core/matrix_view.hpp"

namespace edgeq {

// bfloat16: the top half of a float32. Rounding to nearest even; NaN stays a quiet NaN.
inline float bf16_to_float(std::uint16_t h) { return f32_from_bits(std::uint32_t(h) << 16); }
inline std::uint16_t float_to_bf16(float f) {
    const std::uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
    return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// The element types. storage is what one weight occupies in memory and in a file.
struct dense_f32 {
    using storage = float;
    static const char* name() { return "f32"; }
    static float to_float(storage v) { return v; }
    static storage from_float(float f) { return f; }
};
struct dense_f16 {
    using storage = std::uint16_t;
    static const char* name() { return "f16"; }
    static float to_float(storage v) { return half_to_float(v); }
    static storage from_float(float f) { return float_to_half(f); }
};
struct dense_bf16 {
    using storage = std::uint16_t;
    static const char* name() { return "bf16"; }
    static float to_float(storage v) { return bf16_to_float(v); }
    static storage from_float(float f) { return float_to_bf16(f); }
};

// A non-owning view: rows x cols elements, row r at data + r * cols.
template <class E>
struct dense_view {
    using element = E;
    using storage = typename E::storage;
    std::size_t rows = 0;
    std::size_t cols = 0;
    const storage* data = nullptr;
    const storage* row(std::size_t r) const { return data + r * cols; }
};

// An owning dense matrix (64-byte aligned).
template <class E>
class dense_matrix {
   public:
    using storage = typename E::storage;
    dense_matrix() = default;
    dense_matrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols), buf_(rows * cols * sizeof(storage)) {}

    // Converts float weights (rounding to nearest even for f16/bf16).
    static dense_matrix from_float(matrix_view<const float> w) {
        dense_matrix m(w.rows, w.cols);
        storage* out = m.data();
        for (std::size_t r = 0; r < w.rows; ++r)
            for (std::size_t c = 0; c < w.cols; ++c) out[r * w.cols + c] = E::from_float(w(r, c));
        return m;
    }
    // Copies elements already in the storage type (little-endian, as files hold them).
    static dense_matrix from_storage(const void* src, std::size_t rows, std::size_t cols) {
        dense_matrix m(rows, cols);
        if (rows != 0 && cols != 0) std::memcpy(m.data(), src, rows * cols * sizeof(storage));
        return m;
    }

    std::size_t rows() const { return rows_; }
    std::size_t cols() const { return cols_; }
    std::size_t storage_bytes() const { return rows_ * cols_ * sizeof(storage); }
    storage* data() { return reinterpret_cast<storage*>(buf_.data()); }
    const storage* data() const { return reinterpret_cast<const storage*>(buf_.data()); }
    dense_view<E> view() const {
        dense_view<E> v;
        v.rows = rows_;
        v.cols = cols_;
        v.data = data();
        return v;
    }

   private:
    std::size_t rows_ = 0, cols_ = 0;
    aligned_buffer buf_;
};

}  // namespace edgeq
