// edgeq bench's outputs: results.csv, results.json, report.md, and the gnuplot data, scripts
// and SVG plots under plots/. Every file is written to a temporary name and renamed.
#pragma once
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <edgeq/core/error.hpp>

#include "bench_child.hpp"
#include "bench_row.hpp"
#include "cli.hpp"

namespace bench {

inline void write_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out) throw edgeq::error("bench: cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw edgeq::error("bench: cannot rename " + tmp + " to " + path);
}

// What the run was: written at the top of each output.
struct run_info {
    std::string model, command, date, device = "cpu";
    nlohmann::json options;
    std::vector<std::string> machine;  // "CPU: ...", "memory: ..."
    jetson_settings jetson;
};

inline std::vector<std::string> describe_machine() {
    std::vector<std::string> m;
    std::ifstream cpu("/proc/cpuinfo");
    std::string line, model;
    while (model.empty() && std::getline(cpu, line))
        if (line.compare(0, 10, "model name") == 0 && line.find(':') != std::string::npos) model = line.substr(line.find(':') + 2);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m.push_back("CPU: " + (model.empty() ? std::string("unknown") : model) + ", " + std::to_string(cores) + " hardware threads");
    std::ifstream mem("/proc/meminfo");
    while (std::getline(mem, line))
        if (line.compare(0, 9, "MemTotal:") == 0) {
            const double kib = std::atof(line.c_str() + 9);
            m.push_back("memory: " + cli::fmt("%.1f GiB", kib / 1024 / 1024));
            break;
        }
    struct utsname u;
    if (uname(&u) == 0) m.push_back(std::string("system: ") + u.sysname + " " + u.release + " " + u.machine);
    return m;
}

inline std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    char b[64];
    std::strftime(b, sizeof b, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
    return b;
}

// --- results.csv, results.json --------------------------------------------------------------

inline std::string csv_cell(const nlohmann::json& v) {
    if (v.is_null()) return "";
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    if (v.is_number()) return cli::fmt("%.9g", v.get<double>());
    const std::string s = v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' || c == '\r' ? ' ' : c);
    return q + "\"";
}

inline std::string results_csv(const std::vector<row>& rows) {
    const std::vector<std::string> cols = csv_columns();
    std::string o;
    for (std::size_t c = 0; c < cols.size(); ++c) o += (c ? "," : "") + cols[c];
    o += "\n";
    for (const row& r : rows) {
        const nlohmann::json j = to_json(r);
        for (std::size_t c = 0; c < cols.size(); ++c) o += (c ? "," : "") + csv_cell(j[cols[c]]);
        o += "\n";
    }
    return o;
}

