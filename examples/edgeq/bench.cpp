// edgeq bench: the comparison table. For the unquantized model and each scheme: quantize (or
// reuse the cached file), then measure size, speed, memory, perplexity, KL divergence and the
// answers to a fixed prompt set, each in a child process of this binary (peak memory is per
// process); write results.csv, results.json, report.md and gnuplot plots.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <edgeq/core/error.hpp>
#include <edgeq/io/gguf.hpp>

#include "bench_child.hpp"
#include "bench_progress.hpp"
#include "bench_report.hpp"
#include "bench_row.hpp"
#include "cli.hpp"
#include "commands.hpp"

namespace {

using nlohmann::json;

const char* const help =
    "usage: edgeq bench -m MODEL --schemes LIST|all -o DIR [--eval TEXT] [--calib TEXT] [options]\n"
    "\n"
    "Compares quantization schemes on one model. The unquantized model (--baseline) comes first;\n"
    "then for each scheme: quantize it to DIR/models/SCHEME.gguf (edgeq quantize), and measure\n"
    "  size         file bytes; exact bits per weight of all tensors and of the layer matrices\n"
    "  speed        prompt and generation tokens/s of 'edgeq run' (median of --runs, with range)\n"
    "  memory       peak resident memory of that process\n"
    "  quality      perplexity on --eval and the KL divergence from the baseline (edgeq perplexity)\n"
    "  answers      greedy answers to the prompt set, and the fraction of tokens equal to the\n"
    "               baseline's\n"
    "  Jetson Nano  the decode tokens/s that 25.6 GB/s allow for the bytes a token reads, and\n"
    "               whether weights + KV cache (--ctx) + 1 GiB of runtime fit in 4 GB\n"
    "Each measurement is a child process of this binary. DIR gets results.csv, results.json,\n"
    "report.md and plots/ (SVG drawn by gnuplot: perplexity against size with the Pareto front,\n"
    "tokens/s and memory per scheme). Results are cached in DIR: a re-run measures only what\n"
    "changed (the model, the options that matter); --force redoes everything. Ctrl-C stops after\n"
    "writing the schemes finished so far. A scheme that fails is a row with its reason.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL     a GGUF, llama2.c .bin or Hugging Face folder (as 'edgeq quantize')\n"
    "  -o, --output DIR      where the results go (created)\n"
    "  --schemes LIST|all    comma-separated 'edgeq quantize' schemes (int4-g128, gptq-int4-g128,\n"
    "                        awq-int4-g128, q4_k_m, f16, ...); all = f16 q8_0 int8-g128 int4-g128\n"
    "                        rtn-clip-int4-g128 gptq-int4-g128 awq-int4-g128 nf4-g64-dq q4_k_m\n"
    "                        gptq-q4_k_m int3-g128 gptq-int3-g128 q3_k_m q2_k int2-g64-asym\n"
    "                        gptq-int2-g64-asym\n"
    "  --baseline TYPE       the unquantized reference: f32 (default), f16 or bf16\n"
    "  -t, --tokenizer FILE  for models without their own (a llama2.c .bin)\n"
    "  --eval TEXT           evaluation text: perplexity, KL, and the speed prompt (its start)\n"
    "  --eval-bytes A:B      use bytes [A, B) of it (a held-out part)\n"
    "  --protocol P          gptq (default) or llamacpp (see 'edgeq perplexity --help')\n"
    "  --ppl-ctx N           perplexity window; default 256\n"
    "  --ppl-chunks N        most windows scored; default 32\n"
    "  --calib TEXT          calibration text for gptq-, awq-, spqr- and imatrix- schemes (the others are\n"
    "                        plain round-to-nearest)\n"
    "  --nsamples N, --seqlen L   calibration windows; defaults 16 and 256\n"
    "  --prompts FILE        the answer prompts, one a line; default: four TinyStories openings\n"
    "  --answer-tokens N     greedy tokens per answer; default 32\n"
    "  --speed-tokens N      tokens generated per speed run; default 128\n"
    "  --speed-prompt-bytes N   bytes of the evaluation text in the speed prompt; default 512\n"
    "  --runs N              speed runs per scheme; default 3\n"
    "  --threads N           threads of every child; default: all hardware threads\n"
    "  --ctx N               the Jetson estimate's context (KV cache positions); default 2048\n"
    "  --device cpu|cuda     where the engine runs (speed, answers, perplexity); default cpu. cuda:\n"
    "                        the children run with --device cuda, peak device memory is measured;\n"
    "                        quantization and the KL divergence stay on the CPU\n"
    "  --force               redo everything, cached or not\n"
    "  --json                print results.json on stdout at the end instead of the table\n"
    "  -h, --help            this text\n";

const std::vector<std::string>& curated() {
    static const std::vector<std::string> s = {"f16",         "q8_0",         "int8-g128",      "int4-g128",
                                               "rtn-clip-int4-g128", "gptq-int4-g128", "awq-int4-g128", "nf4-g64-dq",
                                               "q4_k_m",      "gptq-q4_k_m",  "int3-g128",      "gptq-int3-g128",
                                               "q3_k_m",      "q2_k",         "int2-g64-asym",  "gptq-int2-g64-asym"};
    return s;
}

const char* const default_prompts[] = {"Once upon a time", "The little dog", "Lily wanted to", "One day, Tom found a"};

// Stands in for the evaluation text's start as the speed prompt when there is no --eval.
const char* const default_speed_text =
    "Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball. One day, "
    "she saw a big dog near the pond. The dog was sad because he had lost his bone. Lily wanted to help him, so she "
    "looked under the trees and behind the bench. Then she found the bone in the sand! The dog wagged his tail and "
    "licked her hand. Lily smiled and said, \"Now we can be friends.\" They played together until the sun went down, "
    "and Lily went home happy.";

struct options {
    std::string model, out, tokenizer, calib, eval, eval_bytes, prompts_file, baseline = "f32", device = "cpu",
                protocol = "gptq";
    std::vector<std::string> schemes;  // the baseline first
    std::size_t nsamples = 16, seqlen = 256, ppl_ctx = 256, ppl_chunks = 32, answer_tokens = 32, speed_tokens = 128,
                speed_prompt_bytes = 512, runs = 3;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    bool force = false, json = false;
    bench::jetson_settings jetson;
};

bool is_dense(const std::string& s) { return s == "f32" || s == "f16" || s == "bf16"; }
bool starts_with(const std::string& s, const char* p) { return s.compare(0, std::string(p).size(), p) == 0; }
// The schemes whose quantization needs calibration text (SpQR is GPTQ with outliers).
bool calibrated(const std::string& s) {
    return starts_with(s, "gptq-") || starts_with(s, "awq-") || starts_with(s, "imatrix-") || starts_with(s, "spqr-");
}

std::string real_path(const std::string& p) {
    char b[PATH_MAX];
    return realpath(p.c_str(), b) ? std::string(b) : p;
}

bool exists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// A file's identity for the cache: its path, size and modification time; a folder's: those of
// each file in it.
std::string identity(const std::string& path) {
    struct stat st;
    if (path.empty() || stat(path.c_str(), &st) != 0) return "";
    auto one = [](const struct stat& s) {
#ifdef __APPLE__
        const long ns = long(s.st_mtimespec.tv_nsec);
#else
        const long ns = long(s.st_mtim.tv_nsec);
#endif
        return std::to_string(s.st_size) + "@" + std::to_string(long(s.st_mtime)) + "." + std::to_string(ns);
    };
    const std::string full = real_path(path);
    if (!S_ISDIR(st.st_mode)) return full + ":" + one(st);
    std::vector<std::string> entries;
    if (DIR* d = opendir(path.c_str())) {
        while (const dirent* e = readdir(d)) {
            struct stat fs;
            const std::string f = path + "/" + e->d_name;
            if (e->d_name[0] != '.' && stat(f.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) entries.push_back(std::string(e->d_name) + ":" + one(fs));
        }
        closedir(d);
    }
    std::sort(entries.begin(), entries.end());
    std::string id = full + "/{";
    for (const std::string& e : entries) id += e + ";";
    return id + "}";
}

void make_dir(const std::string& d) {
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) throw edgeq::error("bench: cannot create " + d + ": " + std::strerror(errno));
}

json read_json(const std::string& path) {
    const std::string s = bench::read_file(path);
    if (s.empty()) return json();
    try {
        return json::parse(s);
    } catch (const std::exception&) {
        return json();
    }
}

double median(std::vector<double> v) {
    if (v.empty()) return bench::nan;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bool is_layer_matrix(const std::string& name) {
    if (!starts_with(name, "blk.")) return false;
    for (const char* m : {".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight", ".ffn_gate.weight",
                          ".ffn_up.weight", ".ffn_down.weight"}) {
        const std::string s = m;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
    }
    return false;
}

// Sizes and the shapes the Jetson estimate needs, from the GGUF itself.
void measure_gguf(const std::string& path, bench::row& r) {
    namespace gg = edgeq::io::gguf;
    const gg::file f(path);
    r.file_bytes = double(f.file_size());
    double bytes = 0, elements = 0, lb = 0, le = 0, embd = 0, embd_rows = 1;
    bool has_output = false;
    for (const gg::tensor_info& t : f.tensors()) {
        bytes += double(t.bytes);
        elements += double(t.elements);
        if (is_layer_matrix(t.name)) lb += double(t.bytes), le += double(t.elements);
        if (t.name == "token_embd.weight") embd = double(t.bytes), embd_rows = double(std::max<std::uint64_t>(1, t.rows()));
        if (t.name == "output.weight") has_output = true;
    }
    r.tensor_bytes = bytes, r.elements = elements, r.linear_bytes = lb, r.linear_elements = le;
    // A token reads every tensor but the embedding, of which it reads one row (all of it when
    // it is also the classifier).
    r.bytes_per_token = has_output ? bytes - embd + embd / embd_rows : bytes;
    try {
        const std::string arch = f.get_string("general.architecture");
        const int n_heads = int(f.get_u32(arch + ".attention.head_count"));
        const int n_kv = f.has(arch + ".attention.head_count_kv") ? int(f.get_u32(arch + ".attention.head_count_kv")) : n_heads;
        const int dim = int(f.get_u32(arch + ".embedding_length"));
        const int head = f.has(arch + ".attention.key_length") ? int(f.get_u32(arch + ".attention.key_length")) : dim / std::max(1, n_heads);
        r.shape.n_layers = int(f.get_u32(arch + ".block_count"));
        r.shape.kv_dim = n_kv * head;
    } catch (const edgeq::error&) {
        r.shape = bench::model_shape();  // no Jetson estimate
    }
}

// The measurements that the evaluation cache keeps.
std::vector<std::pair<const char*, double bench::row::*>> eval_fields() {
    using R = bench::row;
    return {{"prompt_tokens", &R::prompt_tokens}, {"decode_tokens", &R::decode_tokens}, {"prompt_tps", &R::prompt_tps},
            {"prompt_tps_min", &R::prompt_tps_min}, {"prompt_tps_max", &R::prompt_tps_max}, {"decode_tps", &R::decode_tps},
            {"decode_tps_min", &R::decode_tps_min}, {"decode_tps_max", &R::decode_tps_max}, {"peak_rss_bytes", &R::peak_rss_bytes},
            {"peak_device_bytes", &R::peak_device_bytes}, {"ppl", &R::ppl}, {"ppl_uncertainty", &R::ppl_uncertainty},
            {"kl_mean", &R::kl_mean}, {"kl_uncertainty", &R::kl_uncertainty}, {"kl_p99", &R::kl_p99}, {"same_top", &R::same_top}};
}

// Generated text may end inside a UTF-8 character (byte-level tokens); the JSON parser and
// writer accept only whole ones, so a broken sequence becomes U+FFFD.
std::string valid_utf8(const std::string& s) {
    std::string o;
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= s.size();
        for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
        if (ok) {
            o.append(s, i, n);
            i += n;
        } else {
            o += "\xEF\xBF\xBD";
            i += 1;
        }
    }
    return o;
}

struct stop_request {};  // Ctrl-C: unwinds to the writing of what is finished

class bench_run {
   public:
    bench_run(const options& o, std::string exe, std::vector<std::string> prompts, std::string speed_prompt)
        : o_(o), exe_(std::move(exe)), prompts_(std::move(prompts)), speed_prompt_(std::move(speed_prompt)),
          progress_(stage_counts(o)) {}

