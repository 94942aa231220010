#pragma once
#include "kind.hpp"

namespace edgeq {

// w = d * (q - 2^(bits-1)): the scale's sign lets the extreme weight land on the -2^(bits-1) end.
struct symmetric {
    using policy_kind = kind::zero_point;
    static constexpr bool has_zero = false;
};

// w = d * (q - z) with an integer zero point z per group (stored as one byte), as GPTQ and AWQ
// store it; the range always includes 0, so a zero weight stays exactly zero.
struct asymmetric {
    using policy_kind = kind::zero_point;
    static constexpr bool has_zero = true;
};

}  // namespace edgeq
