// edgeq quantize: a model to a quantized GGUF, with round-to-nearest, GPTQ, AWQ or importance-
// weighted RTN on calibration text, one scheme for every layer matrix, a llama.cpp mixture, or a
// type per matrix chosen under a size budget (--target-bpw, --target-size; engine/budget.hpp).
// This file and demo.cpp are the CLI's registry users (every built-in format's kernels).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
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
#include <edgeq/engine/budget.hpp>
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
    "       edgeq quantize -m MODEL -o OUT.gguf --target-bpw B | --target-size BYTES\n"
    "                      [--candidates LIST] [--algorithm A] [the options above but --scheme]\n"
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
    "                    spqr-3bit-g16 (also 2bit, 4bit)     SpQR: GPTQ, small groups, outliers (needs --calib)\n"
    "                    spqr-4bit-g32                       SpQR, 4 bits in groups of 32 (under 4.7 bits)\n"
    "                  or a llama.cpp mixture: q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m\n"
    "                  q6_k, optionally gptq- (gptq-q4_k_m)\n"
    "  --target-bpw B  instead of --scheme: a type per layer matrix, from --candidates, so that the\n"
    "                  layer matrices average at most B bits per weight with the least total error\n"
    "  --target-size BYTES   the same for the whole output file (embedding, classifier, norms and\n"
    "                  metadata included): 500M, 1.5G, 4000000 (K M G = 1024^n, KB MB GB = 1000^n)\n"
    "                  The error of each candidate on each matrix is measured first: with --calib the\n"
    "                  squared output error on calibration rows (the float model's inputs), with\n"
    "                  --imatrix the weight error weighted by E[x^2], else the plain weight error.\n"
    "  --candidates LIST   comma-separated types to choose from (default: int2-g64-asym,\n"
    "                  int3-g128-asym,int4-g128,int5-g128,int6-g128,int8-g128; q2_k,q3_k,q4_k,q5_k,\n"
    "                  q6_k,q8_0 for a file llama.cpp runs; f16 allowed); a matrix that no candidate\n"
    "                  can hold (its row length) is stored f16\n"
    "  --algorithm A   prefix for the candidates that name none: rtn, rtn-clip, gptq, gptq-actorder, awq\n"
    "  --spqr-threshold T   SpQR: a weight is an outlier when its error exceeds T x the layer's mean\n"
    "                  (the reference's outlier_relative_threshold; default 0.2)\n"
    "  --spqr-outliers F    SpQR: instead, the threshold that keeps about the fraction F of the weights\n"
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

// sum_c a[c] b[c] in eight float lanes (vectorized; a log's precision).
inline float dot8(const float* a, const float* b, std::size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[c + k] * b[c + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < n; ++c) s += a[c] * b[c];
    return s;
}

// ||W - Q|| / ||W||, and ||(W - Q) X^T|| / ||W X^T|| over the sample rows X (at most 64 of them;
// -1 without any), from one pass that decodes each row of Q once, threaded over rows (per-row
// sums added in row order, so the result does not depend on the thread count). The scaled layer
// (AWQ) sees x / s, so X is divided by `scales` once, up front.
std::pair<double, double> errors(edgeq::matrix_view<const float> w, const edgeq::linear& q, edgeq::matrix_view<const float> x,
                                 const std::vector<float>& scales, edgeq::thread_pool& pool = edgeq::default_pool()) {
    const std::size_t n = std::min<std::size_t>(x.rows, 64), cols = w.cols;
    std::vector<float> xs(n * cols);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < cols; ++c) xs[t * cols + c] = scales.empty() ? x(t, c) : x(t, c) / scales[c];
    std::vector<double> sums(w.rows * 4, 0.0);  // per row: ||w - q||^2, ||w||^2, output error^2, output^2
    pool.parallel_for(w.rows, 16, [&](std::size_t r0, std::size_t r1) {
        std::vector<float> row(cols), d(cols);
        for (std::size_t r = r0; r < r1; ++r) {
            q.dequantize_row(r, row.data());
            const float* wr = w.row(r);
            double* out = &sums[r * 4];
            for (std::size_t c = 0; c < cols; ++c) {
                d[c] = wr[c] - row[c];
                out[0] += double(d[c]) * d[c];
                out[1] += double(wr[c]) * wr[c];
            }
            for (std::size_t t = 0; t < n; ++t) {
                const double e = dot8(d.data(), &xs[t * cols], cols), a = dot8(wr, &xs[t * cols], cols);
                out[2] += e * e;
                out[3] += a * a;
            }
        }
    });
    double wnum = 0, wden = 0, onum = 0, oden = 0;
    for (std::size_t r = 0; r < w.rows; ++r) wnum += sums[r * 4], wden += sums[r * 4 + 1], onum += sums[r * 4 + 2], oden += sums[r * 4 + 3];
    const double werr = wden > 0 ? std::sqrt(wnum / wden) : 0.0;
    return {werr, n == 0 ? -1.0 : oden > 0 ? std::sqrt(onum / oden) : 0.0};
}

