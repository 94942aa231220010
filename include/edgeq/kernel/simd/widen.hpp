// Widening 8-bit codes to float lanes: an operation xsimd 8.1 does only element by element.
// The generic version is that slow path; kernel/x86 and kernel/neon specialise it per
// architecture with one or two conversion instructions.
#pragma once
#include <cstdint>

#include <xsimd/xsimd.hpp>

namespace edgeq {
namespace kernel {

template <class Arch>
struct widen {
    using f32 = xsimd::batch<float, Arch>;
    // batch<float>::size bytes from p, as floats.
    static f32 u8_to_f32(const std::uint8_t* p) { return f32::load_unaligned(p); }
};

}  // namespace kernel
}  // namespace edgeq

#include "../neon/widen.hpp"
#include "../x86/widen.hpp"
