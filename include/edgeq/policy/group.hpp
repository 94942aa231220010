#pragma once
#include "kind.hpp"

namespace edgeq {

// Weights that share one scale (and zero point): G consecutive weights of a row.
template <int G>
struct group {
    static_assert(G >= 32 && G % 32 == 0 && G <= 4096,
                  "edgeq::group<G>: G must be a multiple of the 32-weight packing chunk (32, 64, 128, "
                  "256, ...) up to 4096; for one scale per row use edgeq::per_row, for SpQR's "
                  "16-weight groups use the spqr format");
    using policy_kind = kind::group;
    static constexpr int value = G;
};

// One scale per row: the int8 LLM.int8-style layout, or a coarse 4-bit baseline.
struct per_row {
    using policy_kind = kind::group;
    static constexpr int value = 0;
};

}  // namespace edgeq
