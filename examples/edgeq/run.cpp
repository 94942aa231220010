// edgeq run: generate text with a Llama-family model (GGUF, llama2.c checkpoints and Hugging Face
// folders), streaming the tokens as they come, then the load time, the prompt and generation
// speeds and the peak memory; or all of it as one JSON object (--json).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <edgeq/core/thread_pool.hpp>
#include <edgeq/engine/llama.hpp>
#include <edgeq/engine/sampler.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "cuda_engine.hpp"
#include "model_files.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

const std::string help =
    "usage: edgeq run -m MODEL [-t TOKENIZER] [-p PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "                 [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--threads N] [--weights W]\n"
    "                 [--ctx N] [--device cpu|cuda] [--direct-load] [--gpu-math auto|exact-half|half|fp32] [--json]\n"
    "\n"
    "Generates text after PROMPT, printing each token as it comes, then the speeds of the prompt\n"
    "(all tokens at once through GEMM) and of the generation (one token at a time, GEMV and a KV\n"
    "cache), the load time and the peak memory (resident set) on stderr.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL      a GGUF file (llama, qwen2), a llama2.c checkpoint (.bin, v0 or v1),\n"
    "                         or a Hugging Face folder (config.json, *.safetensors) of a Llama,\n"
    "                         Mistral or Qwen2\n"
    "  -t, --tokenizer FILE   tokenizer.json, tokenizer.model, a GGUF or llama2.c tokenizer.bin;\n"
    "                         default: the GGUF's own, the folder's tokenizer.json, or\n"
    "                         tokenizer.bin next to a .bin\n"
    "  -p, --prompt PROMPT    default: empty (generation starts from BOS)\n"
    "  -n N                   tokens to generate; default 256 (stops early at BOS or EOS)\n"
    "  --temp T               temperature, 0 = greedy; default 0.8\n"
    "  --top-k K              keep the K most likely tokens, 0 = all; default 40\n"
    "  --top-p P              keep the smallest set with probability mass P; default 0.95\n"
    "  --repeat-penalty R     divide the logits of recent tokens by R (1 = off); default 1.0\n"
    "  --repeat-last-n N      how many recent tokens the penalty looks at; default 64\n"
    "  --seed S               sampling seed; default 42\n"
    "  --ctx N                context length (KV cache size); default: the model's, at most 4096\n"
    "  --threads N            default: all hardware threads\n"
    "  --device D             cpu (default) or cuda: weights, KV cache and the forward pass on the\n"
    "                         GPU, tokens one at a time, the logits copied back (docs/cuda.md)\n"
    "  --direct-load          with --device cuda, a GGUF model goes from the file straight to device\n"
    "                         memory, one tensor at a time, no host copy of the weights (Jetson)\n" +
    std::string(cli::gpu_math_help) +
    "  --weights W            f32, f16 or bf16; default: as stored\n"
    "  --json                 one JSON object on stdout (tokens, text, speeds, load time, peak\n"
    "                         memory) instead of the streamed text and the summary\n"
    "  -h, --help             this text\n";

double number(cli::args& a, const std::string& option, double lo, double hi) {
    const std::string s = a.value(option);
    std::size_t used = 0;
    double d = lo - 1;
    try {
        d = std::stod(s, &used);
    } catch (const std::exception&) {
    }
    if (used != s.size() || !(d >= lo && d <= hi))
        a.fail(option + " takes a number from " + cli::fmt("%g", lo) + " to " + cli::fmt("%g", hi) + ", not '" + s + "'");
    return d;
}

}  // namespace