// ---- the budget (--target-bpw, --target-size) ---------------------------------------------------

// The default candidates: edgeq's grouped formats, one per width 2..8 (asymmetric below 4 bits,
// where a zero point pays for itself; group 64 at 2 bits). They hold any row length that is a
// multiple of 128 (64 for int2), quantize with every algorithm (GPTQ and AWQ included) and run on
// edgeq's CPU and CUDA kernels. llama.cpp's k-quants (q2_k ... q6_k, q8_0) are the choice for a
// file llama.cpp runs, but they need rows of 256 and a small model's rarely are.
const char* const default_candidates = "int2-g64-asym,int3-g128-asym,int4-g128,int5-g128,int6-g128,int8-g128";

// "500M" -> 524288000. K M G T are powers of 1024 (also KiB ...), KB MB GB TB powers of 1000, as
// GNU coreutils read sizes. 0 for a malformed or non-positive size.
std::uint64_t parse_size(const std::string& s) {
    std::size_t used = 0;
    double v = -1;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception&) {
        return 0;
    }
    std::string unit = s.substr(used);
    for (char& ch : unit)
        if (ch >= 'a' && ch <= 'z') ch = char(ch - 'a' + 'A');
    const std::pair<const char*, double> units[] = {{"", 1},          {"B", 1},          {"K", 1024.0},     {"KIB", 1024.0},
                                                    {"KB", 1e3},      {"M", 1048576.0},  {"MIB", 1048576.0}, {"MB", 1e6},
                                                    {"G", 1073741824.0}, {"GIB", 1073741824.0}, {"GB", 1e9},
                                                    {"T", 1099511627776.0}, {"TIB", 1099511627776.0}, {"TB", 1e12}};
    for (const auto& u : units)
        if (unit == u.first) {
            const double bytes = v * u.second;
            return bytes >= 1 && bytes < 1e18 ? std::uint64_t(bytes) : 0;
        }
    return 0;
}

// Whether `type` holds rows of `cols` weights (the 32-weight packing chunk and the group, or the
// llama.cpp block).
bool holds(const std::string& type, std::size_t cols) {
    if (edgeq::is_dense_type(type)) return true;
    const reg::scheme_info i = reg::info(type);
    return cols % 32 == 0 && (i.group == 0 || cols % std::size_t(i.group) == 0);
}

// What a matrix adds to the file: its data padded to GGUF's alignment (32), and for an edgeq
// grouped blob the two keys save_gguf adds, edgeq.tensor.NAME.scheme (a string) and .bytes (u64).
std::uint64_t file_bytes_of(const edgeq::linear& q, const std::string& tensor) {
    std::uint64_t b = (q.storage_bytes() + 31) / 32 * 32;
    en::gguf_target t;
    en::gguf_encoder e;
    if (!en::gguf_builtin_target(q.scheme_name(), t, e)) {
        const std::uint64_t key = 8 + 13 + tensor.size();  // length, "edgeq.tensor.", the name
        b += (key + 7 + 4 + 8 + q.scheme_name().size()) + (key + 6 + 4 + 8);
    }
    return b;
}

// An upper bound on the header save_gguf writes: the tokenizer's arrays counted exactly, 80 bytes
// per tensor for the directory (name, shape, type, offset), 4 KiB for the few dozen other keys and
// the padding.
std::uint64_t header_bound(const en::llama_model& m, const edgeq::tok::tokenizer* tk) {
    std::uint64_t b = 4096 + 80 * (4 + 12 * m.layers.size());
    if (tk) {
        const edgeq::tok::gguf_tokenizer_data d = edgeq::tok::to_gguf_metadata(*tk);
        for (const std::string& t : d.tokens) b += 8 + t.size();
        for (const std::string& t : d.merges) b += 8 + t.size();
        b += 8 * d.tokens.size() + 5 * 64;  // scores and token types; the arrays' keys and headers
    }
    return b;
}

