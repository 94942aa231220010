// edgeq demo: one synthetic weight matrix, quantized with several schemes side by side.
// This is the one translation unit of the CLI that dispatches on scheme names
// (registry::make_linear), so it is the one that compiles the kernels of every built-in format.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <edgeq/linear.hpp>
#include <edgeq/registry.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

namespace reg = edgeq::registry;
using clock_type = std::chrono::steady_clock;

const char* const default_schemes =
    "int8-row,int4-g128,int4-g128-asym,rtn-clip-int4-g128,int3-g128-asym,int2-g64-asym,nf4-g64,nf4-g64-dq";

std::string help_text() {
    return std::string(
               "usage: edgeq demo [--rows R] [--cols C] [--schemes LIST|all] [--threads N] [--seed S]\n"
               "                  [--outliers F] [--json]\n"
               "\n"
               "Quantizes one synthetic weight matrix with each scheme and reports, per scheme:\n"
               "  bits/w      stored bits per weight (codes, scales, zero points)\n"
               "  storage     bytes of the quantized matrix\n"
               "  weight err  RMS of (dequantized - original) / RMS of the original weights\n"
               "  output err  |W_q x - W x| / |W x|, W x computed in float64 from the float weights\n"
               "  quantize    time to quantize the matrix (one thread)\n"
               "  gemv        median time of y = W_q x (float activations) on --threads threads\n"
               "  GB/s        stored bytes / gemv time: how fast the GEMV streams the weights\n"
               "\n"
               "The matrix: N(0, 0.02^2) weights, each row scaled by a log-normal factor (sigma 0.3),\n"
               "and a fraction --outliers of them replaced by outliers of 5 to 15 times the row's\n"
               "sigma with a random sign; x is N(0, 1). Both follow from --seed, the same on every\n"
               "platform (mt19937_64 and Box-Muller). The default shape, 4096 x 4096, is one attention\n"
               "projection of a 7B model.\n"
               "\n"
               "options:\n"
               "  --rows R          rows (output features); default 4096\n"
               "  --cols C          columns (input features), a multiple of every group used; default 4096\n"
               "  --schemes LIST    comma-separated scheme names (see 'edgeq schemes') or 'all'; default\n"
               "                    ") +
           default_schemes +
           "\n"
           "  --threads N       GEMV threads; default: all hardware threads (" +
           std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
           ")\n"
           "  --seed S          default 1\n"
           "  --outliers F      fraction of weights that are outliers, 0 to 1; default 0.0005\n"
           "  --json            print JSON instead of the table\n"
           "  -h, --help        this text\n";
}