    // Quantizes and measures scheme i (rows[0] is the baseline). Failures end up in the row.
    void process(std::size_t i, std::vector<bench::row>& rows) {
        bench::row& r = rows[i];
        index_ = i;
        count_ = rows.size();
        const std::string gguf = model_path(r.scheme);
        const bool has_base = !r.baseline && rows[0].ok();
        try {
            quantize(r, gguf);
            if (r.status == "failed") {
                progress_.skip("speed"), progress_.skip("answers"), progress_.skip("perplexity");
                return;
            }
            measure_gguf(gguf, r);
            evaluate(r, gguf, has_base ? model_path(rows[0].scheme) : std::string());
            if (r.status == "pending") r.status = "ok";
        } catch (const stop_request&) {
            r.status = "interrupted";
            r.error = "Ctrl-C";
            throw;
        } catch (const edgeq::error& e) {
            const std::string why = e.what();
            r.status = "failed";
            r.error = starts_with(why, "edgeq: ") ? why.substr(7) : why;
        }
    }

    bench::progress& display() { return progress_; }
    std::string model_path(const std::string& scheme) const { return o_.out + "/models/" + scheme + ".gguf"; }

   private:
    static std::map<std::string, std::size_t> stage_counts(const options& o) {
        std::map<std::string, std::size_t> m;
        for (const std::string& s : o.schemes) m[calibrated(s) ? "calibrate" : "quantize"] += 1;
        m["speed"] = m["answers"] = o.schemes.size();
        if (!o.eval.empty()) m["perplexity"] = o.schemes.size();
        return m;
    }

