// edgeq perplexity: perplexity of a model over a text file under the GPTQ protocol (the
// references in ../shared) or llama.cpp's, and optionally the KL divergence from a reference
// model, as llama.cpp's --kl-divergence reports it.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <edgeq/core/thread_pool.hpp>
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const char* const help =
    "usage: edgeq perplexity -m MODEL -f TEXT [-t TOKENIZER] [--ctx N] [--chunks N]\n"
    "                        [--protocol gptq|llamacpp] [--bytes A:B] [--kl-base MODEL] [--threads N]\n"
    "                        [--weights W]\n"
    "\n"
    "protocols:\n"
    "  gptq      (default) the text without BOS in non-overlapping windows of --ctx tokens, at\n"
    "            most --chunks (default 64) of them, each fed alone; positions 1..ctx-1 scored.\n"
    "            This is how ../shared/reference was computed.\n"
    "  llamacpp  llama.cpp's perplexity tool: the text with BOS, chunks of --ctx tokens (all of\n"
    "            them unless --chunks), the first token of each replaced by BOS, only the second\n"
    "            half of each chunk scored.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL      a llama2.c checkpoint (.bin) or a Hugging Face folder\n"
    "  -t, --tokenizer FILE   default: the folder's tokenizer.json, or tokenizer.bin next to a .bin\n"
    "  -f, --file TEXT        the text (UTF-8)\n"
    "  --bytes A:B            use bytes [A, B) of the file only\n"
    "  --ctx N                window length; default 512\n"
    "  --chunks N             most windows to score\n"
    "  --kl-base MODEL        also report the KL divergence of MODEL's distributions from this one's\n"
    "  --weights W            f32, f16 or bf16 for -m; default: as stored (--kl-base: as stored)\n"
    "  --threads N            default: all hardware threads\n"
    "  -h, --help             this text\n";

// A Hugging Face folder's tokenizer.json, else tokenizer.bin next to a llama2.c checkpoint.
std::string default_tokenizer(const std::string& model) {
    if (std::ifstream(model + "/tokenizer.json").good()) return model + "/tokenizer.json";
    const std::size_t slash = model.find_last_of('/');
    return (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/tokenizer.bin";
}

}  // namespace

namespace commands {

int perplexity(int argc, char** argv) {
    namespace en = edgeq::engine;
    cli::args a("perplexity", argc, argv);
    std::string model_path, tok_path, text_path, base_path, weights, range;
    en::perplexity_options o;
    bool chunks_given = false;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    while (!a.done()) {
        const std::string opt = a.next_option();
        if (opt == "-h" || opt == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (opt == "-m" || opt == "--model") {
            model_path = a.value(opt);
        } else if (opt == "-t" || opt == "--tokenizer") {
            tok_path = a.value(opt);
        } else if (opt == "-f" || opt == "--file") {
            text_path = a.value(opt);
        } else if (opt == "--bytes") {
            range = a.value(opt);
        } else if (opt == "--ctx") {
            o.n_ctx = int(a.positive(opt, 1 << 20));
        } else if (opt == "--chunks") {
            o.max_windows = int(a.positive(opt, 1 << 30));
            chunks_given = true;
        } else if (opt == "--protocol") {
            const std::string p = a.value(opt);
            if (p == "gptq")
                o.protocol = en::ppl_protocol::gptq;
            else if (p == "llamacpp")
                o.protocol = en::ppl_protocol::llamacpp;
            else
                a.fail("--protocol takes gptq or llamacpp, not '" + p + "'");
        } else if (opt == "--kl-base") {
            base_path = a.value(opt);
        } else if (opt == "--weights") {
            weights = a.value(opt);
            if (!edgeq::is_dense_type(weights)) a.fail("--weights takes f32, f16 or bf16, not '" + weights + "'");
        } else if (opt == "--threads") {
            threads = unsigned(a.positive(opt, 1024));
        } else {
            a.unknown(opt);
        }
    }
    if (model_path.empty()) a.fail("-m MODEL is required");
    if (text_path.empty()) a.fail("-f TEXT is required");
    if (tok_path.empty()) tok_path = default_tokenizer(model_path);
    if (o.protocol == en::ppl_protocol::llamacpp && !chunks_given) o.max_windows = -1;

    std::ifstream in(text_path, std::ios::binary);
    if (!in) a.fail_plain("cannot open " + text_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!range.empty()) {
        const std::size_t colon = range.find(':');
        std::size_t b0 = 0, b1 = 0;
        try {
            b0 = std::stoul(range.substr(0, colon));
            b1 = std::stoul(range.substr(colon + 1));
        } catch (const std::exception&) {
            b1 = 0;  // refused below
        }
        if (colon == std::string::npos || b1 <= b0 || b1 > text.size())
            a.fail("--bytes takes A:B with A < B <= " + std::to_string(text.size()) + ", not '" + range + "'");
        text = text.substr(b0, b1 - b0);
    }

    const en::llama_model model = en::load_model(
        model_path, weights.empty() ? edgeq::io::matrix_factory() : edgeq::io::dense_factory(weights));
    const auto tok = edgeq::tok::load_tokenizer(tok_path, model.config.vocab_size);
    const bool bos = o.protocol == en::ppl_protocol::llamacpp;
    const std::vector<int> ids = tok->encode(text, bos, false);
    edgeq::thread_pool pool(threads);
    std::fprintf(stderr, "%zu tokens, n_ctx %d, protocol %s\n", ids.size(), o.n_ctx, bos ? "llamacpp" : "gptq");
    o.progress = [](int done, int all, double v) {
        std::fprintf(stderr, "\r[%d/%d] %.4f", done, all, v);
        std::fflush(stderr);
    };

    if (base_path.empty()) {
        const en::perplexity_result r = en::perplexity(model, ids, o, pool);
        std::fprintf(stderr, "\n");
        std::printf("windows %d, scored %zu, mean NLL %.6f\nPPL = %.4f +/- %.5f\n", r.n_windows, r.n_scored, r.mean_nll, r.ppl,
                    r.ppl_uncertainty);
        return 0;
    }
    const en::llama_model base = en::load_model(base_path);
    const en::kl_divergence_result k = en::kl_divergence(model, base, ids, o, pool);
    std::fprintf(stderr, "\n");
    std::printf("Mean PPL(Q)    : %10.6f +/- %10.6f\n", k.ppl.ppl, k.ppl.ppl_uncertainty);
    std::printf("Mean PPL(base) : %10.6f +/- %10.6f\n", k.ppl_base.ppl, k.ppl_base.ppl_uncertainty);
    std::printf("Mean    KLD: %10.6f +/- %10.6f\n", k.mean_kld, k.kld_uncertainty);
    std::printf("Maximum KLD: %10.6f\n99.0%%   KLD: %10.6f\n90.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\nMinimum KLD: %10.6f\n",
                k.max_kld, k.p99_kld, k.p90_kld, k.median_kld, k.min_kld);
    std::printf("Mean    dp: %6.3f %%\nRMS     dp: %6.3f %%\nMaximum dp: %6.3f %%\nSame top p: %6.3f %%\n", 100 * k.mean_dp,
                100 * k.rms_dp, 100 * k.max_abs_dp, 100 * k.same_top);
    return 0;
}

}  // namespace commands