namespace commands {

int run(int argc, char** argv) {
    cli::args a("run", argc, argv);
    std::string model_path, tok_path, prompt, weights;
    std::size_t n_gen = 256, n_ctx = 0;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    bool json = false, cuda = false, direct = false;
    cli::gpu::arithmetic math = cli::gpu::arithmetic::automatic;
    bool math_given = false;
    edgeq::engine::sampler_params sp;
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help.c_str(), stdout);
            return 0;
        } else if (o == "-m" || o == "--model") {
            model_path = a.value(o);
        } else if (o == "-t" || o == "--tokenizer") {
            tok_path = a.value(o);
        } else if (o == "-p" || o == "--prompt") {
            prompt = a.value(o);
        } else if (o == "-n") {
            n_gen = a.positive(o, 1u << 20);
        } else if (o == "--ctx") {
            n_ctx = a.positive(o, 1u << 24);
        } else if (o == "--temp") {
            sp.temperature = float(number(a, o, 0, 100));
        } else if (o == "--top-k") {
            sp.top_k = int(number(a, o, 0, 1 << 24));
        } else if (o == "--top-p") {
            sp.top_p = float(a.fraction(o));
        } else if (o == "--repeat-penalty") {
            sp.repeat_penalty = float(number(a, o, 0.01, 100));
        } else if (o == "--repeat-last-n") {
            sp.repeat_last_n = int(number(a, o, 0, 1 << 24));
        } else if (o == "--seed") {
            sp.seed = std::uint64_t(number(a, o, 0, 9007199254740992.0));
        } else if (o == "--threads") {
            threads = unsigned(a.positive(o, 1024));
        } else if (o == "--weights") {
            weights = a.value(o);
            if (!edgeq::is_dense_type(weights)) a.fail("--weights takes f32, f16 or bf16, not '" + weights + "'");
        } else if (o == "--json") {
            json = true;
        } else if (o == "--device") {
            const std::string d = a.value(o);
            if (d != "cpu" && d != "cuda") a.fail("--device takes cpu or cuda, not '" + d + "'");
            cuda = d == "cuda";
        } else if (o == "--direct-load") {
            direct = true;
        } else if (o == "--gpu-math") {
            const std::string m = a.value(o);
            if (!cli::parse_gpu_math(m, &math)) a.fail("--gpu-math takes auto, exact-half, half or fp32, not '" + m + "'");
            math_given = true;
        } else {
            a.unknown(o);
        }
    }
    if (model_path.empty()) a.fail("-m MODEL is required");
    if (tok_path.empty()) tok_path = cli::default_tokenizer(model_path);

#ifndef EDGEQ_CLI_CUDA
    if (cuda) throw cli::cuda_missing();