    // Runs `edgeq ARGS` for stage `what` of the row; its output goes to DIR/logs.
    bench::child_result child(const bench::row& r, const std::string& kind, const std::string& what,
                              const std::vector<std::string>& args, const std::string& tag) {
        const std::string base = o_.out + "/logs/" + r.scheme + "." + tag;
        progress_.begin(index_, count_, r.scheme, kind, what, base + ".log");
        const bench::child_result c = bench::run_child(exe_, args, base + ".json", base + ".log", [this] { progress_.tick(); });
        if (bench::interrupted()) throw stop_request();
        if (c.exit_code != 0) {
            std::string why = bench::last_line(base + ".log");
            if (why.empty()) why = c.signal_number ? "killed by signal " + std::to_string(c.signal_number) : "exit code " + std::to_string(c.exit_code);
            // "edgeq quantize: unknown scheme ...", "edgeq: blk.0.ffn_down: ..." say where already.
            throw edgeq::error(starts_with(why, "edgeq") ? why : tag + ": " + why);
        }
        return c;
    }

    static json parse(const bench::child_result& c, const std::string& what) {
        try {
            return json::parse(valid_utf8(c.out));
        } catch (const std::exception&) {
            throw edgeq::error(what + ": the child's --json output does not parse");
        }
    }