// The F32 vectors save_gguf writes (norms, q/k/v biases, llama3's rope factors), each padded.
std::uint64_t vector_bytes(const en::llama_model& m) {
    auto padded = [](std::size_t n) { return std::uint64_t((4 * n + 31) / 32 * 32); };
    std::uint64_t b = padded(m.output_norm.size());
    for (const en::llama_layer& L : m.layers)
        b += padded(L.attn_norm.size()) + padded(L.ffn_norm.size()) + padded(L.bq.size()) + padded(L.bk.size()) +
             padded(L.bv.size());
    const std::vector<float> rope =
        m.config.rope_freq_factors.empty() ? edgeq::io::llama3_rope_factors(m.config) : m.config.rope_freq_factors;
    return b + padded(rope.size());
}

// The sensitivity with calibration: sum ||(W - Q) x||^2 / sum ||W x||^2 over the sample rows x,
// the relative squared error the matrix adds to its outputs (yf = x W^T, computed once per
// matrix). Relative, because the absolute error sent matrices with small outputs to 2 bits
// (mix-llama-27M at 3.5 bits: perplexity 46.05 absolute, 43.05 relative, 43.62 uniform int3).
double output_sq_error(const std::vector<float>& yf, edgeq::linear& q, edgeq::matrix_view<const float> x,
                       edgeq::thread_pool& pool) {
    std::vector<float> yq(x.rows * q.rows());
    q.set_activations(edgeq::activations::f32);  // exact products: the error is the weights'
    q.gemm(x, edgeq::matrix_view<float>(yq.data(), x.rows, q.rows()), pool);
    double e = 0, n = 0;
    for (std::size_t i = 0; i < yq.size(); ++i) {
        const double d = double(yf[i]) - double(yq[i]);
        e += d * d;
        n += double(yf[i]) * yf[i];
    }
    return n > 0 ? e / n : 0.0;  // relative: a matrix with small outputs is not cheap to ruin
}

// Without: sum of imp[c] (W - Q)^2 (imp null: 1), the same expectation when the inputs are
// uncorrelated with E[x_c^2] = imp[c].
double weight_sq_error(edgeq::matrix_view<const float> w, const edgeq::linear& q, const float* imp) {
    std::vector<float> row(w.cols);
    double e = 0;
    for (std::size_t r = 0; r < w.rows; ++r) {
        q.dequantize_row(r, row.data());
        for (std::size_t c = 0; c < w.cols; ++c) {
            const double d = double(w(r, c)) - row[c];
            e += (imp ? double(imp[c]) : 1.0) * d * d;
        }
    }
    return e;
}

}  // namespace

