// Small helpers shared by the edgeq subcommands: option parsing, tables, JSON.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>

namespace cli {

// A mistake on the command line: one line on stderr, exit code 2.
struct usage_error : std::runtime_error {
    explicit usage_error(const std::string& what) : std::runtime_error(what) {}
};

// The arguments after the subcommand, with "--name=value" split into "--name" "value".
class args {
   public:
    args(const std::string& command, int argc, char** argv) : command_(command) {
        for (int i = 0; i < argc; ++i) {
            const std::string a = argv[i];
            const std::size_t eq = a.find('=');
            if (a.compare(0, 2, "--") == 0 && eq != std::string::npos) {
                v_.push_back(a.substr(0, eq));
                v_.push_back(a.substr(eq + 1));
                glued_.push_back(true);
                glued_.push_back(true);
            } else {
                v_.push_back(a);
                glued_.push_back(false);
            }
        }
    }

    bool done() const { return i_ >= v_.size(); }
    // The next option name; anything that is not an option is an error.
    std::string next_option() {
        const std::string& a = v_[i_++];
        if (a.size() < 2 || a[0] != '-') fail("unexpected argument '" + a + "'");
        return a;
    }
    // The value of the option just read.
    std::string value(const std::string& option) {
        if (i_ >= v_.size() || (!glued_[i_] && v_[i_].compare(0, 2, "--") == 0)) fail(option + " needs a value");
        return v_[i_++];
    }
    std::size_t positive(const std::string& option, std::size_t max) {
        const std::string s = value(option);
        std::size_t n = 0;
        bool ok = !s.empty() && s.size() <= 12;
        for (char c : s) ok = ok && c >= '0' && c <= '9';
        if (ok) n = std::stoul(s);
        if (!ok || n == 0 || n > max)
            fail(option + " takes a whole number from 1 to " + std::to_string(max) + ", not '" + s + "'");
        return n;
    }
    double fraction(const std::string& option) {
        const std::string s = value(option);
        std::size_t used = 0;
        double d = -1;
        try {
            d = std::stod(s, &used);
        } catch (const std::exception&) {
        }
        if (used != s.size() || !(d >= 0.0 && d <= 1.0)) fail(option + " takes a number from 0 to 1, not '" + s + "'");
        return d;
    }
    // A flag that does not belong to the command.
    [[noreturn]] void unknown(const std::string& option) const { fail("unknown option '" + option + "'"); }
    [[noreturn]] void fail(const std::string& what) const {
        throw usage_error("edgeq " + command_ + ": " + what + " (see 'edgeq " + command_ + " --help')");
    }
    // The same for a message that already says where to look.
    [[noreturn]] void fail_plain(const std::string& what) const { throw usage_error("edgeq " + command_ + ": " + what); }

   private:
    std::string command_;
    std::vector<std::string> v_;
    std::vector<bool> glued_;
    std::size_t i_ = 0;
};

// A text table with right-aligned numeric columns.
class table {
   public:
    explicit table(std::vector<std::string> header, std::vector<bool> right) : right_(std::move(right)) {
        rows_.push_back(std::move(header));
    }
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::FILE* out = stdout) const {
        std::vector<std::size_t> w(rows_[0].size(), 0);
        for (const auto& r : rows_)
            for (std::size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
        for (std::size_t k = 0; k < rows_.size(); ++k) {
            std::string line;
            for (std::size_t c = 0; c < rows_[k].size(); ++c) {
                const std::string pad(w[c] - rows_[k][c].size(), ' ');
                line += c ? "  " : "";
                line += right_[c] ? pad + rows_[k][c] : rows_[k][c] + (c + 1 < rows_[k].size() ? pad : "");
            }
            std::fprintf(out, "%s\n", line.c_str());
            if (k == 0) {
                std::size_t total = 0;
                for (std::size_t c = 0; c < w.size(); ++c) total += w[c] + (c ? 2 : 0);
                std::fprintf(out, "%s\n", std::string(total, '-').c_str());
            }
        }
    }

   private:
    std::vector<bool> right_;
    std::vector<std::vector<std::string>> rows_;
};

inline std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// 0.1234 -> "12.3%", 0.0245 -> "2.45%", 0.24 -> "24.0%": three significant digits.
inline std::string percent(double fraction) {
    const double p = 100.0 * fraction;
    return (p >= 99.95 ? fmt("%.0f", p) : fmt("%#.3g", p)) + "%";
}

// 1536 -> "1.50 KiB"
inline std::string bytes(double n) {
    const char* unit[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (n >= 1024.0 && u < 3) n /= 1024.0, ++u;
    return u ? fmt("%.2f ", n) + unit[u] : fmt("%.0f ", n) + unit[u];
}

// 0.0123 s -> "12.3 ms"
inline std::string seconds(double s) {
    if (s >= 1.0) return fmt("%.2f s", s);
    if (s >= 1e-3) return fmt("%.2f ms", s * 1e3);
    return fmt("%.1f us", s * 1e6);
}

// Length of the valid UTF-8 sequence at s[i] (1 to 4), or 0 when the bytes there are not one
// (a stray continuation byte, a truncated or overlong sequence, a surrogate, beyond U+10FFFF).
inline std::size_t utf8_length(const std::string& s, std::size_t i) {
    const auto at = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
    const unsigned c = at(i);
    const auto cont = [&](std::size_t k) { return (at(k) & 0xc0u) == 0x80u; };
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        const unsigned c1 = at(i + 1);
        if (!cont(i + 1) || !cont(i + 2) || (c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        const unsigned c1 = at(i + 1);
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) return 0;
        return 4;
    }
    return 0;
}

// A JSON string literal of s. Bytes that are not valid UTF-8 (a model may sample a token that
// ends mid-character) become U+FFFD, so the output is always valid JSON.
inline std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_length(s, i);
        const char c = s[i];
        if (n == 0) {
            o += "\\ufffd";
            i += 1;
        } else if (n > 1) {
            o.append(s, i, n);
            i += n;
        } else {
            if (c == '"' || c == '\\') o += '\\', o += c;
            else if (static_cast<unsigned char>(c) < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
                o += b;
            }
            else o += c;
            i += 1;
        }
    }
    return o + "\"";
}

// A double with 9 significant digits (JSON has no NaN or Inf: they become null).
inline std::string json_number(double v) {
    if (!(v == v) || v > 1.7e308 || v < -1.7e308) return "null";
    return fmt("%.9g", v);
}

// Peak resident memory of this process so far, in bytes (getrusage; Linux counts ru_maxrss in
// KiB, macOS in bytes); 0 when unknown.
inline double peak_rss_bytes() {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
#ifdef __APPLE__
    return double(u.ru_maxrss);
#else
    return double(u.ru_maxrss) * 1024.0;
#endif
}

}  // namespace cli