    void quantize(bench::row& r, const std::string& gguf) {
        const std::string kind = calibrated(r.scheme) ? "calibrate" : "quantize";
        json key = {{"bench", 1}, {"model", identity(o_.model)}, {"scheme", r.scheme}, {"tokenizer", identity(o_.tokenizer)}};
        if (calibrated(r.scheme)) key["calib"] = {identity(o_.calib), o_.nsamples, o_.seqlen};
        const std::string cache = o_.out + "/cache/" + r.scheme + ".quantize.json";
        const json c = read_json(cache);
        if (!o_.force && c.is_object() && c.value("key", json()) == key && c.value("gguf", std::string()) == identity(gguf)) {
            r.quantize_seconds = bench::number_at(c, "seconds");
            r.quantize_cached = true;
            progress_.skip(kind);
            return;
        }
        std::vector<std::string> args;
        if (is_dense(r.scheme)) {
            args = {"convert", "-m", o_.model, "-o", gguf, "--type", r.scheme, "--json"};
        } else {
            args = {"quantize", "-m", o_.model, "-o", gguf, "--scheme", r.scheme, "--threads", std::to_string(o_.threads), "--json"};
            if (calibrated(r.scheme) && !o_.calib.empty())
                args.insert(args.end(), {"--calib", o_.calib, "--nsamples", std::to_string(o_.nsamples), "--seqlen", std::to_string(o_.seqlen)});
        }
        if (!o_.tokenizer.empty()) args.insert(args.end(), {"-t", o_.tokenizer});
        std::remove((o_.out + "/cache/" + r.scheme + ".eval.json").c_str());
        try {
            const bench::child_result res = child(r, kind, is_dense(r.scheme) ? "convert" : kind, args, "quantize");
            const json j = parse(res, "quantize");
            r.quantize_seconds = bench::number_at(j, "seconds");
            if (!bench::known(r.quantize_seconds)) r.quantize_seconds = res.seconds;
        } catch (const edgeq::error& e) {
            r.status = "failed";
            r.error = std::string(e.what()).substr(7);
            progress_.end(true);
            return;
        }
        progress_.end(true);
        bench::write_atomic(cache, json({{"key", key}, {"gguf", identity(gguf)}, {"seconds", r.quantize_seconds}}).dump(1, ' ', false, json::error_handler_t::replace) + "\n");
    }