namespace commands {

int quantize(int argc, char** argv) {
    cli::args a("quantize", argc, argv);
    std::string in, out, scheme, calib, imatrix_in, imatrix_out, embed_type, output_type, tok_path;
    std::string candidates_arg, algorithm, target_arg;
    double target_bpw = 0;
    std::uint64_t target_size = 0;
    std::size_t nsamples = 32, seqlen = 512;
    double spqr_threshold = en::plan_settings().spqr_outlier_threshold, spqr_fraction = 0.0;
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
        } else if (o == "--target-bpw") {
            if (target_size) a.fail("give --target-bpw or --target-size, not both");
            target_arg = a.value(o);
            std::size_t used = 0;
            try {
                target_bpw = std::stod(target_arg, &used);
            } catch (const std::exception&) {
            }
            if (used != target_arg.size() || !(target_bpw > 0 && target_bpw <= 32))
                a.fail("--target-bpw takes bits per weight, a number above 0 and at most 32, not '" + target_arg + "'");
        } else if (o == "--target-size") {
            if (target_bpw > 0) a.fail("give --target-bpw or --target-size, not both");
            target_arg = a.value(o);
            target_size = parse_size(target_arg);
            if (!target_size) a.fail("--target-size takes a size in bytes, like 4000000, 500M or 1.5G, not '" + target_arg + "'");
        } else if (o == "--candidates") {
            candidates_arg = a.value(o);
        } else if (o == "--algorithm") {
            algorithm = a.value(o);
        } else if (o == "--spqr-threshold" || o == "--spqr-outliers") {
            const std::string v = a.value(o);
            std::size_t used = 0;
            double x = 0;
            try {
                x = std::stod(v, &used);
            } catch (const std::exception&) {
            }
            const bool fraction = o == "--spqr-outliers";
            if (used != v.size() || !(x > 0) || !std::isfinite(x) || (fraction && x > 0.5))
                a.fail(o + (fraction ? " takes the fraction of weights kept as outliers, above 0 and at most 0.5, not '"
                                     : " takes a positive number (tau), not '") +
                       v + "'");
            (fraction ? spqr_fraction : spqr_threshold) = x;
        } else {
            a.unknown(o);
        }
    }
    if (in.empty()) a.fail("-m MODEL is required");
    if (out.empty()) a.fail("-o OUT.gguf is required");
    const bool budget = target_bpw > 0 || target_size > 0;
    if (budget && !scheme.empty())
        a.fail("--target-bpw and --target-size choose a type per matrix: give them or --scheme, not both");
    if (!budget && scheme.empty()) a.fail("--scheme NAME (or --target-bpw B, or --target-size BYTES) is required");
    if (!budget && (!candidates_arg.empty() || !algorithm.empty()))
        a.fail("--candidates and --algorithm go with --target-bpw or --target-size");
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
    if (mixture.empty() && !budget) check_name(scheme, "--scheme");
    if (!embed_type.empty()) check_name(embed_type, "--embed-type");
    if (!output_type.empty()) check_name(output_type, "--output-type");

    // The candidates of a budget, each with its algorithm prefix (--algorithm for those without).
    std::vector<std::string> candidates;
    if (budget) {
        const std::vector<std::string>& algos = reg::algorithm_names();
        if (!algorithm.empty() && std::find(algos.begin(), algos.end(), algorithm) == algos.end()) {
            std::string list;
            for (const std::string& n : algos) list += (list.empty() ? "" : ", ") + n;
            a.fail("unknown --algorithm '" + algorithm + "'; the algorithms are " + list);
        }
        const std::string list = candidates_arg.empty() ? std::string(default_candidates) : candidates_arg;
        for (std::size_t p = 0; p <= list.size();) {
            const std::size_t comma = std::min(list.find(',', p), list.size());
            std::string n = list.substr(p, comma - p);
            p = comma + 1;
            if (n.empty()) a.fail("--candidates has an empty name: '" + list + "'");
            bool prefixed = false;
            for (const std::string& al : algos) prefixed = prefixed || n.compare(0, al.size() + 1, al + "-") == 0;
            if (!prefixed && !algorithm.empty() && !edgeq::is_dense_type(n)) n = algorithm + "-" + n;
            check_name(n, "--candidates");
            if (std::find(candidates.begin(), candidates.end(), n) == candidates.end()) candidates.push_back(n);
        }
    }

    // The plan of each registry name, made once; a dense type (a budget's f16) is a plan too.
    en::plan_settings settings;
    settings.spqr_outlier_threshold = spqr_threshold;
    settings.spqr_outlier_fraction = spqr_fraction;
    std::map<std::string, en::calib_plan> plans;
    auto plan = [&](const std::string& name) -> const en::calib_plan& {
        auto it = plans.find(name);
        if (it == plans.end()) {
            en::calib_plan p;
            if (edgeq::is_dense_type(name)) {
                p.options.hessian = false;
                p.quantize = [name](const en::calib_matrix& j) { return edgeq::make_dense_linear(name, j.weights); };
            } else {
                p = reg::visit(name, [&](auto t) { return en::plan_of<typename decltype(t)::type>(settings); });
            }
            it = plans.emplace(name, std::move(p)).first;
        }
        return it->second;
    };
    std::string needy = mixture.empty() && !budget && plan(scheme).needs_calibration ? scheme
                        : !mixture.empty() && mix_prefix == "gptq-"                ? scheme
                                                                                   : "";
    for (const std::string& n : candidates)
        if (needy.empty() && plan(n).needs_calibration) needy = n;
    if (!needy.empty() && calib.empty()) a.fail_plain("edgeq quantize: " + needy + " needs calibration text: add --calib FILE");

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

    // The type of each layer matrix (a budget's choice, filled in below).
    std::map<std::string, std::string> chosen;
    auto type_of = [&](const std::string& name, std::size_t layer, std::size_t cols) {
        if (budget) return chosen.at(name);
        if (mixture.empty()) return scheme;
        return mix_prefix + en::mixture_type(mixture, name + ".weight", int(layer), c.n_layers, n_gqa, cols);
    };
    std::vector<tensor_log> log;
    edgeq::imatrix_file imatrix;
    double forward_s = 0, quantize_s = 0, stats_s = 0, second_s = 0;  // stats_s, second_s: parts of forward_s

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

    // The embedding's and the classifier's types (round to nearest; not part of a budget's choice).
    auto head_type = [&](const std::string& name, std::size_t cols, std::string type) {
        if (!type.empty()) return type;
        if (!mixture.empty())
            type = en::mixture_type(mixture, name + ".weight", 0, c.n_layers, n_gqa, cols, name == "token_embd" && !model.output);
        else
            type = name == "output" || (name == "token_embd" && !model.output) ? (cols % 256 ? "q8_0" : "q6_k") : "q8_0";
        if (cols % 32) type = "f16";
        return type;
    };
    auto head_linear = [&](const edgeq::linear& slot, const std::string& name, const std::string& type) {
        const std::size_t rows = slot.rows(), cols = slot.cols();
        std::vector<float> w(rows * cols);
        for (std::size_t r = 0; r < rows; ++r) slot.dequantize_row(r, &w[r * cols]);
        const edgeq::matrix_view<const float> wv(w.data(), rows, cols);
        std::unique_ptr<edgeq::linear> q =
            edgeq::is_dense_type(type) ? edgeq::make_dense_linear(type, wv) : reg::make_linear(type, wv);
        tensor_log e{name, q->scheme_name(), errors(wv, *q, {}, {}, pool).first, -1, 0};
        return std::make_pair(std::move(q), e);
    };

    std::vector<std::vector<int>> windows;
    if (!calib.empty()) windows = en::calibration_windows(tok->encode(read_text(calib), false, false), nsamples, seqlen, seed);

    // --target-bpw, --target-size: measure what each candidate costs and what error it adds on
    // every layer matrix, choose a type per matrix (engine/budget.hpp), then quantize below with
    // those types, as for a mixture. "Least loss" is taken as the least sum over matrices of the
    // squared error each adds to its outputs per calibration token, E ||(W - Q) x||^2, measured
    // on the float model's inputs. Absolute, not relative: to second order the loss grows with
    // the sum of these output perturbations (when the outputs are about equally sensitive), and
    // a matrix whose outputs are small should not weigh as much as one whose outputs dominate;
    // it is extensive (a larger matrix adds more), as its cost is. Without calibration the same
    // expectation is taken with uncorrelated inputs of E[x^2] from --imatrix, or of 1.
    std::vector<en::budget_item> items;
    en::budget_solution solution;
    std::string sensitivity;
    std::uint64_t fixed_bytes = 0, budget_units = 0;
    std::size_t layer_weights = 0;
    for (const en::llama_layer& L : model.layers)
        for (const edgeq::linear* w : {L.wq.get(), L.wk.get(), L.wv.get(), L.wo.get(), L.w1.get(), L.w2.get(), L.w3.get()})
            layer_weights += w->rows() * w->cols();
    double measure_s = 0;
    if (budget) {
        const auto t0 = clock::now();
        // What a candidate takes of the budget: bits at its nominal bits per weight (--target-bpw,
        // as the layers' bits per weight are reported), or bytes of the file (--target-size).
        auto cost_of = [&](const edgeq::linear& q, const std::string& name) -> std::uint64_t {
            if (target_size) return file_bytes_of(q, name + ".weight");
            return std::uint64_t(std::ceil(q.bits_per_weight() * double(q.rows() * q.cols()) - 1e-6));
        };
        // The types a matrix can take: the candidates that hold its rows, else f16 alone.
        auto types_for = [&](std::size_t cols) {
            std::vector<std::string> t;
            for (const std::string& n : candidates)
                if (holds(n, cols)) t.push_back(n);
            if (t.empty()) t.push_back("f16");
            return t;
        };
        if (!calib.empty()) {
            en::calib_options opt;
            opt.hessian = false;
            opt.sample_rows = 256;
            for (const std::string& n : candidates) {
                const en::calib_plan& p = plan(n);
                opt.hessian = opt.hessian || p.options.hessian;
                if (p.options.scale_search && !opt.scale_search) {
                    opt.scale_search = p.options.scale_search;
                    opt.sample_rows = std::max(opt.sample_rows, p.options.sample_rows);
                }
            }
            std::size_t rows_seen = 0;
            cli::progress_bar mbar("measuring", !json);
            opt.progress = mbar.callback();
            en::quantize_calibrated(
                model, windows,
                [&](const en::calib_matrix& j) {
                    const std::size_t rows = j.weights.rows, cols = j.weights.cols, n = j.sample.rows;
                    rows_seen = n;
                    // The sample as the matrix sees it (AWQ divides by its scales), and the float outputs.
                    std::vector<float> xs(n * cols);
                    for (std::size_t t = 0; t < n; ++t)
                        for (std::size_t k = 0; k < cols; ++k)
                            xs[t * cols + k] = j.scales.empty() ? j.sample(t, k) : j.sample(t, k) / j.scales[k];
                    const edgeq::matrix_view<const float> x(xs.data(), n, cols);
                    std::unique_ptr<edgeq::linear> ref = edgeq::make_dense_linear("f32", j.weights);
                    std::vector<float> yf(n * rows);
                    if (n) ref->gemm(x, edgeq::matrix_view<float>(yf.data(), n, rows), pool);
                    en::budget_item it{j.name, {}};
                    for (const std::string& type : types_for(cols)) {
                        std::unique_ptr<edgeq::linear> q = plan(type).quantize(j);
                        const double e = n ? output_sq_error(yf, *q, x, pool) : weight_sq_error(j.weights, *q, nullptr);
                        it.candidates.push_back(en::budget_candidate{type, cost_of(*q, j.name), e});
                    }
                    items.push_back(it);
                    return ref;  // float: every matrix is measured on what the float model computes
                },
                opt, pool);
            mbar.finish();
            sensitivity = "squared output error on " + std::to_string(rows_seen) + " calibration rows";
            // AWQ folded its scales into the norms: quantize from the file's weights again.
            if (opt.scale_search) model = cli::load_model(in, edgeq::io::dense_factory("f32"), "loading");
        } else {
            sensitivity = given.entries.empty() ? "weight error (no --calib or --imatrix: every input counts the same)"
                                                : "weight error weighted by the importance matrix";
            cli::progress_bar mbar("measuring", !json);
            std::size_t done = 0;
            for (std::size_t l = 0; l < model.layers.size(); ++l) {
                const en::llama_layer& L = model.layers[l];
                const edgeq::linear* mats[] = {L.wq.get(), L.wk.get(), L.wv.get(), L.wo.get(), L.w1.get(), L.w3.get(), L.w2.get()};
                const en::layer_matrix order[] = {en::layer_matrix::q,    en::layer_matrix::k,  en::layer_matrix::v,   en::layer_matrix::o,
                                                  en::layer_matrix::gate, en::layer_matrix::up, en::layer_matrix::down};
                for (int k = 0; k < 7; ++k) {
                    const std::string name = en::matrix_name(l, order[k]);
                    const edgeq::linear& f = *mats[k];
                    std::vector<float> w(f.rows() * f.cols());
                    for (std::size_t r = 0; r < f.rows(); ++r) f.dequantize_row(r, &w[r * f.cols()]);
                    const edgeq::matrix_view<const float> wv(w.data(), f.rows(), f.cols());
                    edgeq::quant_options qo;
                    qo.importance = given_importance(name, f.cols());
                    en::budget_item it{name, {}};
                    for (const std::string& type : types_for(f.cols())) {
                        std::unique_ptr<edgeq::linear> q =
                            edgeq::is_dense_type(type) ? edgeq::make_dense_linear(type, wv) : reg::make_linear(type, wv, qo);
                        it.candidates.push_back(en::budget_candidate{type, cost_of(*q, name), weight_sq_error(wv, *q, qo.importance)});
                    }
                    items.push_back(it);
                    mbar.update(++done, model.layers.size() * 7, name);
                }
            }
            mbar.finish();
        }

        // The budget of the layer matrices, and one clear error when no choice fits it.
        const std::uint64_t least = en::budget_minimum(items);
        if (target_size) {
            fixed_bytes = header_bound(model, tok.get()) + vector_bytes(model);
            fixed_bytes += file_bytes_of(*head_linear(*model.token_embd, "token_embd", head_type("token_embd", model.token_embd->cols(), embed_type)).first,
                                         "token_embd.weight");
            if (model.output)
                fixed_bytes += file_bytes_of(*head_linear(*model.output, "output", head_type("output", model.output->cols(), output_type)).first,
                                             "output.weight");
            if (target_size < fixed_bytes + least)
                throw edgeq::error("quantize: --target-size " + target_arg + " (" + std::to_string(target_size) +
                                   " bytes) is below what these candidates allow: at least " + cli::bytes(double(fixed_bytes + least)) +
                                   " (" + std::to_string(fixed_bytes + least) + " bytes: the layer matrices at their cheapest types " +
                                   cli::bytes(double(least)) + ", the embedding, classifier, norms and metadata " +
                                   cli::bytes(double(fixed_bytes)) + ")");
            budget_units = target_size - fixed_bytes;
        } else {
            budget_units = std::uint64_t(std::floor(target_bpw * double(layer_weights)));
            if (budget_units < least)
                throw edgeq::error("quantize: --target-bpw " + target_arg + " is below what these candidates allow: at least " +
                                   cli::fmt("%.4g", double(least) / double(layer_weights)) +
                                   " bits per weight over the layer matrices (every matrix at its cheapest type)");
        }
        solution = en::solve_budget(items, budget_units);
        for (std::size_t i = 0; i < items.size(); ++i) chosen[items[i].name] = items[i].candidates[solution.choice[i]].type;
        measure_s = std::chrono::duration<double>(clock::now() - t0).count();
    }

    cli::progress_bar bar("quantizing", !json);
    if (!calib.empty()) {
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
                const std::pair<double, double> err = errors(j.weights, *q, j.sample, j.scales, pool);
                tensor_log e{j.name, q->scheme_name(), err.first, err.second, std::chrono::duration<double>(clock::now() - t0).count()};
                log.push_back(e);
                return q;
            },
            opt, pool);
        forward_s = r.forward_seconds;
        quantize_s = r.quantize_seconds;
        stats_s = r.statistics_seconds;
        second_s = r.quantized_forward_seconds;
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
                    q = edgeq::is_dense_type(type) ? edgeq::make_dense_linear(type, wv) : reg::make_linear(type, wv, qo);
                } catch (const edgeq::error& e) {  // say which tensor (a row length a block type cannot hold)
                    throw edgeq::error(name + ": " + std::string(e.what()).substr(7));
                }
                log.push_back(tensor_log{name, q->scheme_name(), errors(wv, *q, {}, {}, pool).first, -1,
                                         std::chrono::duration<double>(clock::now() - t1).count()});
                *slots[k] = std::move(q);
                bar.update(++done, total, name);
            }
        }
        quantize_s = std::chrono::duration<double>(clock::now() - t0).count();
    }

    // The embedding and the classifier: round to nearest.
    auto requantize = [&](std::unique_ptr<edgeq::linear>& slot, const std::string& name, const std::string& type) {
        auto q = head_linear(*slot, name, head_type(name, slot->cols(), type));
        log.push_back(q.second);
        slot = std::move(q.first);
    };
    requantize(model.token_embd, "token_embd", embed_type);
    if (model.output) requantize(model.output, "output", output_type);
    bar.finish();

    if (!imatrix_out.empty()) {
        imatrix.dataset = calib;
        edgeq::save_imatrix(imatrix_out, imatrix);
    }
    const std::string label = budget ? std::string("mixed") : scheme;
    en::gguf_save_options so;
    so.name = label;
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
    // Bits per weight of the whole file: every byte over every parameter (matrices, embedding,
    // classifier, norms).
    std::size_t all_weights = weights + model.token_embd->rows() * model.token_embd->cols() + model.output_norm.size() +
                              (model.output ? model.output->rows() * model.output->cols() : 0);
    for (const en::llama_layer& L : model.layers) all_weights += L.attn_norm.size() + L.ffn_norm.size() + L.bq.size() + L.bk.size() + L.bv.size();
    const double file_bpw = all_weights ? 8.0 * file_bytes / double(all_weights) : 0;
    // The budget's choice: how many matrices took each type.
    std::vector<std::pair<std::string, int>> counts;
    for (const en::budget_item& it : items) {
        const std::string& t = it.candidates[solution.choice[&it - &items[0]]].type;
        auto k = std::find_if(counts.begin(), counts.end(), [&t](const std::pair<std::string, int>& p) { return p.first == t; });
        if (k == counts.end()) counts.emplace_back(t, 1);
        else ++k->second;
    }
    std::string target_text;
    if (target_bpw > 0) target_text = "--target-bpw " + target_arg;
    if (target_size) target_text = "--target-size " + target_arg + " (" + std::to_string(target_size) + " bytes)";
    if (budget && target_size && file_bytes > double(target_size))  // the header bound is an upper bound: never expected
        std::fprintf(stderr, "edgeq quantize: warning: the file is %.0f bytes, over the target by %.0f\n", file_bytes,
                     file_bytes - double(target_size));

    if (json) {
        std::printf("{\"input\": %s, \"output\": %s, \"scheme\": %s, \"calibration\": %s, \"nsamples\": %zu, \"seqlen\": %zu,\n"
                    " \"seconds\": %s, \"forward_seconds\": %s, \"statistics_seconds\": %s, \"quantized_forward_seconds\": %s,\n"
                    " \"quantize_seconds\": %s, \"file_bytes\": %.0f,\n"
                    " \"layer_bits_per_weight\": %s, \"file_bits_per_weight\": %s, \"threads\": %u,\n",
                    cli::json_string(in).c_str(), cli::json_string(out).c_str(), cli::json_string(label).c_str(),
                    calib.empty() ? "null" : cli::json_string(calib).c_str(), calib.empty() ? 0 : nsamples, calib.empty() ? 0 : seqlen,
                    cli::json_number(total_s).c_str(), cli::json_number(forward_s).c_str(), cli::json_number(stats_s).c_str(),
                    cli::json_number(second_s).c_str(), cli::json_number(quantize_s).c_str(), file_bytes, cli::json_number(layer_bpw).c_str(), cli::json_number(file_bpw).c_str(), pool.size());
        if (budget) {
            std::string names, types;
            for (const std::string& n : candidates) names += (names.empty() ? "" : ", ") + cli::json_string(n);
            for (const auto& k : counts) types += (types.empty() ? "" : ", ") + cli::json_string(k.first) + ": " + std::to_string(k.second);
            std::printf(" \"budget\": {\"target_bits_per_weight\": %s, \"target_bytes\": %s, \"budget\": %s, \"unit\": %s,\n"
                        "   \"fixed_bytes\": %s, \"sensitivity\": %s, \"candidates\": [%s], \"chosen\": {%s},\n"
                        "   \"cost\": %s, \"error\": %s, \"seconds\": %s},\n",
                        target_bpw > 0 ? cli::json_number(target_bpw).c_str() : "null",
                        target_size ? std::to_string(target_size).c_str() : "null", std::to_string(budget_units).c_str(),
                        target_size ? "\"bytes\"" : "\"bits\"", target_size ? std::to_string(fixed_bytes).c_str() : "null",
                        cli::json_string(sensitivity).c_str(), names.c_str(), types.c_str(), std::to_string(solution.cost).c_str(),
                        cli::json_number(solution.error).c_str(), cli::json_number(measure_s).c_str());
        } else {
            std::printf(" \"budget\": null,\n");
        }
        std::printf(" \"tensors\": [\n");
        for (std::size_t i = 0; i < log.size(); ++i) {
            std::string cands;  // a budget's measurements of this matrix
            for (const en::budget_item& it : items)
                if (it.name == log[i].name) {
                    for (std::size_t k = 0; k < it.candidates.size(); ++k)
                        cands += std::string(k ? ", " : "") + "{\"type\": " + cli::json_string(it.candidates[k].type) +
                                 ", \"cost\": " + std::to_string(it.candidates[k].cost) +
                                 ", \"error\": " + cli::json_number(it.candidates[k].error) + "}";
                    cands = ", \"candidates\": [" + cands + "]";
                }
            std::printf("  {\"name\": %s, \"type\": %s, \"weight_error\": %s, \"output_error\": %s, \"seconds\": %s%s}%s\n",
                        cli::json_string(log[i].name).c_str(), cli::json_string(log[i].type).c_str(),
                        cli::json_number(log[i].weight_error).c_str(),
                        log[i].output_error < 0 ? "null" : cli::json_number(log[i].output_error).c_str(),
                        cli::json_number(log[i].seconds).c_str(), cands.c_str(), i + 1 < log.size() ? "," : "");
        }
        std::printf("]}\n");
    } else {
        cli::table t({"tensor", "type", "weight error", "output error", "time"}, {false, false, true, true, true});
        for (const tensor_log& e : log)
            t.add({e.name, e.type, cli::percent(e.weight_error), e.output_error < 0 ? "-" : cli::percent(e.output_error),
                   cli::seconds(e.seconds)});
        t.print(stderr);
        if (budget) {
            std::string types;
            for (const auto& k : counts) types += (types.empty() ? "" : ", ") + k.first + " x" + std::to_string(k.second);
            std::fprintf(stderr, "budget: chose %s by %s (measured in %s)\n", types.c_str(), sensitivity.c_str(),
                         cli::seconds(measure_s).c_str());
            std::printf("%s -> %s: mixed for %s: %s, layers %.3f bits per weight%s, all tensors %.3f bits per weight, in %s",
                        in.c_str(), out.c_str(), target_text.c_str(), cli::bytes(file_bytes).c_str(), layer_bpw,
                        target_bpw > 0 ? (" (target " + target_arg + ")").c_str() : "", file_bpw, cli::seconds(total_s).c_str());
        } else {
            std::printf("%s -> %s: %s, %s (layers %.3f bits per weight) in %s", in.c_str(), out.c_str(), scheme.c_str(),
                        cli::bytes(file_bytes).c_str(), layer_bpw, cli::seconds(total_s).c_str());
        }
        if (!calib.empty())
            std::printf(" (forward passes %s, of which input statistics %s and the quantized pass %s; quantization %s)",
                        cli::seconds(forward_s).c_str(), cli::seconds(stats_s).c_str(), cli::seconds(second_s).c_str(),
                        cli::seconds(quantize_s).c_str());
        std::printf("\n");
    }
    return 0;
}

}  // namespace commands
