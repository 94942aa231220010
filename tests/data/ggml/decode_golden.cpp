// Writes decode_digests.txt: for each llama.cpp block type, a digest of what ggml's own
// dequantizer (ggml_get_type_traits(type)->to_float) makes of pseudo-random blocks. The blocks
// come from decode_blocks.hpp, which tests/test_ggml_kernels.cpp uses too, and the test checks
// ggml::dequantize_row against these digests. Not part of the build; to regenerate, build
// llama.cpp's ggml-base and run, from the repository root:
//
//   g++ -std=c++14 -O1 -Iinclude -I$LLAMA/ggml/include tests/data/ggml/decode_golden.cpp \
//       -L$BUILD/bin -lggml-base -Wl,-rpath,$BUILD/bin -o /tmp/decode_golden && /tmp/decode_golden > tests/data/ggml/decode_digests.txt
#include <cstdio>
#include <vector>

#include <ggml.h>

#include "decode_blocks.hpp"

// llama.cpp's quantize_row_q8_K_ref (exported by ggml-base, declared in its private header).
extern "C" void quantize_row_q8_K_ref(const float* x, edgeq::ggml::block_q8_K* y, std::int64_t k);

namespace {

template <class Block>
void digest(ggml_type type) {
    const std::size_t nblocks = edgeq::ggml_test::digest_blocks;
    std::vector<Block> blocks(nblocks);
    edgeq::ggml_test::fill_blocks(blocks.data(), nblocks, std::uint64_t(Block::type_id));
    std::vector<float> y(nblocks * Block::weights);
    ggml_get_type_traits(type)->to_float(blocks.data(), y.data(), std::int64_t(y.size()));
    std::printf("%s %zu %016llx\n", Block::name(), nblocks, static_cast<unsigned long long>(edgeq::ggml_test::fnv1a(y.data(), y.size())));
}

}  // namespace

int main() {
    using namespace edgeq::ggml;
    digest<block_q4_0>(GGML_TYPE_Q4_0);
    digest<block_q4_1>(GGML_TYPE_Q4_1);
    digest<block_q5_0>(GGML_TYPE_Q5_0);
    digest<block_q5_1>(GGML_TYPE_Q5_1);
    digest<block_q8_0>(GGML_TYPE_Q8_0);
    digest<block_q2_K>(GGML_TYPE_Q2_K);
    digest<block_q3_K>(GGML_TYPE_Q3_K);
    digest<block_q4_K>(GGML_TYPE_Q4_K);
    digest<block_q5_K>(GGML_TYPE_Q5_K);
    digest<block_q6_K>(GGML_TYPE_Q6_K);
    digest<block_iq4_nl>(GGML_TYPE_IQ4_NL);
    digest<block_iq4_xs>(GGML_TYPE_IQ4_XS);
    // Q8_K activations: fp32 d, 256 int8 and the 16 sums of each block, hashed field by field.
    const std::size_t nblocks = edgeq::ggml_test::digest_blocks;
    std::vector<float> x(nblocks * 256);
    edgeq::ggml_test::random_floats(x.data(), x.size(), 15);
    std::vector<block_q8_K> q(nblocks);
    quantize_row_q8_K_ref(x.data(), q.data(), std::int64_t(x.size()));
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const block_q8_K& b : q) {
        h = edgeq::ggml_test::fnv1a_bytes(&b.d, sizeof b.d, h);
        h = edgeq::ggml_test::fnv1a_bytes(b.qs, sizeof b.qs, h);
        h = edgeq::ggml_test::fnv1a_bytes(b.bsums, sizeof b.bsums, h);
    }
    std::printf("Q8_K %zu %016llx\n", nblocks, static_cast<unsigned long long>(h));
}
