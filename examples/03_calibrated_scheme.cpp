// A scheme composed in user code, calibrated on text by the driver `edgeq quantize` uses:
// GPTQ with act-order, 3-bit codes, groups of 64 with zero points, on every layer matrix of a
// model, block by block on the outputs of the blocks already quantized.
//
//     example_03_calibrated_scheme MODEL TEXT      (e.g. ../shared/models/TinyStories-656K and
//                                                   ../shared/data/tinystories_train_sample.txt)
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <edgeq/engine/load.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/engine/quantize_model.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

using my_scheme = edgeq::scheme<edgeq::gptq<edgeq::act_order>, edgeq::bits<3>, edgeq::group<64>, edgeq::asymmetric>;

int main(int argc, char** argv) try {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL_FOLDER TEXT\n", argv[0]);
        return 2;
    }
    namespace en = edgeq::engine;
    en::llama_model model = en::load_model(argv[1], edgeq::io::dense_factory("f32"));
    const auto tok = edgeq::tok::load_tokenizer(std::string(argv[1]) + "/tokenizer.json", model.config.vocab_size);
    std::ifstream in(argv[2]);
    std::stringstream text;
    text << in.rdbuf();
    const std::vector<int> tokens = tok->encode(text.str(), false, false);

    en::perplexity_options eval;  // the calibration text's last 16 windows of 256: a quick look, not a benchmark
    eval.n_ctx = 256;
    const std::vector<int> tail(tokens.end() - std::min<std::size_t>(tokens.size(), 16 * 256), tokens.end());
    const double before = en::perplexity(model, tail, eval).ppl;

    // What my_scheme's algorithm needs (the Hessian of each matrix's inputs) and its quantizer.
    const en::calib_plan plan = en::plan_of<my_scheme>();
    const en::calib_report r = en::quantize_calibrated(model, en::calibration_windows(tokens, 16, 256, 1), plan.quantize, plan.options);

    std::printf("%s: %.3f bits per weight; perplexity %.3f -> %.3f (forward passes %.1f s, GPTQ %.1f s)\n",
                edgeq::name_of<my_scheme>().c_str(), edgeq::bits_per_weight<my_scheme>(), before,
                en::perplexity(model, tail, eval).ppl, r.forward_seconds, r.quantize_seconds);
} catch (const edgeq::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