    void evaluate(bench::row& r, const std::string& gguf, const std::string& base) {
        json key = {{"bench", 1},
                    {"gguf", identity(gguf)},
                    {"base", identity(base)},
                    {"eval", {identity(o_.eval), o_.eval_bytes, o_.protocol, o_.ppl_ctx, o_.ppl_chunks}},
                    {"speed", {speed_prompt_, o_.speed_tokens, o_.runs, o_.threads}},
                    {"device", o_.device},
                    {"answers", {prompts_, o_.answer_tokens}}};
        const std::string cache = o_.out + "/cache/" + r.scheme + ".eval.json";
        const json c = read_json(cache);
        if (!o_.force && c.is_object() && c.value("key", json()) == key) {
            const json m = c.value("result", json::object());
            for (const auto& f : eval_fields()) r.*f.second = bench::number_at(m, f.first);
            for (const json& a : m.value("answers", json::array()))
                r.answers.push_back({a.value("prompt", ""), a.value("text", ""), a.value("tokens", std::vector<int>())});
            r.eval_cached = true;
            progress_.skip("speed"), progress_.skip("answers"), progress_.skip("perplexity");
            return;
        }
        const std::string threads = std::to_string(o_.threads);

        // Speed and memory: the same greedy run --runs times, each its own process.
        std::vector<double> pp, tg;
        double rss = 0, device = 0;
        for (std::size_t k = 0; k < o_.runs; ++k) {
            const bench::child_result c =
                child(r, "speed", "speed run " + std::to_string(k + 1) + "/" + std::to_string(o_.runs),
                      on_device({"run", "-m", gguf, "--prompt=" + speed_prompt_, "-n", std::to_string(o_.speed_tokens), "--temp", "0",
                                 "--threads", threads, "--json"}),
                      "speed");
            const json j = parse(c, "speed");
            pp.push_back(bench::number_at(j, "prompt_tokens_per_second"));
            tg.push_back(bench::number_at(j, "decode_tokens_per_second"));
            r.prompt_tokens = bench::number_at(j, "prompt_tokens");
            r.decode_tokens = bench::number_at(j, "generated_tokens");
            rss = std::max({rss, c.peak_rss_bytes, bench::number_at(j, "peak_rss_bytes")});
            if (gpu()) device = std::max(device, bench::number_at(j, "peak_device_bytes"));
        }
        progress_.end(true);
        r.prompt_tps = median(pp), r.decode_tps = median(tg);
        r.prompt_tps_min = *std::min_element(pp.begin(), pp.end()), r.prompt_tps_max = *std::max_element(pp.begin(), pp.end());
        r.decode_tps_min = *std::min_element(tg.begin(), tg.end()), r.decode_tps_max = *std::max_element(tg.begin(), tg.end());
        r.peak_rss_bytes = rss;
        if (gpu()) r.peak_device_bytes = device > 0 ? device : bench::nan;

        // Answers: greedy, a fixed length.
        for (std::size_t p = 0; p < prompts_.size(); ++p) {
            const bench::child_result c =
                child(r, "answers", "answer " + std::to_string(p + 1) + "/" + std::to_string(prompts_.size()),
                      on_device({"run", "-m", gguf, "--prompt=" + prompts_[p], "-n", std::to_string(o_.answer_tokens), "--temp", "0",
                                 "--threads", threads, "--json"}),
                      "answer");
            const json j = parse(c, "answer");
            r.answers.push_back({prompts_[p], j.value("text", ""), j.value("tokens", std::vector<int>())});
        }
        progress_.end(true);

        // Perplexity, and KL divergence from the baseline.
        if (!o_.eval.empty()) {
            std::vector<std::string> args = {"perplexity", "-m", gguf, "-f", o_.eval, "--protocol", o_.protocol, "--ctx",
                                             std::to_string(o_.ppl_ctx), "--chunks", std::to_string(o_.ppl_chunks), "--threads", threads, "--json"};
            if (!o_.eval_bytes.empty()) args.insert(args.end(), {"--bytes", o_.eval_bytes});
            // On the GPU: the perplexity there, the KL divergence (two models at once, llama_model
            // only) in a second child on the CPU.
            const bool kl = !base.empty() && !r.baseline;
            json j;
            if (gpu()) {
                j = parse(child(r, "perplexity", "perplexity", on_device(args), "perplexity"), "perplexity");
                r.ppl = bench::number_at(j, "result/ppl");
                r.ppl_uncertainty = bench::number_at(j, "result/ppl_uncertainty");
                if (kl) {
                    args.insert(args.end(), {"--kl-base", base});
                    j = parse(child(r, "perplexity", "KL (CPU)", args, "KL"), "KL");
                }
            } else {
                if (!base.empty()) args.insert(args.end(), {"--kl-base", base});
                j = parse(child(r, "perplexity", base.empty() ? "perplexity" : "perplexity and KL", args, "perplexity"), "perplexity");
                r.ppl = bench::number_at(j, "result/ppl");
                r.ppl_uncertainty = bench::number_at(j, "result/ppl_uncertainty");
            }
            if (r.baseline) {
                r.kl_mean = 0, r.kl_p99 = 0, r.same_top = 1;
            } else if (!base.empty()) {
                r.kl_mean = bench::number_at(j, "kl/mean");
                r.kl_uncertainty = bench::number_at(j, "kl/uncertainty");
                r.kl_p99 = bench::number_at(j, "kl/p99");
                r.same_top = bench::number_at(j, "kl/same_top");
            }
            progress_.end(true);
        }

        json m;
        for (const auto& f : eval_fields()) m[f.first] = bench::known(r.*f.second) ? json(r.*f.second) : json(nullptr);
        m["answers"] = json::array();
        for (const bench::answer& a : r.answers) m["answers"].push_back({{"prompt", a.prompt}, {"text", a.text}, {"tokens", a.tokens}});
        bench::write_atomic(cache, json({{"key", key}, {"result", m}}).dump(1, ' ', false, json::error_handler_t::replace) + "\n");
    }

