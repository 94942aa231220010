// edgeq quantize: a model to a quantized GGUF, with round-to-nearest, GPTQ, AWQ or importance-
// weighted RTN on calibration text, one scheme for every layer matrix or a llama.cpp mixture.
// This file and demo.cpp are the CLI's registry users (every built-in format's kernels).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <edgeq/algo/hessian.hpp>
#include <edgeq/engine/calibrate.hpp>
#include <edgeq/engine/gguf_registry.hpp>
#include <edgeq/engine/load_gguf.hpp>
#include <edgeq/engine/mixtures.hpp>
#include <edgeq/engine/quantize_model.hpp>
#include <edgeq/engine/tokenizer/load.hpp>
#include <edgeq/registry.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "model_files.hpp"
#include "progress_bar.hpp"

namespace {

namespace en = edgeq::engine;
namespace reg = edgeq::registry;

const char* const help =
    "usage: edgeq quantize -m MODEL -o OUT.gguf --scheme NAME [--calib FILE] [--nsamples N] [--seqlen L]\n"
    "                      [--seed S] [--imatrix FILE] [--save-imatrix FILE] [--embed-type T]\n"
    "                      [--output-type T] [-t TOKENIZER] [--threads N] [--json]\n"
    "\n"
    "Quantizes every layer matrix of MODEL (q, k, v, o, gate, up, down) and writes a GGUF file.\n"
    "With calibration text the layers are quantized block by block, each calibrated on what the\n"
    "already-quantized blocks before it compute.\n"
    "\n"
    "  --scheme NAME   a scheme that 'edgeq schemes' lists, with its algorithm prefix:\n"
    "                    int4-g128, rtn-clip-int3-g64-asym   round to nearest (no --calib needed;\n"
    "                                                        with --calib or --imatrix, errors\n"
    "                                                        are weighted by E[x^2])\n"
    "                    gptq-int4-g128, gptq-actorder-int3-g64, gptq-q4_k   GPTQ (needs --calib)\n"
    "                    awq-int4-g128                       AWQ (needs --calib)\n"
    "                  or a llama.cpp mixture: q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m\n"
    "                  q6_k, optionally gptq- (gptq-q4_k_m)\n"
    "  --calib FILE    calibration text; --nsamples windows of --seqlen tokens at random\n"
    "                  offsets (--seed); defaults 32, 512, 0\n"
    "  --imatrix FILE  an importance matrix (llama.cpp's .dat format) instead of calibrating\n"
    "  --save-imatrix FILE   write the importance matrix the calibration measured\n"
    "  --embed-type T, --output-type T   the token embedding's and the classifier's type\n"
    "                  (f32, f16, q8_0, q6_k, or any scheme); defaults: q8_0 and q6_k (q8_0 when\n"
    "                  rows are not multiples of 256), the mixture's own for a mixture\n"
    "  -t FILE         the tokenizer (default: the model's own); needed for --calib\n"
    "  --threads N     default: all hardware threads\n"
    "  --json          a JSON summary on stdout (per tensor: type, error, seconds)\n"
    "  -h, --help      this text\n";

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw edgeq::error("edgeq quantize: cannot open " + path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One line of the log.
struct tensor_log {
    std::string name, type;
    double weight_error = 0;  // ||W - Q|| / ||W||
    double output_error = -1;  // ||(W - Q) X^T|| / ||W X^T|| on calibration rows, when there are some
    double seconds = 0;
};

// ||W - Q|| / ||W||, and ||(W - Q) X^T|| / ||W X^T|| over the sample rows X (at most 64 of them;
// -1 without any), from one pass that decodes each row of Q once. The scaled layer (AWQ) sees
// x / s, so X is divided by `scales` once, up front.
std::pair<double, double> errors(edgeq::matrix_view<const float> w, const edgeq::linear& q, edgeq::matrix_view<const float> x,
                                 const std::vector<float>& scales) {
    const std::size_t n = std::min<std::size_t>(x.rows, 64);
    std::vector<float> xs(n * w.cols);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < w.cols; ++c) xs[t * w.cols + c] = scales.empty() ? x(t, c) : x(t, c) / scales[c];
    double wnum = 0, wden = 0, onum = 0, oden = 0;
    std::vector<float> row(w.cols);
    for (std::size_t r = 0; r < w.rows; ++r) {
        q.dequantize_row(r, row.data());
        for (std::size_t c = 0; c < w.cols; ++c) {
            const double d = double(w(r, c)) - row[c];
            wnum += d * d;
            wden += double(w(r, c)) * w(r, c);
        }
        for (std::size_t t = 0; t < n; ++t) {
            const float* xt = &xs[t * w.cols];
            double a = 0, b = 0;
            for (std::size_t c = 0; c < w.cols; ++c) {
                a += double(w(r, c)) * xt[c];
                b += double(row[c]) * xt[c];
            }
            onum += (a - b) * (a - b);
            oden += a * a;
        }
    }
    const double werr = wden > 0 ? std::sqrt(wnum / wden) : 0.0;
    return {werr, n == 0 ? -1.0 : oden > 0 ? std::sqrt(onum / oden) : 0.0};
}

}  // namespace

