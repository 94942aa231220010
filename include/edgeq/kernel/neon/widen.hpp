// NEON escape for kernel::widen: two vmovl steps and one vcvtq.
#pragma once
#include <cstdint>
#include <cstring>

#include "../../config.hpp"

#if EDGEQ_HAS_NEON
#include <arm_neon.h>

namespace edgeq {
namespace kernel {

template <>
struct widen<xsimd::neon64> {
    using f32 = xsimd::batch<float, xsimd::neon64>;
    static f32 u8_to_f32(const std::uint8_t* p) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        const uint16x8_t h = vmovl_u8(vcreate_u8(v));
        return vcvtq_f32_u32(vmovl_u16(vget_low_u16(h)));
    }
};

}  // namespace kernel
}  // namespace edgeq
#endif