#endif
    if (direct && !cuda) a.fail("--direct-load needs --device cuda");
    if (math_given && !cuda) a.fail("--gpu-math needs --device cuda");

    const auto t_load = clock_type::now();
    // The model in host memory, except with --direct-load (then only the GPU holds the weights).
    edgeq::engine::llama_model model;
    edgeq::engine::llama_config config;
    std::unique_ptr<cli::gpu::session> gpu;
    if (direct) {
        gpu = cli::load_to_gpu(model_path, int(n_ctx), &config, math);
    } else {
        model = cli::load_model(model_path, weights.empty() ? edgeq::io::matrix_factory() : edgeq::io::dense_factory(weights));
        config = model.config;
    }
    // The KV cache is allocated whole: a model trained for 128K positions would take gigabytes.
    if (n_ctx == 0) n_ctx = std::size_t(std::min(config.seq_len, 4096));
    if (cuda && !gpu) gpu = cli::gpu_session_of(model, int(n_ctx), math);
    const auto tok = edgeq::tok::load_tokenizer(tok_path, config.vocab_size);
    const double load_s = std::chrono::duration<double>(clock_type::now() - t_load).count();
    edgeq::thread_pool pool(cuda ? 1 : threads);
    std::unique_ptr<edgeq::engine::llama_session> cpu;
    if (!cuda) cpu.reset(new edgeq::engine::llama_session(model, pool, int(n_ctx)));
    const int session_ctx = cuda ? gpu->n_ctx() : cpu->n_ctx();
    std::vector<float> logits(std::size_t(config.vocab_size));
    // One step of either engine: the logits of the last of n tokens.
    auto eval = [&](const int* t, std::size_t n) {
        if (cuda)
            gpu->eval(t, n, logits.data());
        else
            cpu->eval(t, n, logits.data());
    };
    const std::string weights_name = direct ? std::string("device") : model.token_embd->scheme_name();
    const std::size_t weight_bytes = direct ? gpu->bytes_per_token() : model.storage_bytes();
    edgeq::engine::sampler sampler(sp);

    std::vector<int> ids = tok->encode(prompt, true, false);
    if (ids.size() >= std::size_t(session_ctx))
        a.fail_plain("the prompt has " + std::to_string(ids.size()) + " tokens; the context holds " +
                     std::to_string(session_ctx));
    n_gen = std::min(n_gen, std::size_t(session_ctx) - ids.size());
    if (!json) {
        std::fputs(prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    std::string text;  // the generated text

    const auto t0 = clock_type::now();
    eval(ids.data(), ids.size());
    const auto t1 = clock_type::now();
    std::size_t generated = 0;
    for (; generated < n_gen; ++generated) {
        const int next = sampler.sample(logits.data(), logits.size(), ids);
        if (next == config.eos_id || next == config.bos_id) break;
        std::string piece = tok->decode(next);
        if (ids.back() == config.bos_id && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);  // as run.c
        ids.push_back(next);
        text += piece;
        if (!json) {
            std::fputs(piece.c_str(), stdout);
            std::fflush(stdout);
        }
        if (generated + 1 < n_gen) eval(&next, 1);
    }
    const auto t2 = clock_type::now();
    const double tp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
    const std::size_t n_prompt = ids.size() - generated;
    if (json) {
        std::string toks;
        for (std::size_t i = n_prompt; i < ids.size(); ++i) toks += (i > n_prompt ? ", " : "") + std::to_string(ids[i]);
        std::printf("{\"model\": %s, \"tokenizer\": %s, \"prompt\": %s, \"prompt_tokens\": %zu, \"generated_tokens\": %zu,\n"
                    " \"tokens\": [%s],\n \"text\": %s,\n"
                    " \"load_seconds\": %s, \"prompt_seconds\": %s, \"prompt_tokens_per_second\": %s, "
                    "\"decode_seconds\": %s, \"decode_tokens_per_second\": %s,\n"
                    " \"n_ctx\": %d, \"threads\": %u, \"weights\": %s, \"weight_bytes\": %zu, \"device\": %s, \"direct_load\": %s,\n"
                    " \"gpu\": %s, \"gpu_bytes_per_token\": %zu, \"peak_device_bytes\": %s, \"device_in_use_bytes\": %s,"
                    " \"peak_rss_bytes\": %.0f}\n",
                    cli::json_string(model_path).c_str(), cli::json_string(tok_path).c_str(), cli::json_string(prompt).c_str(),
                    n_prompt, generated, toks.c_str(), cli::json_string(text).c_str(), cli::json_number(load_s).c_str(),
                    cli::json_number(tp).c_str(), cli::json_number(tp > 0 ? double(n_prompt) / tp : 0.0).c_str(),
                    cli::json_number(tg).c_str(), cli::json_number(generated && tg > 0 ? double(generated) / tg : 0.0).c_str(),
                    session_ctx, pool.size(), cli::json_string(weights_name).c_str(), weight_bytes,
                    cuda ? "\"cuda\"" : "\"cpu\"", direct ? "true" : "false", cli::json_string(gpu ? gpu->describe() : "").c_str(),
                    gpu ? gpu->bytes_per_token() : std::size_t(0),
                    // the engine's own allocations (all made at load: also its peak); the device's
                    // memory in use (cudaMemGetInfo: with the CUDA context and other processes)
                    gpu ? std::to_string(gpu->device_bytes()).c_str() : "null",
                    gpu ? std::to_string(gpu->device_in_use()).c_str() : "null", cli::peak_rss_bytes());
        return 0;
    }
    std::fputs("\n", stdout);
    std::fprintf(stderr, "\nprompt:     %zu tokens in %s, %.1f tokens/s\ngeneration: %zu tokens in %s, %.1f tokens/s\n",
                 n_prompt, cli::seconds(tp).c_str(), double(n_prompt) / tp, generated, cli::seconds(tg).c_str(),
                 generated ? double(generated) / tg : 0.0);
    std::fprintf(stderr, "model: %s, %d layers, dim %d, %s weights (%s), %u threads, loaded in %s\n", model_path.c_str(),
                 config.n_layers, config.dim, weights_name.c_str(), cli::bytes(double(weight_bytes)).c_str(), pool.size(),
                 cli::seconds(load_s).c_str());
    if (gpu) std::fprintf(stderr, "gpu: %s\n", gpu->describe().c_str());
    std::fprintf(stderr, "peak memory: %s\n", cli::bytes(cli::peak_rss_bytes()).c_str());
    return 0;
}

}  // namespace commands
