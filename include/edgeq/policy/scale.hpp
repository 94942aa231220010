#pragma once
#include "../core/half.hpp"
#include "kind.hpp"

namespace edgeq {

// How each group's scale is stored.
template <class Storage>
struct scale_storage {
    using policy_kind = kind::scale;
    using type = Storage;
    static constexpr int stored_bits = 8 * int(sizeof(Storage));
};
using fp16_scale = scale_storage<fp16_t>;
using fp32_scale = scale_storage<fp32_t>;

// QLoRA's double quantization: the scales themselves are quantized to 8 bits in blocks of 256
// scales (one fp32 factor per block), around their mean (one fp32 per matrix). edgeq uses a
// symmetric linear int8 grid for the second level, where bitsandbytes uses its dynamic 8-bit map.
struct dq8_t {
    signed char code;
};
static_assert(sizeof(dq8_t) == 1, "a double-quantized scale is one byte");
struct double_quant {
    using policy_kind = kind::scale;
    using type = dq8_t;
    static constexpr int stored_bits = 8;
    static constexpr int block = 256;
};

}  // namespace edgeq
