// llama.cpp's block formats as scheme policies: each fixes its own bits, blocks, scales and
// code-book, so a scheme names it instead of those five (scheme<q4_k>, later scheme<gptq<>, q4_k>).
#pragma once
#include "../format/ggml/blocks.hpp"
#include "kind.hpp"

namespace edgeq {

template <class Block>
struct ggml_type {
    using policy_kind = kind::storage;
    using block = Block;
};

using q4_0 = ggml_type<ggml::block_q4_0>;
using q4_1 = ggml_type<ggml::block_q4_1>;
using q5_0 = ggml_type<ggml::block_q5_0>;
using q5_1 = ggml_type<ggml::block_q5_1>;
using q8_0 = ggml_type<ggml::block_q8_0>;
using q2_k = ggml_type<ggml::block_q2_K>;
using q3_k = ggml_type<ggml::block_q3_K>;
using q4_k = ggml_type<ggml::block_q4_K>;
using q5_k = ggml_type<ggml::block_q5_K>;
using q6_k = ggml_type<ggml::block_q6_K>;
using iq4_nl = ggml_type<ggml::block_iq4_nl>;
using iq4_xs = ggml_type<ggml::block_iq4_xs>;

}  // namespace edgeq
