// GGUF files with edgeq's own tensors (EDGEQ_GROUPED 1024 and EDGEQ_SPQR 1025, io/gguf.hpp)
// through the registry: include this header in ONE .cpp of a program and every load_gguf /
// load_model of that program reads them (the registry instantiates every built-in format's
// kernels, about 100 s of compile time, so the engine's other headers leave it out). Also the
// encoder that writes a matrix in any registry scheme that needs no calibration, for save_gguf.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../kernel/simd/spqr.hpp"
#include "../registry.hpp"
#include "load_gguf.hpp"

namespace edgeq {
namespace engine {

namespace detail {
// A grouped or llama.cpp format: the blob's size is checked against the format's storage_bytes,
// as io/gguf.hpp asks of its users.
template <class S, class Algorithm>
std::unique_ptr<linear> blob_linear(Algorithm, const std::string& scheme, const std::uint8_t* blob, std::uint64_t bytes,
                                    std::size_t rows, std::size_t cols) {
    qmatrix<format_of<S>> m(rows, cols);  // throws for a shape the format cannot store
    if (bytes != m.storage_bytes())
        throw error("GGUF: an edgeq " + scheme + " blob of " + std::to_string(rows) + " x " + std::to_string(cols) + " needs " +
                    std::to_string(m.storage_bytes()) + " bytes, the file gives " + std::to_string(bytes));
    if (bytes) std::memcpy(m.row_codes(0), blob, std::size_t(bytes));
    return std::unique_ptr<linear>(new linear_of<S>(std::move(m)));
}
// SpQR: its own format; size, CSR structure and float16 fields checked (spqr_matrix::from_blob).
template <class S, int B, int G, int SB, int SG>
std::unique_ptr<linear> blob_linear(spqr<B, G, SB, SG>, const std::string&, const std::uint8_t* blob, std::uint64_t bytes,
                                    std::size_t rows, std::size_t cols) {
    return spqr_linear_from_blob<spqr_format<B, G, SB, SG>>(blob, bytes, rows, cols);
}
}  // namespace detail

// The linear of an edgeq blob (EDGEQ_GROUPED or EDGEQ_SPQR) of scheme `scheme`, a registry name.
inline std::unique_ptr<linear> registry_grouped_linear(const std::string& scheme, const std::uint8_t* blob, std::uint64_t bytes,
                                                       std::size_t rows, std::size_t cols) {
    return registry::visit(scheme, [&](auto t) -> std::unique_ptr<linear> {
        using S = typename decltype(t)::type;
        return detail::blob_linear<S>(typename S::algorithm{}, scheme, blob, bytes, rows, cols);
    });
}

// save_gguf's encoder for a registry scheme: the quantized blob, as EDGEQ_GROUPED stores it.
inline gguf_encoder registry_encoder(const std::string& scheme) {
    return [scheme](matrix_view<const float> w) {
        const std::unique_ptr<linear> l = registry::make_linear(scheme, w);
        return std::vector<std::uint8_t>(l->storage_data(), l->storage_data() + l->storage_bytes());
    };
}

namespace detail {
struct gguf_registry_hook {
    gguf_registry_hook() { grouped_linear_hook() = &registry_grouped_linear; }
};
}  // namespace detail
namespace {
const detail::gguf_registry_hook gguf_registry_hook_installed;
}  // namespace

}  // namespace engine
}  // namespace edgeq
