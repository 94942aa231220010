// Input statistics of one linear layer, gathered from calibration activations:
//   - the GPTQ Hessian H = 2 X^T X / n (float64, cols x cols);
//   - the importance matrix E[x^2] per input column (llama.cpp's imatrix, the quant_options
//     importance of RTN and of ggml's weighted quantizers);
//   - the mean |x| per input column (AWQ's activation scale).
// X holds one token per row (n rows in all, added in batches of any size).
//
// The imatrix file functions read and write llama.cpp's legacy binary imatrix (.dat), so a file
// from llama-imatrix --output-format dat can be used, and ours can be given to llama-quantize.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "linalg.hpp"

namespace edgeq {

class input_stats {
   public:
    // with_hessian = false keeps only the per-column statistics (cols floats, not cols^2 doubles).
    explicit input_stats(std::size_t cols, bool with_hessian = true)
        : cols_(cols), with_hessian_(with_hessian), sum_sq_(cols, 0.0), sum_abs_(cols, 0.0), version_(next_version()) {
        if (with_hessian) xtx_.assign(cols * cols, 0.0);
    }

    std::size_t cols() const { return cols_; }
    std::size_t samples() const { return n_; }
    std::size_t calls() const { return calls_; }  // add() calls: llama.cpp's ncall
    bool has_hessian() const { return with_hessian_; }

    // Adds x.rows tokens: the per-column sums in float64, and X^T X (lower triangle, mirrored on
    // read) by the packed float kernel with float64 accumulation across 256-token slices
    // (linalg::gram_lower_add says what that costs in rounding), threaded over the pool.
    void add(matrix_view<const float> x, thread_pool& pool = default_pool()) {
        if (x.cols != cols_)
            throw error("input_stats::add: activations have " + std::to_string(x.cols) + " columns, the layer " +
                        std::to_string(cols_));
        // All checked first: a refused batch adds nothing.
        std::atomic<bool> bad(false);
        pool.parallel_for(x.rows, 64, [&](std::size_t t0, std::size_t t1) {
            for (std::size_t t = t0; t < t1 && !bad.load(std::memory_order_relaxed); ++t)
                for (std::size_t c = 0; c < cols_; ++c)
                    if (!std::isfinite(x(t, c))) bad = true;
        });
        if (bad)
            for (std::size_t t = 0; t < x.rows; ++t)
                for (std::size_t c = 0; c < cols_; ++c)
                    if (!std::isfinite(x(t, c)))
                        throw error("input_stats::add: activation row " + std::to_string(n_ + t) + ", column " +
                                    std::to_string(c) + " is not finite");
        // Threaded over columns: each column's sums still run over the tokens in order.
        pool.parallel_for(cols_, 64, [&](std::size_t c0, std::size_t c1) {
            for (std::size_t t = 0; t < x.rows; ++t) {
                const float* r = x.row(t);
                for (std::size_t c = c0; c < c1; ++c) {
                    const double v = r[c];
                    sum_sq_[c] += v * v;
                    sum_abs_[c] += std::fabs(v);
                }
            }
        });
        if (with_hessian_) linalg::gram_lower_add(x, xtx_.data(), cols_, pool);
        n_ += x.rows;
        ++calls_;
        version_ = next_version();
    }

    // Unique to this object in its current state, in this process (no two objects or states
    // share one; a copy shares its original's): what a cache of results computed from the
    // statistics (GPTQ's factor of H, shared by q, k and v) can be keyed on.
    std::uint64_t version() const { return version_; }

    // H = 2 X^T X / n, full and symmetric, row-major cols x cols.
    std::vector<double> hessian() const {
        if (!with_hessian_) throw error("input_stats: built without the Hessian");
        std::vector<double> h(cols_ * cols_, 0.0);
        const double f = n_ ? 2.0 / double(n_) : 0.0;
        // Mirrored in 64 x 64 tiles: a column-wise write per entry of ffn_down's 5632 x 5632
        // missed the cache on every one.
        constexpr std::size_t T = 64;
        for (std::size_t i0 = 0; i0 < cols_; i0 += T)
            for (std::size_t j0 = 0; j0 <= i0; j0 += T)
                for (std::size_t i = i0; i < std::min(cols_, i0 + T); ++i)
                    for (std::size_t j = j0; j < std::min(i + 1, j0 + T); ++j)
                        h[i * cols_ + j] = h[j * cols_ + i] = f * xtx_[i * cols_ + j];
        return h;
    }

    // E[x^2] per column: llama.cpp's imatrix values.
    std::vector<float> importance() const { return mean_of(sum_sq_); }
    // E[|x|] per column: AWQ's activation scale.
    std::vector<float> mean_abs() const { return mean_of(sum_abs_); }

   private:
    static std::uint64_t next_version() {
        static std::atomic<std::uint64_t> counter(0);
        return ++counter;
    }
    std::vector<float> mean_of(const std::vector<double>& s) const {
        std::vector<float> m(cols_, 0.0f);
        if (n_)
            for (std::size_t c = 0; c < cols_; ++c) m[c] = float(s[c] / double(n_));
        return m;
    }

