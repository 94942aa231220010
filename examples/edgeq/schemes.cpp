// edgeq schemes [--json]: the built-in schemes of edgeq/registry.hpp.
#include <cstdio>
#include <string>

#include <edgeq/registry.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const char* const help =
    "usage: edgeq schemes [--json]\n"
    "\n"
    "Lists the built-in quantization schemes, by the names that 'edgeq demo --schemes' and\n"
    "edgeq::registry::make_linear take:\n"
    "\n"
    "  [rtn-|rtn-clip-] int2..int8|nf4 - g32|g64|g128|g256|row [-asym] [-f32|-dq]\n"
    "  q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs   (llama.cpp's types)\n"
    "\n"
    "  int4-g128       4-bit codes, one fp16 scale per 128 weights, symmetric\n"
    "  int4-g128-asym  ... and a zero point per group\n"
    "  int8-row        one scale per row\n"
    "  -f32, -dq       fp32 scales; double-quantized 8-bit scales (QLoRA, nf4 only)\n"
    "  rtn-clip-       search a clipping range per group (the default, rtn-, rounds the\n"
    "                  full range to nearest)\n"
    "\n"
    "bits/weight counts codes, scales and zero points for rows of 4096 weights.\n"
    "\n"
    "options:\n"
    "  --json       a JSON array instead of the table\n"
    "  -h, --help   this text\n";

}  // namespace

namespace commands {

int schemes(int argc, char** argv) {
    cli::args a("schemes", argc, argv);
    bool json = false;
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (o == "--json") {
            json = true;
        } else {
            a.unknown(o);
        }
    }

    namespace reg = edgeq::registry;
    if (json) {
        std::printf("[\n");
        const auto& names = reg::names();
        for (std::size_t i = 0; i < names.size(); ++i) {
            const reg::scheme_info s = reg::info(names[i]);
            std::printf("  {\"name\": %s, \"bits_per_weight\": %s, \"bits\": %d, \"group\": %d, \"asymmetric\": %s, "
                        "\"codebook\": %s, \"scale\": %s}%s\n",
                        cli::json_string(s.name).c_str(), cli::json_number(s.bits_per_weight).c_str(), s.bits, s.group,
                        s.asymmetric ? "true" : "false", cli::json_string(s.codebook).c_str(),
                        cli::json_string(s.scale).c_str(), i + 1 < names.size() ? "," : "");
        }
        std::printf("]\n");
        return 0;
    }
    cli::table t({"name", "bits/weight", "bits", "group", "zero point", "code-book", "scales"},
                 {false, true, true, true, false, false, false});
    for (const std::string& n : reg::names()) {
        const reg::scheme_info s = reg::info(n);
        t.add({s.name, cli::fmt("%.4f", s.bits_per_weight), std::to_string(s.bits),
               s.group ? std::to_string(s.group) : std::string("row"), s.asymmetric ? (s.group ? "per group" : "per row") : "-",
               s.codebook == "int" ? "uniform" : s.codebook,
               s.scale == "dq8" ? "int8 (double quant)" : s.scale});
    }
    t.print();
    std::printf("\n%zu schemes; prefix a name with rtn-clip- for the clipping search (rtn-clip-int4-g128).\n",
                reg::names().size());
    return 0;
}

}  // namespace commands
