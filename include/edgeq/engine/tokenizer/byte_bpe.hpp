// GPT-2-style byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2): special tokens split the raw
// text, a pre-tokenizer cuts it into words, each byte of a word is written as a printable
// code point (GPT-2's bytes_to_unicode: ' ' -> 'Ġ'), and pieces merge by the rank of the pair.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpe_merge.hpp"
#include "pretokenize.hpp"
#include "special_split.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace edgeq {
namespace tok {

struct byte_bpe_options {
    pretokenizer pretok = pretokenizer::gpt2;
    bool ignore_merges = false;  // HF (Llama 3): a word that is a piece is taken whole
    bool add_bos = false, add_eos = false;
};

// GPT-2's map: printable Latin-1 bytes stand for themselves, the other 68 bytes take the code
// points 256, 257, ... in byte order.
inline std::uint32_t byte_to_unicode(unsigned char b) {
    auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174; };
    if (printable(b)) return b;
    std::uint32_t n = 0;
    for (int c = 0; c < b; ++c) if (!printable(c)) ++n;
    return 256 + n;
}

class byte_bpe : public tokenizer {
public:
    byte_bpe(tok::vocab voc, const byte_bpe_options& opt,
             const std::vector<std::pair<std::string, std::string>>& merges,
             const std::vector<special_token>& specials = {})
        : opt_(opt), merges_(merges), specials_list_(specials) {
        voc_ = std::move(voc);
        add_bos_ = opt_.add_bos;
        add_eos_ = opt_.add_eos;
        for (int b = 0; b < 256; ++b) {
            std::string s;
            utf8_append(s, byte_to_unicode(static_cast<unsigned char>(b)));
            byte_char_[b] = s;
            unicode_byte_[byte_to_unicode(static_cast<unsigned char>(b))] = static_cast<unsigned char>(b);
        }
        n_merges_ = merges.size();
        ranks_.reserve(merges.size() * 2);
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const int a = voc_.find(merges[r].first), b = voc_.find(merges[r].second);
            const int m = voc_.find(merges[r].first + merges[r].second);
            if (a < 0 || b < 0 || m < 0)
                throw error("tokenizer: merge '" + merges[r].first + " " + merges[r].second +
                            "' uses a piece that is not in the vocabulary");
            ranks_.emplace(key(a, b), std::make_pair(static_cast<int>(r), m));
        }
        for (const special_token& s : specials) specials_.add(s.content, s.id);
    }

    std::vector<int> encode(const std::string& text, bool add_bos, bool add_eos) const override {
        std::vector<int> out;
        if (add_bos && voc_.bos >= 0) out.push_back(voc_.bos);
        for (const fragment& f : specials_.split(text)) {
            if (f.id >= 0) { out.push_back(f.id); continue; }
            for (const std::string& w : pretokenize(f.text, opt_.pretok)) encode_word(w, out);
        }
        if (add_eos && voc_.eos >= 0) out.push_back(voc_.eos);
        return out;
    }

    std::string decode(int id) const override {
        voc_.check_id(id);
        if (voc_.types[id] == control) return std::string();
        const std::string& p = voc_.pieces[id];
        std::string s;
        for (std::size_t i = 0; i < p.size();) {
            std::size_t n;
            const std::uint32_t cp = utf8_decode(p, i, n);
            const auto it = unicode_byte_.find(cp);
            if (it != unicode_byte_.end()) s += static_cast<char>(it->second);
            else s.append(p, i, n);  // a user-defined piece written as plain text
            i += n;
        }
        return s;
    }

    const byte_bpe_options& options() const { return opt_; }
    // What it was built from, for writers (a GGUF converter).
    const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
    const std::vector<special_token>& specials() const { return specials_list_; }

private:
    static std::uint64_t key(int a, int b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    void encode_word(const std::string& raw, std::vector<int>& out) const {
        std::string w;
        for (char c : raw) w += byte_char_[static_cast<unsigned char>(c)];
        if (opt_.ignore_merges) {
            const int id = voc_.find(w);
            if (id >= 0) { out.push_back(id); return; }
        }
        std::vector<bpe_symbol> syms;
        syms.reserve(w.size());
        for (std::size_t i = 0; i < w.size();) {
            std::size_t n;
            utf8_decode(w, i, n);
            const int id = voc_.find(w.substr(i, n));
            if (id < 0) throw error("tokenizer: the byte-level vocabulary lacks the piece for a byte");
            bpe_push(syms, static_cast<int>(i), static_cast<int>(n), id);
            i += n;
        }
        bpe_merge(syms, static_cast<std::uint32_t>(n_merges_),
                  [&](const bpe_symbol& l, const bpe_symbol& r, std::uint32_t& k, int& id) {
            const auto it = ranks_.find(key(l.id, r.id));
            if (it == ranks_.end()) return false;
            k = static_cast<std::uint32_t>(it->second.first);
            id = it->second.second;
            return true;
        });
        for (int i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
    }

    byte_bpe_options opt_;
    std::vector<std::pair<std::string, std::string>> merges_;
    std::vector<special_token> specials_list_;
    std::string byte_char_[256];
    std::unordered_map<std::uint32_t, unsigned char> unicode_byte_;
    std::unordered_map<std::uint64_t, std::pair<int, int>> ranks_;  // (left, right) -> (rank, merged)
    std::size_t n_merges_ = 0;
    special_matcher specials_;
};

}  // namespace tok
}  // namespace edgeq
