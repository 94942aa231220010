// edgeq run: generate text with a Llama-family model (llama2.c checkpoints and Hugging Face Llama folders), streaming
// the tokens as they come, then the prompt and generation speeds.
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
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/sampler.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

const char* const help =
    "usage: edgeq run -m MODEL [-t TOKENIZER] [-p PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "                 [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--threads N] [--weights W]\n"
    "                 [--ctx N]\n"
    "\n"
    "Generates text after PROMPT, printing each token as it comes, then the speeds of the prompt\n"
    "(all tokens at once through GEMM) and of the generation (one token at a time, GEMV and a KV\n"
    "cache) on stderr.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL      a llama2.c checkpoint (.bin, v0 or v1), or a Hugging Face\n"
    "                         folder (config.json, *.safetensors) of a Llama, Mistral or Qwen2\n"
    "  -t, --tokenizer FILE   tokenizer.json, tokenizer.model or llama2.c tokenizer.bin;\n"
    "                         default: the folder's tokenizer.json, or tokenizer.bin next to a .bin\n"
    "  -p, --prompt PROMPT    default: empty (generation starts from BOS)\n"
    "  -n N                   tokens to generate; default 256 (stops early at BOS or EOS)\n"
    "  --temp T               temperature, 0 = greedy; default 0.8\n"
    "  --top-k K              keep the K most likely tokens, 0 = all; default 40\n"
    "  --top-p P              keep the smallest set with probability mass P; default 0.95\n"
    "  --repeat-penalty R     divide the logits of recent tokens by R (1 = off); default 1.0\n"
    "  --repeat-last-n N      how many recent tokens the penalty looks at; default 64\n"
    "  --seed S               sampling seed; default 42\n"
    "  --ctx N                context length (KV cache size); default: the model's\n"
    "  --threads N            default: all hardware threads\n"
    "  --weights W            f32, f16 or bf16; default: as stored\n"
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

// A Hugging Face folder's tokenizer.json, else tokenizer.bin next to a llama2.c checkpoint.
std::string default_tokenizer(const std::string& model) {
    if (std::ifstream(model + "/tokenizer.json").good()) return model + "/tokenizer.json";
    const std::size_t slash = model.find_last_of('/');
    return (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/tokenizer.bin";
}

}  // namespace

namespace commands {

int run(int argc, char** argv) {
    cli::args a("run", argc, argv);
    std::string model_path, tok_path, prompt, weights;
    std::size_t n_gen = 256, n_ctx = 0;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    edgeq::engine::sampler_params sp;
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help, stdout);
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
        } else {
            a.unknown(o);
        }
    }
    if (model_path.empty()) a.fail("-m MODEL is required");
    if (tok_path.empty()) tok_path = default_tokenizer(model_path);

    const edgeq::engine::llama_model model = edgeq::engine::load_model(
        model_path, weights.empty() ? edgeq::io::matrix_factory() : edgeq::io::dense_factory(weights));
    const auto tok = edgeq::tok::load_tokenizer(tok_path, model.config.vocab_size);
    edgeq::thread_pool pool(threads);
    edgeq::engine::llama_session session(model, pool, int(n_ctx));
    edgeq::engine::sampler sampler(sp);

    std::vector<int> ids = tok->encode(prompt, true, false);
    if (ids.size() >= std::size_t(session.n_ctx()))
        a.fail_plain("the prompt has " + std::to_string(ids.size()) + " tokens; the context holds " +
                     std::to_string(session.n_ctx()));
    n_gen = std::min(n_gen, std::size_t(session.n_ctx()) - ids.size());
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);

    const auto t0 = clock_type::now();
    std::vector<float> logits = session.prompt(ids);
    const auto t1 = clock_type::now();
    std::size_t generated = 0;
    for (; generated < n_gen; ++generated) {
        const int next = sampler.sample(logits.data(), logits.size(), ids);
        if (next == model.config.eos_id || next == model.config.bos_id) break;
        std::string piece = tok->decode(next);
        if (ids.back() == model.config.bos_id && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);  // as run.c
        ids.push_back(next);
        std::fputs(piece.c_str(), stdout);
        std::fflush(stdout);
        if (generated + 1 < n_gen) logits = session.decode(next);
    }
    const auto t2 = clock_type::now();
    std::fputs("\n", stdout);
    const double tp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
    const std::size_t n_prompt = ids.size() - generated;
    std::fprintf(stderr, "\nprompt:     %zu tokens in %s, %.1f tokens/s\ngeneration: %zu tokens in %s, %.1f tokens/s\n",
                 n_prompt, cli::seconds(tp).c_str(), double(n_prompt) / tp, generated, cli::seconds(tg).c_str(),
                 generated ? double(generated) / tg : 0.0);
    std::fprintf(stderr, "model: %s, %d layers, dim %d, %s weights (%s), %u threads\n", model_path.c_str(),
                 model.config.n_layers, model.config.dim, model.token_embd->scheme_name().c_str(), cli::bytes(double(model.storage_bytes())).c_str(),
                 pool.size());
    return 0;
}

}  // namespace commands
