// xtensor interop: view row-major 2-D xtensor containers as edgeq matrices, so user code that
// holds weights in xt::xtensor can quantize them and call the kernels without copies.
#pragma once
#include <xtensor/xtensor.hpp>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"

namespace edgeq {

template <class T>
matrix_view<const T> view_of(const xt::xtensor<T, 2, xt::layout_type::row_major>& a) {
    return {a.data(), a.shape()[0], a.shape()[1]};
}

template <class T>
matrix_view<T> view_of(xt::xtensor<T, 2, xt::layout_type::row_major>& a) {
    return {a.data(), a.shape()[0], a.shape()[1]};
}

}  // namespace edgeq