namespace commands {

int quantize(int argc, char** argv) {
    cli::args a("quantize", argc, argv);
    std::string in, out, scheme, calib, imatrix_in, imatrix_out, embed_type, output_type, tok_path;
    std::size_t nsamples = 32, seqlen = 512;
    unsigned seed = 0, threads = std::max(1u, std::thread::hardware_concurrency());
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
        } else if (o == "--scheme") {
            scheme = a.value(o);
        } else if (o == "--calib") {
            calib = a.value(o);
        } else if (o == "--nsamples") {
            nsamples = a.positive(o, 100000);
        } else if (o == "--seqlen") {
            seqlen = a.positive(o, 1 << 20);
        } else if (o == "--seed") {
            seed = unsigned(a.positive(o, 0xffffffffu));
        } else if (o == "--imatrix") {
            imatrix_in = a.value(o);
        } else if (o == "--save-imatrix") {
            imatrix_out = a.value(o);
        } else if (o == "--embed-type") {
            embed_type = a.value(o);
        } else if (o == "--output-type") {
            output_type = a.value(o);
        } else if (o == "-t" || o == "--tokenizer") {
            tok_path = a.value(o);
        } else if (o == "--threads") {
            threads = unsigned(a.positive(o, 1024));
        } else if (o == "--json") {
            json = true;
        } else {
            a.unknown(o);
        }
    }
    if (in.empty()) a.fail("-m MODEL is required");
    if (out.empty()) a.fail("-o OUT.gguf is required");
    if (scheme.empty()) a.fail("--scheme NAME is required");
    if (!imatrix_in.empty() && !calib.empty()) a.fail("give --calib or --imatrix, not both");

    // The scheme: a mixture (optionally gptq-), or a registry name. Checked before loading.
    std::string mixture, mix_prefix;
    for (const char* p : {"", "gptq-", "imatrix-"})
        if (scheme.compare(0, std::string(p).size(), p) == 0 && en::is_mixture(scheme.substr(std::string(p).size())))
            mix_prefix = p, mixture = scheme.substr(mix_prefix.size());
    if (mix_prefix == "imatrix-") mix_prefix.clear();  // rtn with importance: the default with --calib
    auto check_name = [&](const std::string& n, const char* option) {
        if (n == "f32" || n == "f16" || n == "bf16") return;
        try {
            reg::info(n);
        } catch (const edgeq::error& e) {
            a.fail_plain(std::string(e.what()).substr(7) + " (" + option + ")");
        }
    };
    if (mixture.empty()) check_name(scheme, "--scheme");
    if (!embed_type.empty()) check_name(embed_type, "--embed-type");
    if (!output_type.empty()) check_name(output_type, "--output-type");

    // The plan of each registry name, made once.
    en::plan_settings settings;
    std::map<std::string, en::calib_plan> plans;
    auto plan = [&](const std::string& name) -> const en::calib_plan& {
        auto it = plans.find(name);
        if (it == plans.end())
            it = plans.emplace(name, reg::visit(name, [&](auto t) { return en::plan_of<typename decltype(t)::type>(settings); })).first;
        return it->second;
    };
    const bool needs_calibration = mixture.empty() ? plan(scheme).needs_calibration : mix_prefix == "gptq-";
    if (needs_calibration && calib.empty())
        a.fail_plain("edgeq quantize: " + scheme + " needs calibration text: add --calib FILE");

    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    edgeq::thread_pool pool(threads);
    en::llama_model model = cli::load_model(in, edgeq::io::dense_factory("f32"), "loading");
    const en::llama_config& c = model.config;
    const int n_gqa = c.n_heads / std::max(1, c.n_kv_heads);
    if (tok_path.empty()) tok_path = cli::default_tokenizer(in);
    std::unique_ptr<edgeq::tok::tokenizer> tok;
    if (!tok_path.empty() && std::ifstream(tok_path).good()) tok = edgeq::tok::load_tokenizer(tok_path, c.vocab_size);
    if (!calib.empty() && !tok) a.fail_plain("edgeq quantize: --calib needs a tokenizer (-t FILE)");

    // The type of each layer matrix.
    auto type_of = [&](const std::string& name, std::size_t layer, std::size_t cols) {
        if (mixture.empty()) return scheme;
        return mix_prefix + en::mixture_type(mixture, name + ".weight", int(layer), c.n_layers, n_gqa, cols);
    };
    std::vector<tensor_log> log;
    edgeq::imatrix_file imatrix;
    double forward_s = 0, quantize_s = 0;

    // --imatrix: the file's importance per tensor, for RTN.
    edgeq::imatrix_file given;
    if (!imatrix_in.empty()) given = edgeq::load_imatrix(imatrix_in);
    auto given_importance = [&](const std::string& name, std::size_t cols) -> const float* {
        auto it = given.entries.find(name + ".weight");
        if (it == given.entries.end()) return nullptr;
        if (it->second.values.size() != cols)
            throw edgeq::error("edgeq quantize: the importance matrix has " + std::to_string(it->second.values.size()) +
                               " values for " + name + ", which has " + std::to_string(cols) + " columns");
        return it->second.values.data();
    };

    cli::progress_bar bar("quantizing", !json);
    if (!calib.empty()) {
        const std::vector<int> tokens = tok->encode(read_text(calib), false, false);
        const auto windows = en::calibration_windows(tokens, nsamples, seqlen, seed);
        en::calib_options opt;
        opt.progress = bar.callback();
        opt.sample_rows = 64;  // for the output-error log
        bool any_hessian = false;
        for (std::size_t l = 0; l < model.layers.size(); ++l)
            for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
                const std::string n = "blk." + std::to_string(l) + "." + m;
                const en::calib_plan& p = plan(type_of(n, l, std::string(m) == "ffn_down" ? std::size_t(c.hidden_dim) : std::size_t(c.dim)));
                any_hessian = any_hessian || p.options.hessian;
                if (p.options.scale_search && !opt.scale_search) {
                    opt.scale_search = p.options.scale_search;
                    opt.sample_rows = std::max(opt.sample_rows, p.options.sample_rows);
                }
            }
        opt.hessian = any_hessian;
        if (!imatrix_out.empty())
            opt.on_stats = [&](const std::string& name, const edgeq::input_stats& s) {
                edgeq::imatrix_entry e;
                e.values = s.importance();
                e.ncall = int(windows.size());
                imatrix.entries[name + ".weight"] = e;
            };
        const en::calib_report r = en::quantize_calibrated(
            model, windows,
            [&](const en::calib_matrix& j) {
                const auto t0 = clock::now();
                const std::string type = type_of(j.name, j.layer, j.weights.cols);
                std::unique_ptr<edgeq::linear> q = plan(type).quantize(j);
                const std::pair<double, double> err = errors(j.weights, *q, j.sample, j.scales);
                tensor_log e{j.name, q->scheme_name(), err.first, err.second, std::chrono::duration<double>(clock::now() - t0).count()};
                log.push_back(e);
                return q;
            },
            opt, pool);
        forward_s = r.forward_seconds;
        quantize_s = r.quantize_seconds;
    } else {
        // Round to nearest, matrix by matrix (importance from --imatrix when given).
        const auto t0 = clock::now();
        std::size_t done = 0, total = model.layers.size() * 7;
        for (std::size_t l = 0; l < model.layers.size(); ++l) {
            en::llama_layer& L = model.layers[l];
            std::unique_ptr<edgeq::linear>* slots[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w3, &L.w2};
            const en::layer_matrix order[] = {en::layer_matrix::q,    en::layer_matrix::k,  en::layer_matrix::v,   en::layer_matrix::o,
                                              en::layer_matrix::gate, en::layer_matrix::up, en::layer_matrix::down};
            for (int k = 0; k < 7; ++k) {
                const auto t1 = clock::now();
                const std::string name = en::matrix_name(l, order[k]);
                const edgeq::linear& f = **slots[k];
                std::vector<float> w(f.rows() * f.cols());
                for (std::size_t r = 0; r < f.rows(); ++r) f.dequantize_row(r, &w[r * f.cols()]);
                const edgeq::matrix_view<const float> wv(w.data(), f.rows(), f.cols());
                const std::string type = type_of(name, l, f.cols());
                edgeq::quant_options qo;
                qo.importance = given_importance(name, f.cols());
                std::unique_ptr<edgeq::linear> q;
                try {
                    q = reg::make_linear(type, wv, qo);
                } catch (const edgeq::error& e) {  // say which tensor (a row length a block type cannot hold)
                    throw edgeq::error(name + ": " + std::string(e.what()).substr(7));
                }
                log.push_back(tensor_log{name, q->scheme_name(), errors(wv, *q, {}, {}).first, -1,
                                         std::chrono::duration<double>(clock::now() - t1).count()});
                *slots[k] = std::move(q);
                bar.update(++done, total, name);
            }
        }
        quantize_s = std::chrono::duration<double>(clock::now() - t0).count();
    }

    // The embedding and the classifier: round to nearest.
    auto requantize = [&](std::unique_ptr<edgeq::linear>& slot, const std::string& name, std::string type) {
        const std::size_t rows = slot->rows(), cols = slot->cols();
        if (type.empty()) {
            if (!mixture.empty())
                type = en::mixture_type(mixture, name + ".weight", 0, c.n_layers, n_gqa, cols, name == "token_embd" && !model.output);
            else
                type = name == "output" || (name == "token_embd" && !model.output) ? (cols % 256 ? "q8_0" : "q6_k") : "q8_0";
            if (cols % 32) type = "f16";
        }
        std::vector<float> w(rows * cols);
        for (std::size_t r = 0; r < rows; ++r) slot->dequantize_row(r, &w[r * cols]);
        const edgeq::matrix_view<const float> wv(w.data(), rows, cols);
        std::unique_ptr<edgeq::linear> q = type == "f32" || type == "f16" || type == "bf16" ? edgeq::io::dense_factory(type)(name, wv)
                                                                                          : reg::make_linear(type, wv);
        log.push_back(tensor_log{name, q->scheme_name(), errors(wv, *q, {}, {}).first, -1, 0});
        slot = std::move(q);
    };
    requantize(model.token_embd, "token_embd", embed_type);
    if (model.output) requantize(model.output, "output", output_type);
    bar.finish();

    if (!imatrix_out.empty()) {
        imatrix.dataset = calib;
        edgeq::save_imatrix(imatrix_out, imatrix);
    }
    en::gguf_save_options so;
    so.name = scheme;
    cli::progress_bar wbar("writing", !json);
    so.progress = wbar.callback();
    en::save_gguf(model, tok.get(), out, so);  // every matrix as it is stored now
    wbar.finish();
    const double total_s = std::chrono::duration<double>(clock::now() - t_start).count();

    std::size_t weights = 0, bytes = 0;
    for (const en::llama_layer& L : model.layers)
        for (const edgeq::linear* w : {L.wq.get(), L.wk.get(), L.wv.get(), L.wo.get(), L.w1.get(), L.w2.get(), L.w3.get()})
            weights += w->rows() * w->cols(), bytes += std::size_t(double(w->rows() * w->cols()) * w->bits_per_weight() / 8);
    const double layer_bpw = weights ? 8.0 * double(bytes) / double(weights) : 0;
    std::ifstream f(out, std::ios::binary | std::ios::ate);
    const double file_bytes = double(f.tellg());

    if (json) {
        std::printf("{\"input\": %s, \"output\": %s, \"scheme\": %s, \"calibration\": %s, \"nsamples\": %zu, \"seqlen\": %zu,\n"
                    " \"seconds\": %s, \"forward_seconds\": %s, \"quantize_seconds\": %s, \"file_bytes\": %.0f,\n"
                    " \"layer_bits_per_weight\": %s, \"threads\": %u, \"tensors\": [\n",
                    cli::json_string(in).c_str(), cli::json_string(out).c_str(), cli::json_string(scheme).c_str(),
                    calib.empty() ? "null" : cli::json_string(calib).c_str(), calib.empty() ? 0 : nsamples, calib.empty() ? 0 : seqlen,
                    cli::json_number(total_s).c_str(), cli::json_number(forward_s).c_str(), cli::json_number(quantize_s).c_str(),
                    file_bytes, cli::json_number(layer_bpw).c_str(), pool.size());
        for (std::size_t i = 0; i < log.size(); ++i)
            std::printf("  {\"name\": %s, \"type\": %s, \"weight_error\": %s, \"output_error\": %s, \"seconds\": %s}%s\n",
                        cli::json_string(log[i].name).c_str(), cli::json_string(log[i].type).c_str(),
                        cli::json_number(log[i].weight_error).c_str(),
                        log[i].output_error < 0 ? "null" : cli::json_number(log[i].output_error).c_str(),
                        cli::json_number(log[i].seconds).c_str(), i + 1 < log.size() ? "," : "");
        std::printf("]}\n");
    } else {
        cli::table t({"tensor", "type", "weight error", "output error", "time"}, {false, false, true, true, true});
        for (const tensor_log& e : log)
            t.add({e.name, e.type, cli::percent(e.weight_error), e.output_error < 0 ? "-" : cli::percent(e.output_error),
                   cli::seconds(e.seconds)});
        t.print(stderr);
        std::printf("%s -> %s: %s, %s (layers %.3f bits per weight) in %s", in.c_str(), out.c_str(), scheme.c_str(),
                    cli::bytes(file_bytes).c_str(), layer_bpw, cli::seconds(total_s).c_str());
        if (!calib.empty()) std::printf(" (forward passes %s, quantization %s)", cli::seconds(forward_s).c_str(), cli::seconds(quantize_s).c_str());
        std::printf("\n");
    }
    return 0;
}

}  // namespace commands
