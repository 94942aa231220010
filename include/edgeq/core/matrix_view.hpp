// A non-owning view of a row-major matrix: the only way float weights and activations enter
// the library's host APIs (xtensor containers convert through edgeq/interop/xtensor.hpp).
#pragma once
#include <cstddef>

#include "../config.hpp"

namespace edgeq {

template <class T>
struct matrix_view {
    T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t stride = 0;  // elements between consecutive rows

    EDGEQ_HOST_DEVICE matrix_view() = default;
    EDGEQ_HOST_DEVICE matrix_view(T* d, std::size_t r, std::size_t c) : data(d), rows(r), cols(c), stride(c) {}
    EDGEQ_HOST_DEVICE matrix_view(T* d, std::size_t r, std::size_t c, std::size_t s) : data(d), rows(r), cols(c), stride(s) {}
    EDGEQ_HOST_DEVICE T* row(std::size_t r) const { return data + r * stride; }
    EDGEQ_HOST_DEVICE T& operator()(std::size_t r, std::size_t c) const { return data[r * stride + c]; }
    EDGEQ_HOST_DEVICE operator matrix_view<const T>() const { return {data, rows, cols, stride}; }
};

}  // namespace edgeq