    std::size_t cols_, n_ = 0, calls_ = 0;
    bool with_hessian_;
    std::vector<double> xtx_, sum_sq_, sum_abs_;
    std::uint64_t version_;
};

// ---- imatrix files ------------------------------------------------------------------------------

// One tensor's importance: E[x^2] per input column, gathered over ncall calls (chunks).
struct imatrix_entry {
    std::vector<float> values;
    int ncall = 1;
};

// llama.cpp's legacy imatrix layout (little-endian, as llama-imatrix writes it):
//   i32 n_entries
//   n_entries x { i32 len, char name[len], i32 ncall, i32 nval, f32 values[nval] }
//   i32 last_call, then optionally i32 len, char dataset[len]
// Each stored value is E[x^2] * ncall; readers divide by ncall. Names are GGUF tensor names
// ("blk.0.ffn_up.weight").
struct imatrix_file {
    std::map<std::string, imatrix_entry> entries;
    int last_call = 0;
    std::string dataset;
};

// The entry an input_stats gives a tensor's imatrix.
inline imatrix_entry to_imatrix(const input_stats& st) {
    imatrix_entry e;
    e.values = st.importance();
    e.ncall = std::max(1, int(st.calls()));
    return e;
}

namespace detail {

inline void imatrix_put_i32(std::string& out, std::int32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>((std::uint32_t(v) >> (8 * i)) & 0xffu);
    out.append(reinterpret_cast<const char*>(b), 4);
}

// A bounds-checked reader: every failure names the file and the byte offset.
struct imatrix_reader {
    const std::string& data;
    const std::string& path;
    std::size_t pos = 0;

    [[noreturn]] void fail(const std::string& why) const {
        throw error("imatrix file " + path + ": " + why + " at byte " + std::to_string(pos));
    }
    std::int32_t i32() {
        if (data.size() - pos < 4) fail("truncated (expected a 32-bit integer)");
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(data[pos + i])) << (8 * i);
        pos += 4;
        std::int32_t s;
        std::memcpy(&s, &v, 4);
        return s;
    }
    std::string bytes(std::int32_t n, const char* what) {
        if (n < 0 || std::size_t(n) > data.size() - pos) fail(std::string("bad ") + what + " length " + std::to_string(n));
        std::string s = data.substr(pos, std::size_t(n));
        pos += std::size_t(n);
        return s;
    }
};

}  // namespace detail

inline void save_imatrix(const std::string& path, const imatrix_file& f) {
    std::string out;
    detail::imatrix_put_i32(out, std::int32_t(f.entries.size()));
    for (const auto& kv : f.entries) {
        detail::imatrix_put_i32(out, std::int32_t(kv.first.size()));
        out += kv.first;
        detail::imatrix_put_i32(out, kv.second.ncall);
        detail::imatrix_put_i32(out, std::int32_t(kv.second.values.size()));
        for (float v : kv.second.values) {
            const float s = v * float(kv.second.ncall);
            std::uint32_t u;
            std::memcpy(&u, &s, 4);
            detail::imatrix_put_i32(out, std::int32_t(u));
        }
    }
    detail::imatrix_put_i32(out, f.last_call);
    detail::imatrix_put_i32(out, std::int32_t(f.dataset.size()));
    out += f.dataset;

    const std::string tmp = path + ".tmp";
    std::FILE* fp = std::fopen(tmp.c_str(), "wb");
    if (!fp) throw error("cannot write imatrix file " + tmp);
    const bool ok = std::fwrite(out.data(), 1, out.size(), fp) == out.size();
    if (std::fclose(fp) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw error("cannot write imatrix file " + path);
    }
}

// Reads a legacy imatrix file; values come back as E[x^2] (divided by ncall). Refuses a truncated
// or inconsistent file, negative or absurd counts, non-finite or negative values, duplicate names.
inline imatrix_file load_imatrix(const std::string& path) {
    std::string data;
    {
        std::FILE* fp = std::fopen(path.c_str(), "rb");
        if (!fp) throw error("cannot open imatrix file " + path);
        char buf[1 << 16];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, fp)) > 0;) data.append(buf, n);
        std::fclose(fp);
    }
    detail::imatrix_reader in{data, path};
    imatrix_file f;
    const std::int32_t n_entries = in.i32();
    if (n_entries < 1) in.fail("no entries (count " + std::to_string(n_entries) + ")");
    for (std::int32_t e = 0; e < n_entries; ++e) {
        const std::int32_t len = in.i32();
        if (len < 1 || len > 4096) in.fail("bad tensor name length " + std::to_string(len));
        std::string name = in.bytes(len, "tensor name");
        imatrix_entry entry;
        entry.ncall = in.i32();
        const std::int32_t nval = in.i32();
        if (nval < 1 || std::size_t(nval) > (data.size() - in.pos) / 4)
            in.fail("tensor " + name + " claims " + std::to_string(nval) + " values");
        entry.values.resize(std::size_t(nval));
        for (float& v : entry.values) {
            const std::int32_t raw = in.i32();
            std::memcpy(&v, &raw, 4);
            if (!std::isfinite(v) || v < 0.0f) in.fail("tensor " + name + " has a negative or non-finite value");
            if (entry.ncall > 0) v /= float(entry.ncall);
        }
        if (entry.ncall < 0) in.fail("tensor " + name + " has a negative call count");
        if (!f.entries.emplace(std::move(name), std::move(entry)).second) in.fail("duplicate tensor name");
    }
    // The trailer is optional in old files: the last call count, then the dataset name.
    if (in.pos < data.size()) f.last_call = in.i32();
    if (in.pos < data.size()) f.dataset = in.bytes(in.i32(), "dataset name");
    if (in.pos != data.size()) in.fail(std::to_string(data.size() - in.pos) + " unexpected trailing bytes");
    return f;
}

}  // namespace edgeq
