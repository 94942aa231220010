// edgeq synth: a GGUF file with random weights in the shapes of a real model (io/synth.hpp),
// to measure loading, memory and speed at real sizes without downloading weights.
// This file dispatches on scheme names (registry::visit) for the grouped formats, so it compiles
// the quantizer of every built-in scheme (no kernels).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include <edgeq/core/error.hpp>
#include <edgeq/core/thread_pool.hpp>
#include <edgeq/io/synth.hpp>
#include <edgeq/registry.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "progress_bar.hpp"

namespace {

const char* const help =
    "usage: edgeq synth --like MODEL -o OUT.gguf [--type TYPE] [--seed N] [--layers N] [--threads N] [--json]\n"
    "\n"
    "Writes a GGUF model with random weights (normal, std 0.02; norms near 1) in the exact shapes\n"
    "of a real model, with llama.cpp's names and metadata and a SentencePiece-style tokenizer of\n"
    "the model's vocabulary size, so 'edgeq run', 'inspect' and 'perplexity' can be measured at\n"
    "real sizes. The text it generates is meaningless. Tensors are produced one at a time while\n"
    "the file is written, so memory stays far below the model's size.\n"
    "\n"
    "models (--like):\n"
    "  tinyllama-1.1b   dim 2048, ffn 5632, 22 layers, 32 heads, 4 kv heads, vocab 32000\n"
    "  llama-3.2-1b     dim 2048, ffn 8192, 16 layers, 32 heads, 8 kv heads, vocab 128256,\n"
    "                   rope theta 500000 with llama3 scaling (factor 32), tied embeddings\n"
    "  llama-7b         dim 4096, ffn 11008, 32 layers, 32 heads, vocab 32000\n"
    "\n"
    "options:\n"
    "  --like MODEL     the model whose shapes to copy (required)\n"
    "  -o, --output F   the GGUF file to write (required; written atomically)\n"
    "  --type TYPE      how matrices are stored: f32, f16, bf16, a llama.cpp type (q4_0, q4_1,\n"
    "                   q5_0, q5_1, q8_0, q2_k ... q6_k, iq4_nl, iq4_xs), or an edgeq scheme\n"
    "                   ('edgeq schemes', e.g. int4-g128); default q4_k. Norms are always f32.\n"
    "  --seed N         random seed; default 1 (the same seed gives the same file)\n"
    "  --layers N       fewer layers than the model has, for quick tests\n"
    "  --threads N      default: all hardware threads\n"
    "  --json           one JSON object on stdout instead of the summary\n"
    "  -h, --help       this text\n";

std::string strip_prefix(const std::string& s) {
    const std::string p = "edgeq: ";
    return s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s;
}

}  // namespace

namespace commands {

int synth(int argc, char** argv) {
    namespace sy = edgeq::io::synth;
    cli::args a("synth", argc, argv);
    std::string like, out, type = "q4_k";
    sy::options opt;
    bool json = false;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (o == "--like") {
            like = a.value(o);
        } else if (o == "-o" || o == "--output") {
            out = a.value(o);
        } else if (o == "--type") {
            type = a.value(o);
        } else if (o == "--seed") {
            const std::string s = a.value(o);
            bool ok = !s.empty() && s.size() <= 19;
            for (char c : s) ok = ok && c >= '0' && c <= '9';
            if (!ok) a.fail("--seed takes a whole number, not '" + s + "'");
            opt.seed = std::stoull(s);
        } else if (o == "--layers") {
            opt.layers = int(a.positive(o, 1000));
        } else if (o == "--threads") {
            threads = unsigned(a.positive(o, 1024));
        } else if (o == "--json") {
            json = true;
        } else {
            a.unknown(o);
        }
    }
    if (like.empty()) a.fail("--like MODEL is required (" + sy::shape_names() + ")");
    const sy::model_shape* shape = sy::find_shape_or_null(like);
    if (!shape) a.fail("unknown model '" + like + "' for --like; the models are " + sy::shape_names());
    if (out.empty()) a.fail("-o OUT.gguf is required");
    if (opt.layers > shape->n_layers)
        a.fail("--layers " + std::to_string(opt.layers) + " is more than " + shape->title + "'s " +
               std::to_string(shape->n_layers));

    sy::encoder enc;
    if (!sy::find_gguf_encoder(type, enc)) {
        edgeq::registry::scheme_info info;
        try {
            info = edgeq::registry::info(type);
        } catch (const edgeq::error& e) {
            a.fail("--type takes f32, f16, bf16, a llama.cpp type such as q4_k, or an edgeq scheme; " + strip_prefix(e.what()));
        }
        if (info.algorithm == "spqr") a.fail("synth writes round-to-nearest weights; SpQR needs calibration (edgeq quantize --calib)");
        enc = edgeq::registry::visit(info.name, [&info](auto t) {
            return sy::encoder_for_scheme<typename decltype(t)::type>(info.name);
        });
    }

    edgeq::thread_pool pool(threads);
    cli::progress_bar bar("synth " + like + " " + type);
    const auto t0 = std::chrono::steady_clock::now();
    const sy::result r = sy::write(out, *shape, enc, opt, pool, bar.callback());
    bar.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int layers = opt.layers ? opt.layers : shape->n_layers;
    const double bpw = 8.0 * double(r.weight_bytes) / double(r.weights);
    if (json) {
        std::printf("{\"path\": %s, \"like\": %s, \"type\": %s, \"layers\": %d, \"seed\": %llu, \"tensors\": %llu, "
                    "\"weights\": %llu, \"weight_bytes\": %llu, \"file_bytes\": %llu, \"bits_per_weight\": %s, "
                    "\"seconds\": %s, \"threads\": %u, \"peak_rss_bytes\": %.0f}\n",
                    cli::json_string(out).c_str(), cli::json_string(like).c_str(), cli::json_string(enc.name).c_str(), layers,
                    (unsigned long long)opt.seed, (unsigned long long)r.tensors, (unsigned long long)r.weights,
                    (unsigned long long)r.weight_bytes, (unsigned long long)r.file_bytes, cli::json_number(bpw).c_str(),
                    cli::json_number(secs).c_str(), pool.size(), cli::peak_rss_bytes());
        return 0;
    }
    std::printf("wrote %s: synthetic %s, %d layers, %s, %llu tensors, %.3g G weights, %s (%.3f bits/weight)\n", out.c_str(),
                shape->title, layers, enc.name.c_str(), (unsigned long long)r.tensors, double(r.weights) * 1e-9,
                cli::bytes(double(r.file_bytes)).c_str(), bpw);
    std::printf("%s on %u threads, peak memory %s\n", cli::seconds(secs).c_str(), pool.size(),
                cli::bytes(cli::peak_rss_bytes()).c_str());
    return 0;
}

}  // namespace commands