// Portable normal deviates: mt19937_64 is specified exactly; std::normal_distribution is not.
class gaussian {
   public:
    explicit gaussian(std::uint64_t seed) : gen_(seed) {}
    double uniform() { return (double(gen_() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
    double operator()() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double r = std::sqrt(-2.0 * std::log(uniform())), t = 6.283185307179586 * uniform();
        spare_ = r * std::sin(t);
        has_spare_ = true;
        return r * std::cos(t);
    }

   private:
    std::mt19937_64 gen_;
    double spare_ = 0.0;
    bool has_spare_ = false;
};

struct options {
    std::size_t rows = 4096, cols = 4096, threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::string> schemes;
    std::uint64_t seed = 1;
    double outliers = 0.0005;
    bool json = false;
};

struct result {
    std::string name;
    double bits_per_weight;
    std::size_t storage_bytes;
    double weight_error, output_error, quantize_s, gemv_s, gbps;
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    for (std::size_t b = 0;;) {
        const std::size_t e = s.find(',', b);
        out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) return out;
        b = e + 1;
    }
}

options parse(int argc, char** argv, bool& help) {
    cli::args a("demo", argc, argv);
    options o;
    std::string list = default_schemes;
    while (!a.done()) {
        const std::string f = a.next_option();
        if (f == "-h" || f == "--help") {
            help = true;
            return o;
        } else if (f == "--rows") {
            o.rows = a.positive(f, 1u << 20);
        } else if (f == "--cols") {
            o.cols = a.positive(f, 1u << 20);
        } else if (f == "--threads") {
            o.threads = a.positive(f, 1024);
        } else if (f == "--seed") {
            o.seed = a.positive(f, ~std::size_t(0) >> 1);
        } else if (f == "--outliers") {
            o.outliers = a.fraction(f);
        } else if (f == "--schemes") {
            list = a.value(f);
        } else if (f == "--json") {
            o.json = true;
        } else {
            a.unknown(f);
        }
    }
    if (o.rows * o.cols > (std::size_t(1) << 30)) a.fail("--rows x --cols is over 2^30 weights");
    if (list == "all") {
        for (const std::string& n : reg::names())
            if (!reg::info(n).calibrated) o.schemes.push_back(n);  // SpQR needs a Hessian: edgeq quantize --calib
    } else {
        o.schemes = split(list);
    }
    for (const std::string& s : o.schemes) {
        reg::scheme_info in;
        try {
            in = reg::info(s);
        } catch (const edgeq::error& e) {
            a.fail_plain(std::string("--schemes: ") + (e.what() + 7));  // without "edgeq: "
        }
        const std::size_t multiple = in.group ? std::size_t(in.group) : 32;
        if (o.cols % multiple)
            a.fail("--cols " + std::to_string(o.cols) + " is not a multiple of " + std::to_string(multiple) + ", which " +
                   in.name + " needs");
    }
    return o;
}

}  // namespace

