// Code-books: the value that a stored code stands for, before the group scale.
#pragma once
#include "../config.hpp"
#include "kind.hpp"

namespace edgeq {

// The integer grid: code q stands for q - zero.
struct uniform_grid {
    using policy_kind = kind::codebook;
    static constexpr int default_bits = 4;
    static constexpr bool fixed_bits = false;
    // Integer value of a code for integer dot products, in units of int_unit.
    EDGEQ_HOST_DEVICE static int int_value(int q) { return q; }
    static constexpr float int_unit = 1.0f;
};

// NormalFloat-4 (QLoRA, Dettmers et al. 2023): 16 quantiles of N(0,1) rescaled to [-1, 1], with
// an exact zero. The group scale is the absolute maximum.
struct nf4 {
    using policy_kind = kind::codebook;
    static constexpr int default_bits = 4;
    static constexpr bool fixed_bits = true;

    EDGEQ_HOST_DEVICE static float value(int q) {
        // Published QLoRA / bitsandbytes NF4 values.
        const float v[16] = {-1.0f,
                             -0.6961928009986877f,
                             -0.5250730514526367f,
                             -0.39491748809814453f,
                             -0.28444138169288635f,
                             -0.18477343022823334f,
                             -0.09105003625154495f,
                             0.0f,
                             0.07958029955625534f,
                             0.16093020141124725f,
                             0.24611230194568634f,
                             0.33791524171829224f,
                             0.44070982933044434f,
                             0.5626170039176941f,
                             0.7229568362236023f,
                             1.0f};
        return v[q & 15];
    }
    // The code-book as int8 (x127), for dot products against int8 activations. Its rounding
    // (below 0.4% of the scale) is inside the q8 path's error budget.
    EDGEQ_HOST_DEVICE static int int_value(int q) {
        const signed char v[16] = {-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127};
        return v[q & 15];
    }
    static constexpr float int_unit = 1.0f / 127.0f;
};

}  // namespace edgeq
