#pragma once
#include "kind.hpp"

namespace edgeq {

// Bits per stored code. Widths that do not divide 8 (3, 5, 6) are packed densely (core/bitpack.hpp).
template <int N>
struct bits {
    static_assert(N == 2 || N == 3 || N == 4 || N == 5 || N == 6 || N == 8,
                  "edgeq::bits<N>: supported widths are 2, 3, 4, 5, 6 and 8; for 1-bit or 7-bit "
                  "weights pick the next supported width");
    using policy_kind = kind::bits;
    static constexpr int value = N;
};

}  // namespace edgeq
