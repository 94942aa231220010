// Calibrated quantization end to end on a shared model: TinyStories-656K quantized at 3 bits by
// RTN, GPTQ and AWQ through engine::quantize_calibrated, scored on held-out text (the last 20% of
// tinystories_valid_prefix.txt). The literature's claim, checked: the calibrated methods remove
// a large part of RTN's perplexity increase at 3 bits (measured here: GPTQ 50%, AWQ 32%; asserted:
// 25%, so that a change of calibration windows or thread count cannot flip the test).
#include <catch2/catch.hpp>

#include "support.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include <edgeq/engine/load.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/engine/quantize_model.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

namespace eq = edgeq;
namespace en = edgeq::engine;

namespace {

struct held_out_eval {
    std::string model_dir;
    std::vector<int> calib, held_out;
    en::perplexity_options o;

    explicit held_out_eval(const std::string& shared) : model_dir(shared + "/models/TinyStories-656K") {
        const auto tok = eq::tok::load_tokenizer(model_dir + "/tokenizer.json");
        const std::string valid = test_support::read_bytes(shared + "/data/tinystories_valid_prefix.txt");
        REQUIRE(valid.size() > 635620);
        held_out = tok->encode(valid.substr(635620), false, false);
        calib = tok->encode(test_support::read_bytes(shared + "/data/tinystories_train_sample.txt"), false, false);
        o.n_ctx = 512;
        o.max_windows = std::getenv("EDGEQ_TEST_QUICK") ? 4 : 1000;  // under qemu: a few windows
    }
    double ppl(const en::llama_model& m) const { return en::perplexity(m, held_out, o).ppl; }

    // The model's layer matrices quantized with Scheme on 16 windows of 512 calibration tokens (4 under qemu).
    template <class Scheme>
    double quantized_ppl(bool rtn_importance = false) const {
        en::llama_model m = en::load_model(model_dir, eq::io::dense_factory("f32"));
        en::plan_settings s;
        s.rtn_importance = rtn_importance;
        const en::calib_plan p = en::plan_of<Scheme>(s);
        const std::size_t windows = std::getenv("EDGEQ_TEST_QUICK") ? 4 : 16;
        en::quantize_calibrated(m, en::calibration_windows(calib, windows, 512, 1), p.quantize, p.options);
        return ppl(m);
    }
};

}  // namespace

TEST_CASE("TinyStories-656K at 3 bits: GPTQ and AWQ remove a large part of RTN's perplexity increase", "[calibrate][shared]") {
    REQUIRE_SHARED(dir);
    const held_out_eval e(dir);
    const double f32 = e.ppl(en::load_model(e.model_dir, eq::io::dense_factory("f32")));
    const double rtn = e.quantized_ppl<eq::scheme<eq::bits<3>, eq::group<128>>>();
    const double gptq = e.quantized_ppl<eq::scheme<eq::gptq<>, eq::bits<3>, eq::group<128>>>();
    const double awq = e.quantized_ppl<eq::scheme<eq::awq<>, eq::bits<3>, eq::group<128>>>();
    INFO("held-out perplexity: float " << f32 << ", RTN " << rtn << ", GPTQ " << gptq << ", AWQ " << awq);
    CHECK(rtn > f32 * 1.05);  // 3 bits hurts a model this small
    // Under qemu (4 calibration windows, 4 scored): only that both beat RTN; 4 windows are too
    // few for the share (measured there: GPTQ 35%, AWQ 15%).
    const double share = std::getenv("EDGEQ_TEST_QUICK") ? 1.0 : 0.75;
    CHECK(gptq - f32 < share * (rtn - f32));
    CHECK(awq - f32 < share * (rtn - f32));
    CHECK(gptq > f32 * 0.98);  // and nothing beats the float model by luck
}