    bool gpu() const { return o_.device == "cuda"; }
    // A child's command line for the engine's device (speed, answers, perplexity).
    std::vector<std::string> on_device(std::vector<std::string> args) const {
        if (gpu()) args.insert(args.end(), {"--device", "cuda"});
        return args;
    }

    const options& o_;
    std::string exe_;
    std::vector<std::string> prompts_;
    std::string speed_prompt_;
    bench::progress progress_;
    std::size_t index_ = 0, count_ = 0;
};

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> v;
    std::size_t b = 0;
    while (b <= s.size()) {
        std::size_t e = s.find(',', b);
        if (e == std::string::npos) e = s.size();
        std::string item = s.substr(b, e - b);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) v.push_back(item);
        b = e + 1;
    }
    return v;
}

std::string summary_line(const bench::row& r) {
    if (!r.ok()) return "  " + r.scheme + ": " + r.status + ": " + r.error;
    std::string s = "  " + r.scheme + ": " + cli::bytes(r.file_bytes) + ", " + cli::fmt("%.3f", r.bits_per_weight()) + " bits/weight";
    if (bench::known(r.ppl)) s += ", PPL " + cli::fmt("%.3f", r.ppl);
    if (bench::known(r.kl_mean) && !r.baseline) s += ", KL " + cli::fmt("%.4f", r.kl_mean);
    if (bench::known(r.decode_tps)) s += ", decode " + cli::fmt("%.1f", r.decode_tps) + " tok/s";
    if (bench::known(r.peak_rss_bytes)) s += ", peak " + cli::bytes(r.peak_rss_bytes);
    if (r.quantize_cached && r.eval_cached) s += " (cached)";
    return s;
}

void print_table(const std::vector<bench::row>& rows) {
    cli::table t({"scheme", "bits/w", "linear b/w", "file", "PPL", "KL", "agree", "prompt tok/s", "decode tok/s", "peak RSS",
                  "quantize", "Nano tok/s", "fits 4 GB"},
                 {false, true, true, true, true, true, true, true, true, true, true, true, false});
    for (const bench::row& r : rows) {
        if (!r.ok()) {
            t.add({r.scheme, r.status, "", "", "", "", "", "", "", "", "", "", ""});
            continue;
        }
        t.add({r.scheme + (r.pareto ? " *" : ""), bench::num_or_dash(r.bits_per_weight(), "%.3f"),
               bench::num_or_dash(r.linear_bits_per_weight(), "%.3f"), cli::bytes(r.file_bytes), bench::num_or_dash(r.ppl, "%.3f"),
               bench::num_or_dash(r.kl_mean, "%.4f"), bench::known(r.agreement) ? cli::percent(r.agreement) : "-",
               bench::num_or_dash(r.prompt_tps, "%.1f"), bench::num_or_dash(r.decode_tps, "%.1f"),
               bench::known(r.peak_rss_bytes) ? cli::bytes(r.peak_rss_bytes) : "-",
               r.baseline ? "-" : bench::num_or_dash(r.quantize_seconds, "%.1f s"),
               bench::known(r.jetson_tps_est) ? cli::fmt("%.0f", r.jetson_tps_est) : "-",
               r.jetson_fits < 0 ? "-" : r.jetson_fits ? "yes" : "no"});
    }
    t.print();
}

}  // namespace

