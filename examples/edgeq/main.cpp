// edgeq: the command-line tool. One file per subcommand (commands.hpp).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <edgeq/core/error.hpp>

#include "cli.hpp"
#include "commands.hpp"

#ifndef EDGEQ_VERSION
#define EDGEQ_VERSION "unknown"
#endif

namespace {

const char* const usage =
    "edgeq " EDGEQ_VERSION " - quantize LLM weight matrices and run their kernels\n"
    "\n"
    "usage: edgeq <command> [options]\n"
    "\n"
    "commands:\n"
    "  schemes    list the built-in quantization schemes (name, bits per weight, layout)\n"
    "  demo       quantize a synthetic weight matrix with several schemes; compare error,\n"
    "             size and GEMV speed\n"
    "  inspect    show the metadata and tensors of a GGUF or safetensors model\n"
    "  run        generate text with a Llama-family model (llama2.c .bin, Hugging Face folder)\n"
    "  perplexity perplexity on a text (GPTQ or llama.cpp protocol), KL divergence from a reference\n"
    "  convert    write a model (llama2.c, Hugging Face, GGUF) as GGUF: f32, f16, q8_0, q4_k, any scheme\n"
    "  synth      write a GGUF with random weights in the shapes of a real model (TinyLlama, Llama)\n"
    "  quantize   quantize a model to GGUF: RTN, GPTQ, AWQ or importance-weighted on calibration\n"
    "             text; any scheme or a llama.cpp mixture (q4_k_m)\n"
    "  bench      compare schemes on a model: size, speed, memory, perplexity, KL, answers, a\n"
    "             Jetson Nano estimate; CSV, JSON, a Markdown report and plots\n"
    "\n"
    "options:\n"
    "  -h, --help     this text; 'edgeq <command> --help' describes a command\n"
    "  --version      the version\n";

struct command {
    const char* name;
    int (*run)(int, char**);
};
const command table[] = {{"schemes", commands::schemes},
                         {"demo", commands::demo},
                         {"inspect", commands::inspect},
                         {"run", commands::run},
                         {"perplexity", commands::perplexity},
                         {"convert", commands::convert},
                         {"synth", commands::synth},
                         {"quantize", commands::quantize},
                         {"bench", commands::bench}};

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 2) {
            std::fputs(usage, stderr);
            return 2;
        }
        const std::string first = argv[1];
        if (first == "-h" || first == "--help" || first == "help") {
            if (first == "help" && argc > 2) {  // "edgeq help demo" = "edgeq demo --help"
                char help[] = "--help";
                char* args[] = {help};
                for (const command& c : table)
                    if (argv[2] == std::string(c.name)) return c.run(1, args);
            }
            std::fputs(usage, stdout);
            return 0;
        }
        if (first == "--version") {
            std::printf("edgeq %s\n", EDGEQ_VERSION);
            return 0;
        }
        for (const command& c : table)
            if (first == c.name) return c.run(argc - 2, argv + 2);
        if (first[0] == '-') throw cli::usage_error("edgeq: unknown option '" + first + "' (see 'edgeq --help')");
        std::string names;  // from the table, so a new command is listed without editing this
        for (const command& c : table) names += std::string(names.empty() ? "" : ", ") + c.name;
        throw cli::usage_error("edgeq: unknown command '" + first + "'; the commands are " + names + " (see 'edgeq --help')");
    } catch (const cli::usage_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    } catch (const edgeq::error& e) {  // its message starts with "edgeq: "
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "edgeq: %s\n", e.what());
        return 1;
    }
}
