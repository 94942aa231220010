// Pre-tokenizers of byte-level BPE, hand-written as scanners over code points instead of
// std::regex (which has no \p{L}). Each returns the byte length of the next pre-token; the
// rules are the alternatives of the regex, tried in order, as the regex engine would.
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  llama3 with \p{N} one digit at a time
//   smollm: every digit alone (HF Digits(individual_digits)), then gpt2
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "unicode.hpp"

namespace edgeq {
namespace tok {

enum class pretokenizer { gpt2, llama3, qwen2, smollm };

namespace detail {

struct cp_text {
    std::vector<std::uint32_t> cp;  // code points
    std::vector<std::size_t> at;    // byte offset of each, plus the end
    explicit cp_text(const std::string& s) {
        for (std::size_t i = 0; i < s.size();) {
            std::size_t n;
            cp.push_back(utf8_decode(s, i, n));
            at.push_back(i);
            i += n;
        }
        at.push_back(s.size());
    }
    std::size_t size() const { return cp.size(); }
};

inline bool is_nl(std::uint32_t c) { return c == '\r' || c == '\n'; }
inline bool is_other(std::uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
inline std::uint32_t lower_ascii(std::uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// Length (in code points) of a contraction at i, or 0.
inline std::size_t contraction(const cp_text& t, std::size_t i, bool any_case) {
    if (t.cp[i] != '\'' || i + 1 >= t.size()) return 0;
    auto at = [&](std::size_t k) { return any_case ? lower_ascii(t.cp[k]) : t.cp[k]; };
    const std::uint32_t a = at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 < t.size()) {
        const std::uint32_t b = at(i + 2);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

template <class Pred>
inline std::size_t run(const cp_text& t, std::size_t i, Pred p) {
    while (i < t.size() && p(t.cp[i])) ++i;
    return i;
}

// \s+(?!\S)|\s+ at a white-space code point: the run, less its last code point when a
// non-space follows and the run is longer than one. With digits split off first (smollm), a
// digit ends the fragment the regex sees, so a run before one is taken whole.
inline std::size_t spaces(const cp_text& t, std::size_t i, bool digits_split = false) {
    const std::size_t e = run(t, i, is_space);
    if (e == t.size() || (digits_split && is_number(t.cp[e]))) return e;
    return e - i > 1 ? e - 1 : e;
}

inline std::size_t next_gpt2(const cp_text& t, std::size_t i, bool single_digits) {
    if (std::size_t c = contraction(t, i, false)) return i + c;
    if (single_digits && is_number(t.cp[i])) return i + 1;
    std::size_t j = (t.cp[i] == ' ' && i + 1 < t.size() && !is_space(t.cp[i + 1])) ? i + 1 : i;
    if (single_digits && j > i && is_number(t.cp[j])) j = i;  // the space stays in its own fragment
    const std::uint32_t c = t.cp[j];
    if (is_letter(c)) return run(t, j, is_letter);
    if (is_number(c)) return run(t, j, is_number);
    if (is_other(c)) return run(t, j, is_other);
    return spaces(t, i, single_digits);
}

inline std::size_t next_llama3(const cp_text& t, std::size_t i, std::size_t max_digits) {
    if (std::size_t c = contraction(t, i, true)) return i + c;
    const std::uint32_t c = t.cp[i];
    if (is_letter(c)) return run(t, i, is_letter);
    if (!is_nl(c) && !is_number(c) && i + 1 < t.size() && is_letter(t.cp[i + 1])) return run(t, i + 1, is_letter);
    if (is_number(c)) {
        std::size_t e = i;
        while (e < t.size() && e - i < max_digits && is_number(t.cp[e])) ++e;
        return e;
    }
    const std::size_t j = (c == ' ' && i + 1 < t.size() && is_other(t.cp[i + 1])) ? i + 1 : i;
    if (is_other(t.cp[j])) return run(t, run(t, j, is_other), is_nl);
    // White space: \s*[\r\n]+ ends after the last newline of the run, if it has one.
    const std::size_t e = run(t, i, is_space);
    for (std::size_t k = e; k > i; --k)
        if (is_nl(t.cp[k - 1])) return k;
    return spaces(t, i);
}

}  // namespace detail

// Splits text into pre-tokens (byte strings).
inline std::vector<std::string> pretokenize(const std::string& text, pretokenizer kind) {
    std::vector<std::string> out;
    const detail::cp_text t(text);
    for (std::size_t i = 0; i < t.size();) {
        std::size_t e;
        switch (kind) {
            case pretokenizer::gpt2: e = detail::next_gpt2(t, i, false); break;
            case pretokenizer::smollm: e = detail::next_gpt2(t, i, true); break;
            case pretokenizer::llama3: e = detail::next_llama3(t, i, 3); break;
            default: e = detail::next_llama3(t, i, 1); break;
        }
        if (e <= i) e = i + 1;  // cannot happen; keeps the loop finite
        out.push_back(text.substr(t.at[i], t.at[e] - t.at[i]));
        i = e;
    }
    return out;
}

// The pre-tokenizer of a Hugging Face Split regex ("" = the ByteLevel default, GPT-2's).
inline pretokenizer pretokenizer_for_regex(const std::string& re) {
    if (re.empty() || re.find("?\\p{L}+| ?\\p{N}+") != std::string::npos) return pretokenizer::gpt2;
    if (re.find("\\p{N}{1,3}") != std::string::npos) return pretokenizer::llama3;
    if (re.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|") != std::string::npos) return pretokenizer::qwen2;
    throw error("tokenizer: pre-tokenizer regex is not supported: " + re);
}

// The pre-tokenizer of GGUF tokenizer.ggml.pre.
inline pretokenizer pretokenizer_for_gguf(const std::string& pre) {
    if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "gpt-2") return pretokenizer::gpt2;
    if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") return pretokenizer::llama3;
    if (pre == "qwen2") return pretokenizer::qwen2;
    if (pre == "smollm") return pretokenizer::smollm;
    throw error("tokenizer: GGUF pre-tokenizer '" + pre + "' is not supported");
}

}  // namespace tok
}  // namespace edgeq
