// The edgeq subcommands. Each takes the arguments after its name and returns the exit code
// (0 done, 1 failed); a mistake on the command line throws cli::usage_error (exit code 2).
#pragma once

namespace commands {

int schemes(int argc, char** argv);  // schemes.cpp
int demo(int argc, char** argv);     // demo.cpp
int inspect(int argc, char** argv);  // inspect.cpp
int run(int argc, char** argv);         // run.cpp
int perplexity(int argc, char** argv);  // perplexity.cpp
int convert(int argc, char** argv);     // convert.cpp
int synth(int argc, char** argv);       // synth.cpp
int quantize(int argc, char** argv);    // quantize.cpp
int bench(int argc, char** argv);       // bench.cpp (runs the others as child processes)

}  // namespace commands
