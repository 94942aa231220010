// edgeq perplexity: perplexity of a model over a text file under the GPTQ protocol (the
// references in ../shared) or llama.cpp's, and optionally the KL divergence from a reference
// model, as llama.cpp's --kl-divergence reports it; --json gives all of it as one object.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <edgeq/core/thread_pool.hpp>
#include <edgeq/engine/perplexity.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "cuda_engine.hpp"
#include "model_files.hpp"
#include "progress_bar.hpp"

namespace {

const std::string help =
    "usage: edgeq perplexity -m MODEL -f TEXT [-t TOKENIZER] [--ctx N] [--chunks N]\n"
    "                        [--protocol gptq|llamacpp] [--bytes A:B] [--kl-base MODEL] [--threads N]\n"
    "                        [--weights W] [--device cpu|cuda] [--direct-load] [--gpu-math auto|exact-half|half|fp32]\n"
    "                        [--json]\n"
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
    "  -m, --model MODEL      a GGUF file, a llama2.c checkpoint (.bin) or a Hugging Face folder\n"
    "  -t, --tokenizer FILE   default: the GGUF's own, the folder's tokenizer.json, or\n"
    "                         tokenizer.bin next to a .bin\n"
    "  -f, --file TEXT        the text (UTF-8)\n"
    "  --bytes A:B            use bytes [A, B) of the file only\n"
    "  --ctx N                window length; default 512\n"
    "  --chunks N             most windows to score\n"
    "  --kl-base MODEL        also report the KL divergence of MODEL's distributions from this one's\n"
    "  --weights W            f32, f16 or bf16 for -m; default: as stored (--kl-base: as stored)\n"
    "  --threads N            default: all hardware threads\n"
    "  --device D             cpu (default) or cuda: the model on the GPU (not with --kl-base)\n"
    "  --direct-load          with --device cuda, a GGUF model straight to device memory (Jetson)\n" +
    std::string(cli::gpu_math_help) +
    "  --json                 one JSON object on stdout: PPL, per-window PPL, tokens, speed,\n"
    "                         peak memory, and the KL statistics with --kl-base\n"
    "  -h, --help             this text\n";

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

}  // namespace

