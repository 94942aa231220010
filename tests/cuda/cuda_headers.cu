// The headers that device code may include, compiled by nvcc as C++14: if one stops compiling
// under nvcc (a C++17 construct, a Hana or xsimd include), this file says so first.
#include <edgeq/config.hpp>
#include <edgeq/core/bitpack.hpp>
#include <edgeq/core/half.hpp>
#include <edgeq/core/error.hpp>
#include <edgeq/format/grouped.hpp>
#include <edgeq/policy/algorithm.hpp>
#include <edgeq/policy/backend.hpp>
#include <edgeq/policy/bits.hpp>
#include <edgeq/policy/codebook.hpp>
#include <edgeq/policy/group.hpp>
#include <edgeq/policy/kind.hpp>
#include <edgeq/policy/scale.hpp>
#include <edgeq/policy/zero_point.hpp>
#include <edgeq/scheme.hpp>
#include <edgeq/format/ggml/blocks.hpp>
#include <edgeq/format/ggml/decode.hpp>
#include <edgeq/format/ggml/format.hpp>
#include <edgeq/kernel/cuda/dequantize.cuh>
#include <edgeq/kernel/cuda/ggml.cuh>
#include <edgeq/format/ggml/grouped_twin.hpp>
#include <edgeq/kernel/cuda/grouped.cuh>
#include <edgeq/kernel/cuda/spqr.cuh>

#if !defined(EDGEQ_CUDA)
#error "config.hpp must define EDGEQ_CUDA under nvcc"
#endif

namespace {
// Host-device helpers must be callable from device code.
__global__ void use_in_device_code(float* out) {
    out[0] = edgeq::half_to_float(edgeq::float_to_half(1.5f)) + edgeq::nf4::value(3);
    std::uint8_t codes[32] = {}, packed[12];
    edgeq::pack_chunk<3>(codes, packed);
    edgeq::unpack_chunk<3>(packed, codes);
    out[1] = float(codes[0]);
}
}  // namespace

// Referenced by the test so the kernel above is really instantiated and compiled.
void edgeq_cuda_headers_compile() { (void)&use_in_device_code; }
