// edgeq convert: a model (llama2.c .bin, Hugging Face folder, GGUF) to a GGUF file that llama.cpp
// reads (dense and llama.cpp types) or that edgeq reads (its grouped schemes). The model goes
// through the engine's loader, so every input the engine runs converts, and the writer
// (engine::save_gguf) follows convert_hf_to_gguf.py.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <edgeq/engine/gguf_registry.hpp>
#include <edgeq/engine/load.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/engine/tokenizer/load.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "progress_bar.hpp"

namespace {

const char* const help =
    "usage: edgeq convert -m MODEL -o OUT.gguf [--type TYPE] [-t TOKENIZER] [--name NAME] [--json]\n"
    "\n"
    "Writes MODEL as a GGUF file (general.architecture llama, or qwen2), as llama.cpp's\n"
    "convert_hf_to_gguf.py does: llama.* metadata, the tokenizer as tokenizer.ggml.*, q/k rows in\n"
    "GGUF order, norms in F32. The file appears only when complete (written to a temporary file,\n"
    "then renamed).\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL      a llama2.c checkpoint (.bin), a Hugging Face folder (config.json,\n"
    "                         *.safetensors) or a GGUF file\n"
    "  -o, --output OUT       the GGUF file to write\n"
    "  --type TYPE            f32, f16, bf16, a llama.cpp type (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k,\n"
    "                         q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs) or any scheme 'edgeq schemes'\n"
    "                         lists (stored as edgeq's own GGUF type, which llama.cpp cannot read);\n"
    "                         default: the type the model is stored in. Matrices whose rows the\n"
    "                         type cannot hold are written as F16.\n"
    "  -t, --tokenizer FILE   tokenizer.json, tokenizer.model or llama2.c tokenizer.bin; default:\n"
    "                         the folder's tokenizer.json, tokenizer.bin next to a .bin, a GGUF's own\n"
    "  --name NAME            general.name; default: the model's file or folder name\n"
    "  --json                 print a JSON summary on stdout\n"
    "  -h, --help             this text\n";

bool exists(const std::string& p) { return std::ifstream(p).good(); }

std::string base_name(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const std::size_t s = p.find_last_of('/');
    if (s != std::string::npos) p = p.substr(s + 1);
    const std::size_t dot = p.rfind('.');
    return dot != std::string::npos && dot > 0 ? p.substr(0, dot) : p;
}

// The tokenizer that comes with a model, or "" when there is none.
std::string default_tokenizer(const std::string& model) {
    if (edgeq::engine::is_gguf_file(model)) return model;
    if (exists(model + "/tokenizer.json")) return model + "/tokenizer.json";
    if (exists(model + "/tokenizer.model")) return model + "/tokenizer.model";
    const std::size_t slash = model.find_last_of('/');
    const std::string dir = slash == std::string::npos ? std::string(".") : model.substr(0, slash);
    return exists(dir + "/tokenizer.bin") ? dir + "/tokenizer.bin" : "";
}

}  // namespace

namespace commands {

int convert(int argc, char** argv) {
    namespace engine = edgeq::engine;
    cli::args a("convert", argc, argv);
    std::string in, out, type, tok_path, name;
    bool json = false;
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (o == "-m" || o == "--model") {
            in = a.value(o);
        } else if (o == "-o" || o == "--output") {
            out = a.value(o);
        } else if (o == "--type") {
            type = a.value(o);
        } else if (o == "-t" || o == "--tokenizer") {
            tok_path = a.value(o);
        } else if (o == "--name") {
            name = a.value(o);
        } else if (o == "--json") {
            json = true;
        } else {
            a.unknown(o);
        }
    }
    if (in.empty()) a.fail("-m MODEL is required");
    if (out.empty()) a.fail("-o OUT.gguf is required");

    // The target: a built-in GGUF type, else a registry scheme (a wrong name is a usage error
    // with the registry's suggestions).
    engine::gguf_save_options so;
    auto set_target = [&](const std::string& t) {
        if (engine::gguf_builtin_target(t, so.target, so.encode)) return;
        edgeq::registry::scheme_info info;
        try {
            info = edgeq::registry::info(t);
        } catch (const edgeq::error& e) {
            a.fail_plain(std::string(e.what()).substr(7) + " (--type: f32, f16, bf16, a llama.cpp type or an edgeq scheme)");
        }
        so.target.name = info.name;
        so.target.type = edgeq::io::gguf::type::edgeq_grouped;
        so.target.ftype = edgeq::io::file_type::all_f32;  // llama.cpp has no value for edgeq's types
        so.target.block = info.group ? std::size_t(info.group) : 32;
        so.encode = engine::registry_encoder(info.name);
    };
    if (!type.empty()) set_target(type);

    const auto t0 = std::chrono::steady_clock::now();
    const engine::llama_model model = engine::load_model(in);
    if (type.empty()) set_target(model.token_embd->scheme_name());  // as stored
    if (tok_path.empty()) tok_path = default_tokenizer(in);
    std::unique_ptr<edgeq::tok::tokenizer> tok;
    if (!tok_path.empty()) tok = edgeq::tok::load_tokenizer(tok_path, model.config.vocab_size);
    else std::fprintf(stderr, "edgeq convert: no tokenizer found next to %s; the GGUF will have none (pass one with -t)\n", in.c_str());

    so.name = name.empty() ? base_name(in) : name;
    std::vector<std::string> fallbacks;
    so.fallbacks = &fallbacks;
    cli::progress_bar bar("converting", !json);
    so.progress = bar.callback();
    engine::save_gguf(model, tok.get(), out, so);
    bar.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::ifstream f(out, std::ios::binary | std::ios::ate);
    const double bytes = double(f.tellg());
    if (json) {
        std::printf("{\"input\": %s, \"output\": %s, \"type\": %s, \"bytes\": %.0f, \"seconds\": %s, \"tokenizer\": %s, "
                    "\"f16_fallback\": [",
                    cli::json_string(in).c_str(), cli::json_string(out).c_str(), cli::json_string(so.target.name).c_str(), bytes,
                    cli::json_number(secs).c_str(), tok ? cli::json_string(tok_path).c_str() : "null");
        for (std::size_t i = 0; i < fallbacks.size(); ++i) std::printf("%s%s", i ? ", " : "", cli::json_string(fallbacks[i]).c_str());
        std::printf("]}\n");
    } else {
        std::printf("%s -> %s: %s, %s in %s\n", in.c_str(), out.c_str(), so.target.name.c_str(), cli::bytes(bytes).c_str(),
                    cli::seconds(secs).c_str());
        if (!fallbacks.empty())
            std::printf("%zu matrices kept as F16 (row length not a multiple of the %s block), e.g. %s\n", fallbacks.size(),
                        so.target.name.c_str(), fallbacks[0].c_str());
    }
    return 0;
}

}  // namespace commands