namespace commands {

int demo(int argc, char** argv) {
    bool help = false;
    const options o = parse(argc, argv, help);
    if (help) {
        std::fputs(help_text().c_str(), stdout);
        return 0;
    }
    const std::size_t R = o.rows, C = o.cols;

    // The matrix and the activations.
    gaussian g(o.seed);
    std::vector<float> w(R * C), x(C);
    for (std::size_t r = 0; r < R; ++r) {
        const double sigma = 0.02 * std::exp(0.3 * g());
        for (std::size_t c = 0; c < C; ++c) {
            double v = sigma * g();
            if (g.uniform() < o.outliers) v = (g.uniform() < 0.5 ? -1.0 : 1.0) * sigma * (5.0 + 10.0 * g.uniform());
            w[r * C + c] = float(v);
        }
    }
    for (float& v : x) v = float(g());
    const edgeq::matrix_view<const float> wv(w.data(), R, C);

    // The float64 reference.
    std::vector<double> y_ref(R);
    double w_sq = 0.0, y_sq = 0.0;
    for (std::size_t r = 0; r < R; ++r) {
        double acc = 0.0;
        for (std::size_t c = 0; c < C; ++c) {
            acc += double(w[r * C + c]) * double(x[c]);
            w_sq += double(w[r * C + c]) * double(w[r * C + c]);
        }
        y_ref[r] = acc;
        y_sq += acc * acc;
    }

    edgeq::thread_pool pool(unsigned(o.threads));
    std::size_t name_w = 6;
    for (const std::string& s : o.schemes) name_w = std::max(name_w, reg::canonical(s).size());
    const char* backend = edgeq::backend::best::name();
    if (!o.json) {
        std::printf("edgeq demo: %zu x %zu weights, N(0, 0.02^2) x row scales, %.3g%% outliers (5-15 sigma), seed %llu\n", R, C,
                    100.0 * o.outliers, static_cast<unsigned long long>(o.seed));
        std::printf("gemv: float activations, %s kernels, %zu thread%s; errors against float64\n\n", backend, o.threads,
                    o.threads == 1 ? "" : "s");
        std::printf("%-*s  %7s  %10s  %10s  %10s  %9s  %9s  %6s\n", int(name_w), "scheme", "bits/w", "storage",
                    "weight err", "output err", "quantize", "gemv", "GB/s");
        std::printf("%s\n", std::string(name_w + 2 + 7 + 2 + 10 + 2 + 10 + 2 + 10 + 2 + 9 + 2 + 9 + 2 + 6, '-').c_str());
    }

    std::vector<result> results;
    std::vector<float> y(R), row(C);
    for (const std::string& name : o.schemes) {
        result res;
        const auto t0 = clock_type::now();
        const std::unique_ptr<edgeq::linear> l = reg::make_linear(name, wv);
        res.quantize_s = std::chrono::duration<double>(clock_type::now() - t0).count();
        res.name = l->scheme_name();
        res.bits_per_weight = l->bits_per_weight();
        res.storage_bytes = l->storage_bytes();

        double e_sq = 0.0;
        for (std::size_t r = 0; r < R; ++r) {
            l->dequantize_row(r, row.data());
            for (std::size_t c = 0; c < C; ++c) {
                const double d = double(row[c]) - double(w[r * C + c]);
                e_sq += d * d;
            }
        }
        res.weight_error = std::sqrt(e_sq / w_sq);

        l->gemv(x.data(), y.data(), pool);
        double o_sq = 0.0;
        for (std::size_t r = 0; r < R; ++r) o_sq += (double(y[r]) - y_ref[r]) * (double(y[r]) - y_ref[r]);
        res.output_error = std::sqrt(o_sq / y_sq);

        // Median of at least 10 runs and 0.25 s (at most 2000 runs), after 3 to warm up.
        for (int i = 0; i < 3; ++i) l->gemv(x.data(), y.data(), pool);
        std::vector<double> times;
        double total = 0.0;
        while ((times.size() < 10 || total < 0.25) && times.size() < 2000) {
            const auto s = clock_type::now();
            l->gemv(x.data(), y.data(), pool);
            times.push_back(std::chrono::duration<double>(clock_type::now() - s).count());
            total += times.back();
        }
        std::nth_element(times.begin(), times.begin() + std::ptrdiff_t(times.size() / 2), times.end());
        res.gemv_s = times[times.size() / 2];
        res.gbps = double(res.storage_bytes) / res.gemv_s / 1e9;
        results.push_back(res);

        if (!o.json) {
            std::printf("%-*s  %7.3f  %10s  %10s  %10s  %9s  %9s  %6.1f\n", int(name_w), res.name.c_str(),
                        res.bits_per_weight, cli::bytes(double(res.storage_bytes)).c_str(),
                        cli::percent(res.weight_error).c_str(), cli::percent(res.output_error).c_str(),
                        cli::seconds(res.quantize_s).c_str(), cli::seconds(res.gemv_s).c_str(), res.gbps);
            std::fflush(stdout);
        }
    }

    if (o.json) {
        std::printf("{\n  \"rows\": %zu, \"cols\": %zu, \"seed\": %llu, \"outliers\": %s, \"threads\": %zu, \"backend\": %s,\n"
                    "  \"results\": [\n",
                    R, C, static_cast<unsigned long long>(o.seed), cli::json_number(o.outliers).c_str(), o.threads,
                    cli::json_string(backend).c_str());
        for (std::size_t i = 0; i < results.size(); ++i) {
            const result& r = results[i];
            std::printf("    {\"scheme\": %s, \"bits_per_weight\": %s, \"storage_bytes\": %zu, \"weight_rel_rms_error\": %s, "
                        "\"output_rel_error\": %s, \"quantize_s\": %s, \"gemv_s\": %s, \"gemv_gb_per_s\": %s}%s\n",
                        cli::json_string(r.name).c_str(), cli::json_number(r.bits_per_weight).c_str(), r.storage_bytes,
                        cli::json_number(r.weight_error).c_str(), cli::json_number(r.output_error).c_str(),
                        cli::json_number(r.quantize_s).c_str(), cli::json_number(r.gemv_s).c_str(),
                        cli::json_number(r.gbps).c_str(), i + 1 < results.size() ? "," : "");
        }
        std::printf("  ]\n}\n");
    } else {
        std::printf("\nfloat32 weights would take %s.\n", cli::bytes(4.0 * double(R) * double(C)).c_str());
    }
    return 0;
}

}  // namespace commands