namespace commands {

int perplexity(int argc, char** argv) {
    namespace en = edgeq::engine;
    cli::args a("perplexity", argc, argv);
    std::string model_path, tok_path, text_path, base_path, weights, range;
    en::perplexity_options o;
    bool chunks_given = false, json = false, cuda = false, direct = false;
    cli::gpu::arithmetic math = cli::gpu::arithmetic::automatic;
    bool math_given = false;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    while (!a.done()) {
        const std::string opt = a.next_option();
        if (opt == "-h" || opt == "--help") {
            std::fputs(help.c_str(), stdout);
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
        } else if (opt == "--json") {
            json = true;
        } else if (opt == "--device") {
            const std::string d = a.value(opt);
            if (d != "cpu" && d != "cuda") a.fail("--device takes cpu or cuda, not '" + d + "'");
            cuda = d == "cuda";
        } else if (opt == "--direct-load") {
            direct = true;
        } else if (opt == "--gpu-math") {
            const std::string m = a.value(opt);
            if (!cli::parse_gpu_math(m, &math)) a.fail("--gpu-math takes auto, exact-half, half or fp32, not '" + m + "'");
            math_given = true;
        } else {
            a.unknown(opt);
        }
    }
    if (model_path.empty()) a.fail("-m MODEL is required");
    if (text_path.empty()) a.fail("-f TEXT is required");
    if (tok_path.empty()) tok_path = cli::default_tokenizer(model_path);
    if (o.protocol == en::ppl_protocol::llamacpp && !chunks_given) o.max_windows = -1;
    if (direct && !cuda) a.fail("--direct-load needs --device cuda");
    if (math_given && !cuda) a.fail("--gpu-math needs --device cuda");
    if (cuda && !base_path.empty()) a.fail("--kl-base runs on the CPU only; leave out --device cuda");
#ifndef EDGEQ_CLI_CUDA
    if (cuda) throw cli::cuda_missing();
#endif

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

    const auto t_load = clock_type::now();
    en::llama_model model;  // empty with --direct-load: the weights are in device memory only
    en::llama_config config;
    std::unique_ptr<cli::gpu::session> gpu;
    if (direct) {
        gpu = cli::load_to_gpu(model_path, o.n_ctx, &config, math);
    } else {
        model = cli::load_model(model_path, weights.empty() ? edgeq::io::matrix_factory() : edgeq::io::dense_factory(weights));
        config = model.config;
        if (cuda) gpu = cli::gpu_session_of(model, o.n_ctx, math);
    }
    const auto tok = edgeq::tok::load_tokenizer(tok_path, config.vocab_size);
    double load_s = since(t_load);
    const bool bos = o.protocol == en::ppl_protocol::llamacpp;
    const std::vector<int> ids = tok->encode(text, bos, false);
    edgeq::thread_pool pool(threads);
    std::fprintf(stderr, "%zu tokens, n_ctx %d, protocol %s\n", ids.size(), o.n_ctx, bos ? "llamacpp" : "gptq");
    cli::progress_bar bar("perplexity");
    const bool kl = !base_path.empty();  // the running value is then the mean KLD
    o.progress = [&bar, kl](int done, int all, double v) {
        bar.update(std::size_t(done), std::size_t(all), kl ? "KLD " + cli::fmt("%.5f", v) : "PPL " + cli::fmt("%.4f", std::exp(v)));
    };
    // Common JSON fields: what was measured, on what, how fast.
    auto json_head = [&](double secs, std::size_t scored) {
        return "\"model\": " + cli::json_string(model_path) + ", \"tokenizer\": " + cli::json_string(tok_path) +
               ", \"text\": " + cli::json_string(text_path) + ", \"protocol\": \"" + (bos ? "llamacpp" : "gptq") +
               "\", \"n_ctx\": " + std::to_string(o.n_ctx) + ", \"tokens\": " + std::to_string(ids.size()) +
               ",\n \"load_seconds\": " + cli::json_number(load_s) + ", \"seconds\": " + cli::json_number(secs) +
               ", \"scored_tokens_per_second\": " + cli::json_number(secs > 0 ? double(scored) / secs : 0.0) +
               ", \"threads\": " + std::to_string(pool.size()) + ", \"device\": " + (cuda ? "\"cuda\"" : "\"cpu\"") +
               ", \"direct_load\": " + (direct ? "true" : "false") + ", \"gpu\": " + cli::json_string(gpu ? gpu->describe() : "") +
               ", \"peak_rss_bytes\": " + cli::fmt("%.0f", cli::peak_rss_bytes());
    };
    auto json_ppl = [](const en::perplexity_result& r) {
        std::string w;
        for (std::size_t i = 0; i < r.window_mean_nll.size(); ++i)
            w += (i ? ", " : "") + cli::json_number(std::exp(r.window_mean_nll[i]));
        return "{\"ppl\": " + cli::json_number(r.ppl) + ", \"ppl_uncertainty\": " + cli::json_number(r.ppl_uncertainty) +
               ", \"mean_nll\": " + cli::json_number(r.mean_nll) + ", \"windows\": " + std::to_string(r.n_windows) +
               ", \"scored\": " + std::to_string(r.n_scored) + ",\n  \"window_ppl\": [" + w + "]}";
    };

    if (base_path.empty()) {
        const auto t0 = clock_type::now();
        const en::perplexity_result r = cuda ? cli::gpu_perplexity(*gpu, config, ids, o) : en::perplexity(model, ids, o, pool);
        const double secs = since(t0);
        bar.finish();
        if (json) {
            std::printf("{%s,\n \"result\": %s}\n", json_head(secs, r.n_scored).c_str(), json_ppl(r).c_str());
            return 0;
        }
        std::printf("windows %d, scored %zu, mean NLL %.6f\nPPL = %.4f +/- %.5f\n", r.n_windows, r.n_scored, r.mean_nll, r.ppl,
                    r.ppl_uncertainty);
        std::fprintf(stderr, "%s, %.1f scored tokens/s, load %s, peak memory %s\n", cli::seconds(secs).c_str(),
                     double(r.n_scored) / secs, cli::seconds(load_s).c_str(), cli::bytes(cli::peak_rss_bytes()).c_str());
        return 0;
    }
    const auto t_base = clock_type::now();
    const en::llama_model base = cli::load_model(base_path, edgeq::io::matrix_factory(), "loading the base");
    load_s += since(t_base);
    const auto t0 = clock_type::now();
    const en::kl_divergence_result k = en::kl_divergence(model, base, ids, o, pool);
    const double secs = since(t0);
    bar.finish();
    if (json) {
        std::printf("{%s, \"base\": %s,\n \"result\": %s,\n \"base_result\": %s,\n \"kl\": {\"mean\": %s, \"uncertainty\": %s, "
                    "\"max\": %s, \"p99\": %s, \"p90\": %s, \"median\": %s, \"min\": %s, \"mean_dp\": %s, \"rms_dp\": %s, "
                    "\"max_abs_dp\": %s, \"same_top\": %s}}\n",
                    json_head(secs, k.ppl.n_scored).c_str(), cli::json_string(base_path).c_str(), json_ppl(k.ppl).c_str(),
                    json_ppl(k.ppl_base).c_str(), cli::json_number(k.mean_kld).c_str(), cli::json_number(k.kld_uncertainty).c_str(),
                    cli::json_number(k.max_kld).c_str(), cli::json_number(k.p99_kld).c_str(), cli::json_number(k.p90_kld).c_str(),
                    cli::json_number(k.median_kld).c_str(), cli::json_number(k.min_kld).c_str(), cli::json_number(k.mean_dp).c_str(),
                    cli::json_number(k.rms_dp).c_str(), cli::json_number(k.max_abs_dp).c_str(), cli::json_number(k.same_top).c_str());
        return 0;
    }
    std::printf("Mean PPL(Q)    : %10.6f +/- %10.6f\n", k.ppl.ppl, k.ppl.ppl_uncertainty);
    std::printf("Mean PPL(base) : %10.6f +/- %10.6f\n", k.ppl_base.ppl, k.ppl_base.ppl_uncertainty);
    std::printf("Mean    KLD: %10.6f +/- %10.6f\n", k.mean_kld, k.kld_uncertainty);
    std::printf("Maximum KLD: %10.6f\n99.0%%   KLD: %10.6f\n90.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\nMinimum KLD: %10.6f\n",
                k.max_kld, k.p99_kld, k.p90_kld, k.median_kld, k.min_kld);
    std::printf("Mean    dp: %6.3f %%\nRMS     dp: %6.3f %%\nMaximum dp: %6.3f %%\nSame top p: %6.3f %%\n", 100 * k.mean_dp,
                100 * k.rms_dp, 100 * k.max_abs_dp, 100 * k.same_top);
    std::fprintf(stderr, "%s, load %s, peak memory %s\n", cli::seconds(secs).c_str(), cli::seconds(load_s).c_str(),
                 cli::bytes(cli::peak_rss_bytes()).c_str());
    return 0;
}

}  // namespace commands