namespace commands {

int bench(int argc, char** argv) {
    cli::args a("bench", argc, argv);
    options o;
    std::string schemes;
    std::string command = "edgeq bench";
    for (int i = 0; i < argc; ++i) {
        const std::string s = argv[i];
        command += " " + (s.find_first_of(" \"'$\\") == std::string::npos && !s.empty() ? s : "'" + s + "'");
    }
    while (!a.done()) {
        const std::string opt = a.next_option();
        if (opt == "-h" || opt == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (opt == "-m" || opt == "--model") {
            o.model = a.value(opt);
        } else if (opt == "-o" || opt == "--output") {
            o.out = a.value(opt);
        } else if (opt == "--schemes") {
            schemes = a.value(opt);
        } else if (opt == "--baseline") {
            o.baseline = a.value(opt);
            if (!is_dense(o.baseline)) a.fail("--baseline takes f32, f16 or bf16, not '" + o.baseline + "'");
        } else if (opt == "-t" || opt == "--tokenizer") {
            o.tokenizer = a.value(opt);
        } else if (opt == "--eval") {
            o.eval = a.value(opt);
        } else if (opt == "--eval-bytes") {
            o.eval_bytes = a.value(opt);
        } else if (opt == "--protocol") {
            o.protocol = a.value(opt);
            if (o.protocol != "gptq" && o.protocol != "llamacpp") a.fail("--protocol takes gptq or llamacpp, not '" + o.protocol + "'");
        } else if (opt == "--ppl-ctx") {
            o.ppl_ctx = a.positive(opt, 1 << 20);
        } else if (opt == "--ppl-chunks") {
            o.ppl_chunks = a.positive(opt, 1 << 20);
        } else if (opt == "--calib") {
            o.calib = a.value(opt);
        } else if (opt == "--nsamples") {
            o.nsamples = a.positive(opt, 100000);
        } else if (opt == "--seqlen") {
            o.seqlen = a.positive(opt, 1 << 20);
        } else if (opt == "--prompts") {
            o.prompts_file = a.value(opt);
        } else if (opt == "--answer-tokens") {
            o.answer_tokens = a.positive(opt, 1 << 16);
        } else if (opt == "--speed-tokens") {
            o.speed_tokens = a.positive(opt, 1 << 16);
        } else if (opt == "--speed-prompt-bytes") {
            o.speed_prompt_bytes = a.positive(opt, 1 << 20);
        } else if (opt == "--runs") {
            o.runs = a.positive(opt, 1000);
        } else if (opt == "--threads") {
            o.threads = unsigned(a.positive(opt, 1024));
        } else if (opt == "--ctx") {
            o.jetson.ctx = int(a.positive(opt, 1 << 24));
        } else if (opt == "--device") {
            o.device = a.value(opt);
            if (o.device != "cpu" && o.device != "cuda") a.fail("--device takes cpu or cuda, not '" + o.device + "'");
        } else if (opt == "--force") {
            o.force = true;
        } else if (opt == "--json") {
            o.json = true;
        } else {
            a.unknown(opt);
        }
    }
    if (o.model.empty()) a.fail("-m MODEL is required");
    if (o.out.empty()) a.fail("-o DIR is required");
    if (schemes.empty()) a.fail("--schemes LIST|all is required");
#ifndef EDGEQ_CLI_CUDA
    if (o.device == "cuda") a.fail_plain("--device cuda: this edgeq was built without CUDA; use --device cpu");
#endif
    for (const std::string* f : {&o.model, &o.tokenizer, &o.eval, &o.calib, &o.prompts_file})
        if (!f->empty() && !exists(*f)) a.fail_plain("cannot find " + *f);
    if (!o.eval_bytes.empty()) {
        const std::size_t colon = o.eval_bytes.find(':');
        bool ok = colon != std::string::npos && colon > 0 && colon + 1 < o.eval_bytes.size();
        for (std::size_t i = 0; ok && i < o.eval_bytes.size(); ++i) ok = i == colon || (o.eval_bytes[i] >= '0' && o.eval_bytes[i] <= '9');
        if (!ok || o.eval.empty()) a.fail("--eval-bytes takes A:B (with --eval), not '" + o.eval_bytes + "'");
    }

    // The schemes: the baseline, then the list in its order, each once.
    o.schemes.push_back(o.baseline);
    for (const std::string& s : schemes == "all" ? curated() : split_list(schemes)) {
        bool safe = !s.empty() && s[0] != '.' && s[0] != '-';
        for (char c : s) safe = safe && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
        if (!safe) a.fail("'" + s + "' is not a scheme name (letters, digits, '-', '_', '.')");
        if (std::find(o.schemes.begin(), o.schemes.end(), s) == o.schemes.end()) o.schemes.push_back(s);
    }

    // The prompts, and the speed prompt (the start of the evaluation text, on one line).
    std::vector<std::string> prompts;
    if (!o.prompts_file.empty()) {
        std::ifstream in(o.prompts_file);
        std::string line;
        while (std::getline(in, line))
            if (line.find_first_not_of(" \t\r") != std::string::npos) prompts.push_back(line.substr(0, line.find_last_not_of("\r") + 1));
        if (prompts.empty()) a.fail_plain(o.prompts_file + " holds no prompt (one a line)");
    } else {
        prompts.assign(std::begin(default_prompts), std::end(default_prompts));
    }
    std::string speed_prompt = default_speed_text;
    if (!o.eval.empty()) {
        std::string text = bench::read_file(o.eval);
        if (!o.eval_bytes.empty()) {
            const std::size_t colon = o.eval_bytes.find(':');
            const std::size_t b0 = std::stoul(o.eval_bytes.substr(0, colon)), b1 = std::stoul(o.eval_bytes.substr(colon + 1));
            if (b1 <= b0 || b1 > text.size())
                a.fail("--eval-bytes takes A:B with A < B <= " + std::to_string(text.size()) + ", not '" + o.eval_bytes + "'");
            text = text.substr(b0, b1 - b0);
        }
        text = text.substr(0, o.speed_prompt_bytes);
        // Whole UTF-8 characters and words only, and one line.
        while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
        if (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80)) text.pop_back();
        const std::size_t sp = text.find_last_of(" \n");
        if (sp != std::string::npos && sp > text.size() / 2) text.resize(sp);
        for (char& c : text) c = c == '\n' || c == '\r' || c == '\t' ? ' ' : c;
        if (text.find_first_not_of(' ') != std::string::npos) speed_prompt = text;
    }
    if (o.speed_prompt_bytes < speed_prompt.size()) speed_prompt.resize(o.speed_prompt_bytes);

    make_dir(o.out);
    o.out = real_path(o.out);  // the children and gnuplot run elsewhere
    for (const char* d : {"/models", "/cache", "/logs", "/plots"}) make_dir(o.out + d);
    const std::string exe = bench::self_exe(nullptr);

    bench::run_info info;
    info.model = o.model;
    info.command = command;
    info.date = bench::utc_now();
    info.device = o.device;
    info.machine = bench::describe_machine();
    info.jetson = o.jetson;
    info.options = {{"schemes", o.schemes},     {"baseline", o.baseline},     {"eval", o.eval},
                    {"eval_bytes", o.eval_bytes}, {"protocol", o.protocol},   {"ppl_ctx", o.ppl_ctx},
                    {"ppl_chunks", o.ppl_chunks}, {"calib", o.calib},         {"nsamples", o.nsamples},
                    {"seqlen", o.seqlen},         {"prompts", prompts},       {"answer_tokens", o.answer_tokens},
                    {"speed_prompt", speed_prompt}, {"speed_prompt_bytes", o.speed_prompt_bytes},
                    {"speed_tokens", o.speed_tokens}, {"runs", o.runs},       {"threads", o.threads}};

    std::vector<bench::row> rows(o.schemes.size());
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i].scheme = o.schemes[i], rows[i].baseline = i == 0;
    auto finished = [&rows]() {
        std::vector<bench::row> done;
        for (const bench::row& r : rows)
            if (r.status != "pending") done.push_back(r);
        return done;
    };
    // Writes everything but the plots (after each scheme), or everything (at the end).
    auto write_outputs = [&](bool plots) {
        std::vector<bench::row> done = finished();
        bench::fill_derived(done, o.jetson);
        std::string note = plots ? "" : "The plots are drawn when the run ends.";
        std::vector<std::string> made;
        if (plots) made = bench::write_plots(done, o.out, note, std::function<void()>());
        bench::write_atomic(o.out + "/results.csv", bench::results_csv(done));
        bench::write_atomic(o.out + "/results.json", bench::results_json(done, info));
        bench::write_atomic(o.out + "/report.md", bench::report_md(done, info, made, note));
        if (plots && !note.empty()) std::fprintf(stderr, "edgeq bench: %s\n", note.c_str());
        return std::make_pair(done, made);
    };