inline std::string results_json(const std::vector<row>& rows, const run_info& info) {
    nlohmann::json j;
    j["model"] = info.model;
    j["command"] = info.command;
    j["date"] = info.date;
    j["device"] = info.device;
    j["machine"] = info.machine;
    j["options"] = info.options;
    j["jetson"] = {{"bandwidth_bytes_per_second", info.jetson.bandwidth}, {"efficiency", info.jetson.efficiency},
                   {"memory_bytes", info.jetson.memory},                {"overhead_bytes", info.jetson.overhead},
                   {"kv_bytes_per_element", info.jetson.kv_bytes},      {"ctx", info.jetson.ctx}};
    j["rows"] = nlohmann::json::array();
    for (const row& r : rows) j["rows"].push_back(to_json(r));
    return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// --- report.md -----------------------------------------------------------------------------

inline std::string md_cell(std::string s) {
    std::string o;
    for (char c : s) {
        if (c == '|') o += "\\|";
        else if (c == '\n' || c == '\r') o += ' ';
        else o += c;
    }
    return o;
}

inline std::string num_or_dash(double v, const char* f) { return known(v) && std::isfinite(v) ? cli::fmt(f, v) : "-"; }

inline std::string mib(double bytes) { return known(bytes) ? cli::fmt("%.2f", bytes / 1048576.0) : "-"; }

// "812 (790-830)": the median with the range over the runs.
inline std::string spread(double med, double lo, double hi) {
    if (!known(med)) return "-";
    const char* f = med >= 100 ? "%.0f" : "%.1f";
    if (!known(lo) || !known(hi) || lo == hi) return cli::fmt(f, med);
    return cli::fmt(f, med) + " (" + cli::fmt(f, lo) + "-" + cli::fmt(f, hi) + ")";
}

inline std::string report_md(const std::vector<row>& rows, const run_info& info, const std::vector<std::string>& plots,
                             const std::string& plot_note) {
    const jetson_settings& js = info.jetson;
    std::string o = "# edgeq bench: " + md_cell(info.model) + "\n\n";
    o += info.date + ", device " + info.device + ".\n";
    for (const std::string& m : info.machine) o += "- " + m + "\n";
    o += "\n```sh\n" + info.command + "\n```\n\n";

    const bool gpu = info.device == "cuda";  // one more column: peak device memory
    o += "| scheme | bits/weight (all) | bits/weight (linear) | file MiB | PPL | KL mean | same top-1 | answers agree | "
         "prompt tok/s | decode tok/s | peak RSS MiB | " + std::string(gpu ? "peak device MiB | " : "") +
         "quantize s | Nano tok/s (peak, x" + cli::fmt("%.2f", js.efficiency) + ") | fits 4 GB |\n";
    o += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + std::string(gpu ? "---:|" : "") + "---:|---:|---|\n";
    for (const row& r : rows) {
        std::string name = "`" + r.scheme + "`" + (r.baseline ? " (baseline)" : "") + (r.pareto ? " *" : "");
        if (!r.ok()) {
            o += "| " + name + " | " + r.status + ": " + md_cell(r.error) + " |||||||||||||" + (gpu ? "|" : "") + "\n";
            continue;
        }
        o += "| " + name + " | " + num_or_dash(r.bits_per_weight(), "%.3f") + " | " + num_or_dash(r.linear_bits_per_weight(), "%.3f") +
             " | " + mib(r.file_bytes) + " | " +
             (known(r.ppl) ? cli::fmt("%.3f", r.ppl) + (known(r.ppl_uncertainty) ? cli::fmt(" &plusmn; %.3f", r.ppl_uncertainty) : "")
                           : "-") +
             " | " + (r.baseline ? std::string("0") : num_or_dash(r.kl_mean, "%.4f")) + " | " +
             (known(r.same_top) ? cli::percent(r.same_top) : "-") + " | " + (known(r.agreement) ? cli::percent(r.agreement) : "-") +
             " | " + spread(r.prompt_tps, r.prompt_tps_min, r.prompt_tps_max) + " | " +
             spread(r.decode_tps, r.decode_tps_min, r.decode_tps_max) + " | " + mib(r.peak_rss_bytes) + " | " +
             (gpu ? mib(r.peak_device_bytes) + " | " : "") +
             (r.baseline ? std::string("-") : num_or_dash(r.quantize_seconds, "%.1f")) + " | " +
             (known(r.jetson_tps_peak) ? cli::fmt("%.0f", r.jetson_tps_peak) + ", " + cli::fmt("%.0f", r.jetson_tps_est) : "-") + " | " +
             (r.jetson_fits < 0 ? "-" : (r.jetson_fits ? "yes (" : "no (") + cli::fmt("%.2f GiB)", r.jetson_bytes_needed / 1073741824.0)) +
             " |\n";
    }
    o += "\n`*`: on the Pareto front of file size against perplexity (no other scheme is both smaller and better).\n\n";

    o += "## Plots\n\n";
    if (plots.empty()) o += plot_note + "\n\n";
    for (const std::string& p : plots) o += "![" + p + "](plots/" + p + ")\n\n";

    const row* base = nullptr;
    for (const row& r : rows)
        if (r.baseline && r.ok()) base = &r;
    if (base && !base->answers.empty()) {
        o += "## Answers\n\nGreedy, the same number of tokens for every scheme; the agreement is the fraction of token "
             "positions equal to the baseline's.\n\n";
        for (std::size_t p = 0; p < base->answers.size(); ++p) {
            o += "**" + md_cell(base->answers[p].prompt) + "**\n\n| scheme | agree | answer |\n|---|---:|---|\n";
            for (const row& r : rows) {
                if (!r.ok() || r.answers.size() <= p) continue;
                o += "| `" + r.scheme + "` | " + cli::percent(token_agreement(r.answers[p].tokens, base->answers[p].tokens)) +
                     " | " + md_cell(r.answers[p].text) + " |\n";
            }
            o += "\n";
        }
    }

    o += "## How each column is measured\n\n";
    o += "- **bits/weight**: 8 x the bytes of the GGUF's tensors / their elements, for all tensors (embedding, classifier, "
         "norms included) and for the layer matrices alone (q, k, v, o, gate, up, down). The file adds metadata and the "
         "tokenizer.\n";
    o += "- **PPL**: `edgeq perplexity` on the evaluation text (" + md_cell(info.options.value("eval", std::string("-"))) +
         "), protocol " + info.options.value("protocol", std::string("gptq")) + ", windows of " +
         std::to_string(info.options.value("ppl_ctx", 0)) + " tokens, at most " + std::to_string(info.options.value("ppl_chunks", 0)) +
         " of them; the uncertainty is one standard error. **KL mean**: the mean KL divergence of each scheme's next-token "
         "distribution from the baseline's over the same tokens; **same top-1**: how often the most likely token is the "
         "baseline's.\n";
    if (gpu)
        o += "- **On the GPU** (`--device cuda`): `edgeq run` and `edgeq perplexity` ran with `--device cuda` (the GPU "
             "engine, docs/cuda.md; the prompt in chunks of 256 tokens); quantization and the KL divergence (a second `edgeq "
             "perplexity --kl-base` on the CPU) did not.\n";
    o += "- **prompt / decode tok/s**: `edgeq run` with the first " + std::to_string(info.options.value("speed_prompt_bytes", 0)) +
         " bytes of the evaluation text as prompt (" + (rows.empty() || !known(rows[0].prompt_tokens) ? std::string("-") :
                                                         cli::fmt("%.0f", rows[0].prompt_tokens)) +
         " tokens) and " + std::to_string(info.options.value("speed_tokens", 0)) + " greedy tokens, " +
         std::to_string(info.options.value("threads", 0)) + " threads; the median of " +
         std::to_string(info.options.value("runs", 0)) + " runs (one process each) with the range in parentheses.\n";
    o += "- **peak RSS**: the largest resident set of those processes (the kernel's ru_maxrss of each child), model and "
         "KV cache included" + std::string(gpu ? " (with --device cuda: the host copy of the model, the CUDA runtime)" : "") + ".\n";
    o += gpu ? "- **peak device MiB**: the GPU engine's device allocations (weights as stored, the fp32 KV cache, "
               "scratch; all made at load, none while decoding), the largest over the speed runs. The CUDA context "
               "is not counted (results.json: `peak_device_bytes`).\n"
             : "- Peak device memory is in results.json (null on the CPU).\n";
    o += "- **quantize s**: wall time of `edgeq quantize` (load, calibration, quantization, writing).\n";
    o += "- **answers agree**: the mean over the prompts of the fraction of generated token positions equal to the "
         "baseline's.\n";
    o += "- **Nano tok/s**: the decode speed that the Jetson Nano's " + cli::fmt("%.1f", js.bandwidth / 1e9) +
         " GB/s allow when each token reads every weight once (the embedding: one row) and, on average, half of an f16 KV "
         "cache of " + std::to_string(js.ctx) + " positions: at the peak bandwidth, and at x" + cli::fmt("%.2f", js.efficiency) +
         ", the fraction of copy bandwidth that the int4-g128 CUDA GEMV reached on the H100 (docs/cuda.md). Kernel launch "
         "overhead is not counted: for models this small it, not bandwidth, would bound the speed.\n";
    o += "- **fits 4 GB**: tensors + an f16 KV cache of " + std::to_string(js.ctx) + " positions + " +
         cli::fmt("%.2f", js.overhead / 1073741824.0) + " GiB for the system, the CUDA context and activations (a stated "
         "constant, not measured) against " + cli::fmt("%.0f", js.memory / 1073741824.0) + " GiB.\n";
    return o;
}

// --- plots ---------------------------------------------------------------------------------

// Writes plots/*.dat and plots/*.gp and runs gnuplot on each; returns the SVG files made. When
// gnuplot is missing, note says so (the data and scripts are still written).
inline std::vector<std::string> write_plots(const std::vector<row>& rows, const std::string& dir, std::string& note,
                                            const std::function<void()>& tick) {
    const std::string pd = dir + "/plots";
    std::vector<const row*> ok;
    for (const row& r : rows)
        if (r.ok()) ok.push_back(&r);
    auto q = [](const std::string& s) { return "\"" + s + "\""; };
    auto v = [](double x) { return known(x) && std::isfinite(x) ? cli::fmt("%.6g", x) : std::string("NaN"); };

    std::string size_ppl = "# scheme file_MiB ppl pareto\n", pareto = "# the Pareto front, by size\n";
    std::string speed = "# scheme prompt_median prompt_min prompt_max decode_median decode_min decode_max\n";
    std::string memory = "# scheme peak_rss_MiB file_MiB\n";
    std::vector<const row*> front;
    for (const row* r : ok) {
        size_ppl += q(r->scheme) + " " + v(r->file_bytes / 1048576.0) + " " + v(r->ppl) + " " + (r->pareto ? "1" : "0") + "\n";
        if (r->pareto) front.push_back(r);
        speed += q(r->scheme) + " " + v(r->prompt_tps) + " " + v(r->prompt_tps_min) + " " + v(r->prompt_tps_max) + " " + v(r->decode_tps) +
                 " " + v(r->decode_tps_min) + " " + v(r->decode_tps_max) + "\n";
        memory += q(r->scheme) + " " + v(r->peak_rss_bytes / 1048576.0) + " " + v(r->file_bytes / 1048576.0) + "\n";
    }
    std::sort(front.begin(), front.end(), [](const row* a, const row* b) { return a->file_bytes < b->file_bytes; });
    for (const row* r : front) pareto += q(r->scheme) + " " + v(r->file_bytes / 1048576.0) + " " + v(r->ppl) + "\n";
    write_atomic(pd + "/size_ppl.dat", size_ppl);
    write_atomic(pd + "/pareto.dat", pareto);
    write_atomic(pd + "/speed.dat", speed);
    write_atomic(pd + "/memory.dat", memory);

    const std::string head = "set terminal svg size 900,560 dynamic font 'sans,12' background '#ffffff'\nset termoption noenhanced\n"
                             "set grid ytics lc rgb '#dddddd'\nset key top right\n";
    const std::string bars = "set style fill solid 0.8 border -1\nset boxwidth 0.4\nset xtics rotate by -40 left\nset yrange [0:*]\n"
                             "set xrange [-0.7:" + std::to_string(int(ok.size())) + "-0.3]\nset bmargin 8\n";
    struct plot {
        std::string name, script;
    };
    const std::vector<plot> scripts = {
        {"ppl_vs_size",
         head + "set title 'Perplexity against file size (Pareto front: line)'\nset xlabel 'file size (MiB)'\nset ylabel 'perplexity'\n"
                "set logscale x\nset logscale y\nset output 'ppl_vs_size.svg.tmp'\n"
                "plot 'pareto.dat' using 2:3 with lines lw 2 lc rgb '#d62728' title 'Pareto front', \\\n"
                "     'size_ppl.dat' using 2:3 with points pt 7 ps 1.2 lc rgb '#1f77b4' title 'scheme', \\\n"
                "     'size_ppl.dat' using 2:3:1 with labels offset 0.8,0.6 left font ',9' notitle\n"},
        {"tokens_per_second",
         head + bars + "set output 'tokens_per_second.svg.tmp'\nset multiplot layout 1,2\n"
                "set title 'Prompt processing (median, range over runs)'\nset ylabel 'tokens/s'\n"
                "plot 'speed.dat' using 0:2:xtic(1) with boxes lc rgb '#1f77b4' notitle, '' using 0:2:3:4 with yerrorbars "
                "lc rgb 'black' pt 0 notitle\n"
                "set title 'Generation (median, range over runs)'\n"
                "plot 'speed.dat' using 0:5:xtic(1) with boxes lc rgb '#ff7f0e' notitle, '' using 0:5:6:7 with yerrorbars "
                "lc rgb 'black' pt 0 notitle\nunset multiplot\n"},
        {"memory",
         head + bars + "set title 'Memory per scheme'\nset ylabel 'MiB'\nset output 'memory.svg.tmp'\n"
                "plot 'memory.dat' using ($0-0.2):2:xtic(1) with boxes lc rgb '#2ca02c' title 'peak resident memory (run)', \\\n"
                "     '' using ($0+0.2):3 with boxes lc rgb '#9467bd' title 'file size'\n"},
    };
    for (const plot& p : scripts) write_atomic(pd + "/" + p.name + ".gp", p.script);

    std::vector<std::string> made;
    const std::string gnuplot = find_program("gnuplot");
    if (gnuplot.empty()) {
        note = "gnuplot is not installed, so no plots were drawn; the data and the scripts are in plots/ "
               "(install gnuplot, e.g. the Debian package gnuplot-nox, and run 'cd plots && gnuplot memory.gp' and so on).";
        return made;
    }
    if (ok.empty()) {
        note = "No scheme finished, so there is nothing to plot.";
        return made;
    }
    // gnuplot runs in plots/ (the scripts name their files relative to it): a small shell-free
    // chdir through its -e option.
    for (const plot& p : scripts) {
        const child_result c = run_child(gnuplot, {"-e", "cd '" + pd + "'", pd + "/" + p.name + ".gp"}, pd + "/" + p.name + ".out",
                                         pd + "/" + p.name + ".log", tick);
        const std::string svg = pd + "/" + p.name + ".svg";
        if (c.exit_code == 0 && std::rename((svg + ".tmp").c_str(), svg.c_str()) == 0) {
            made.push_back(p.name + ".svg");
            std::remove((pd + "/" + p.name + ".out").c_str());
        } else {
            note += "gnuplot failed on plots/" + p.name + ".gp: " + last_line(pd + "/" + p.name + ".log") + ". ";
        }
    }
    return made;
}

}  // namespace bench