    bench_run runner(o, exe, prompts, speed_prompt);
    bool stopped = false;
    {
        bench::interrupt_guard guard;
        std::fprintf(stderr, "edgeq bench: %zu schemes on %s (baseline %s), results in %s\n", rows.size(), o.model.c_str(),
                     o.baseline.c_str(), o.out.c_str());
        for (std::size_t i = 0; i < rows.size(); ++i) {
            try {
                runner.process(i, rows);
            } catch (const stop_request&) {
                stopped = true;
            }
            runner.display().line(summary_line(rows[i]));
            if (stopped) break;
            write_outputs(false);
        }
    }
    runner.display().clear();
    const auto out = write_outputs(true);
    if (stopped) {
        std::size_t n = 0;
        for (const bench::row& r : out.first) n += r.ok() || r.status == "failed";
        std::fprintf(stderr, "edgeq bench: interrupted; the %zu finished schemes are in %s (a re-run continues: finished work is cached)\n",
                     n, o.out.c_str());
        return 130;
    }
    if (o.json) std::fputs(bench::read_file(o.out + "/results.json").c_str(), stdout);
    else print_table(out.first);
    std::string plots;
    for (const std::string& p : out.second) plots += ", plots/" + p;
    std::fprintf(stderr, "\nwritten: %s/report.md, results.csv, results.json%s\n", o.out.c_str(), plots.c_str());
    if (!rows[0].ok()) {
        std::fprintf(stderr, "edgeq bench: the baseline %s failed: %s\n", rows[0].scheme.c_str(), rows[0].error.c_str());
        return 1;
    }
    return 0;
}

}  // namespace commands
