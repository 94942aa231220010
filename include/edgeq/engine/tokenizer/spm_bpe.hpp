// SentencePiece-style BPE: text is normalized (an optional dummy-prefix space, every ' '
// written as U+2581 "▁"), split into code points, and merged. One class covers the four
// sources, which differ only in the options below:
//   - Hugging Face tokenizer.json (TinyStories-656K, Llama 2 HF): merges by rank of the pair;
//     unknown characters become byte pieces when the vocabulary has all 256, else <unk>, and
//     consecutive <unk>s fuse; "normalized" special tokens match in the normalized text in
//     their normalized form, so " <unk>" is the special token with its space.
//   - SentencePiece tokenizer.model and GGUF "llama": merges by score of the merged piece;
//     a symbol still unknown after merging falls back to its bytes.
//   - llama2.c tokenizer.bin: scores too, but ' ' stays ' ' and unknown code points become
//     bytes (id = byte + 3) before merging and never merge again.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpe_merge.hpp"
#include "special_split.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace edgeq {
namespace tok {

struct spm_options {
    bool rank_merges = false;          // true: merge list order (HF); false: piece scores
    std::string space = "\xE2\x96\x81";  // what ' ' becomes; llama2.c keeps " "
    bool dummy_prefix = true;          // one space before the text
    bool prefix_unless_space = false;  // HF Metaspace: no prefix when the text starts with ' '
    bool prefix_first_only = false;    // HF Metaspace prepend_scheme "first": only at the start
    bool collapse_spaces = false;      // SentencePiece remove_extra_whitespaces: trim, squeeze runs
    bool byte_fallback = true;         // unknown characters as <0xAB> pieces, if all 256 exist
    bool fallback_before_merge = false;  // HF and llama2.c decide per character before merging
    bool freeze_bytes = false;         // llama2.c: byte-fallback tokens never merge
    bool fuse_unk = true;              // consecutive <unk>s become one
    bool merge_any_type = false;       // llama2.c: any piece may be a merge result
    bool add_bos = true, add_eos = false;  // the model's defaults, for callers that ask
};

class spm_bpe : public tokenizer {
public:
    // voc must be indexed (vocab::index()). merges (HF only) are "left right" pairs in rank
    // order; specials are the strings to match in text with their ids.
    spm_bpe(tok::vocab voc, const spm_options& opt,
            const std::vector<std::pair<std::string, std::string>>& merges = {},
            const std::vector<special_token>& specials = {})
        : opt_(opt), merges_(merges), specials_(specials) {
        voc_ = std::move(voc);
        add_bos_ = opt_.add_bos;
        add_eos_ = opt_.add_eos;
        if (opt_.rank_merges) {
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
        }
        use_bytes_ = opt_.byte_fallback && voc_.has_byte_pieces();
        // Score merges: the key of a piece is the dense rank of its score, highest first, so
        // equal scores tie and the leftmost pair wins, as in SentencePiece and llama2.c.
        std::vector<float> distinct(voc_.scores);
        std::sort(distinct.begin(), distinct.end(), std::greater<float>());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        score_key_.resize(voc_.scores.size());
        for (std::size_t i = 0; i < voc_.scores.size(); ++i)
            score_key_[i] = static_cast<std::uint32_t>(
                std::lower_bound(distinct.begin(), distinct.end(), voc_.scores[i], std::greater<float>()) - distinct.begin());
        n_score_keys_ = static_cast<std::uint32_t>(distinct.size());
        for (const special_token& s : specials) {
            if (s.normalized) norm_specials_.add(normalize(s.content, opt_.dummy_prefix), s.id);
            else raw_specials_.add(s.content, s.id);
        }
    }

    std::vector<int> encode(const std::string& text, bool add_bos, bool add_eos) const override {
        std::vector<int> out;
        if (add_bos && voc_.bos >= 0) out.push_back(voc_.bos);
        // Raw-form specials split the text first; each fragment is normalized on its own (so it
        // gets the dummy prefix, as in HF and llama.cpp) and then split at normalized-form
        // specials (HF: "<unk>" matches as "▁<unk>", absorbing the space before it).
        bool first = true;
        for (const fragment& f : raw_specials_.split(opt_.collapse_spaces ? squeeze(text) : text)) {
            if (f.id >= 0) { out.push_back(f.id); first = false; continue; }
            const bool prefix = opt_.dummy_prefix && !f.text.empty() && (first || !opt_.prefix_first_only) &&
                                !(opt_.prefix_unless_space && f.text[0] == ' ');
            first = false;
            for (const fragment& g : norm_specials_.split(normalize(f.text, prefix))) {
                if (g.id >= 0) out.push_back(g.id);
                else encode_word(g.text, out);
            }
        }
        if (add_eos && voc_.eos >= 0) out.push_back(voc_.eos);
        return out;
    }

    std::string decode(int id) const override {
        voc_.check_id(id);
        const std::string& p = voc_.pieces[id];
        const int b = tok::vocab::byte_value(p);
        if (b >= 0) return std::string(1, static_cast<char>(b));  // <0xAB>, whatever its type
        if (voc_.types[id] == control) return std::string();
        std::string s;
        const std::string& sp = opt_.space;
        for (std::size_t i = 0; i < p.size();) {
            if (p.compare(i, sp.size(), sp) == 0) { s += ' '; i += sp.size(); }
            else s += p[i++];
        }
        return s;
    }

    std::string decode(const std::vector<int>& ids) const override {
        std::string s = tokenizer::decode(ids);
        if (opt_.dummy_prefix && !s.empty() && s[0] == ' ') s.erase(0, 1);
        return s;
    }

    const spm_options& options() const { return opt_; }
    // What it was built from, for writers (a GGUF converter).
    const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
    const std::vector<special_token>& specials() const { return specials_; }

private:
    static std::uint64_t key(int a, int b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    std::string normalize(const std::string& text, bool prefix) const {
        std::string s;
        s.reserve(text.size() + text.size() / 4 + 4);
        if (prefix) s += opt_.space;
        for (char c : text) {
            if (c == ' ') s += opt_.space;
            else s += c;
        }
        return s;
    }

    static std::string squeeze(const std::string& t) {
        std::string s;
        for (char c : t)
            if (c != ' ' || (!s.empty() && s.back() != ' ')) s += c;
        if (!s.empty() && s.back() == ' ') s.pop_back();
        return s;
    }

    bool mergeable(int id) const {
        const int t = voc_.types[id];
        return opt_.merge_any_type || t == normal || t == user_defined || t == unused;
    }

    // Pushes the symbol(s) for an unknown span: its bytes, or one <unk> fused with a previous one.
    void push_unknown(std::vector<bpe_symbol>& syms, int start, int len, bool& prev_unk) const {
        if (use_bytes_) {
            for (int k = 0; k < len; ++k) bpe_push(syms, start + k, 1, -2, opt_.freeze_bytes);  // id set below
            prev_unk = false;
            return;
        }
        if (opt_.fuse_unk && prev_unk) { syms.back().len += len; return; }
        bpe_push(syms, start, len, voc_.unk);
        prev_unk = true;
    }

    void encode_word(const std::string& w, std::vector<int>& out) const {
        if (w.empty()) return;
        std::vector<bpe_symbol> syms;
        syms.reserve(w.size());
        bool prev_unk = false;
        for (std::size_t i = 0; i < w.size();) {
            std::size_t n;
            utf8_decode(w, i, n);
            const int id = voc_.find(w.substr(i, n));
            if (id >= 0 || !opt_.fallback_before_merge) {
                bpe_push(syms, static_cast<int>(i), static_cast<int>(n), id);
                prev_unk = false;
            } else {
                push_unknown(syms, static_cast<int>(i), static_cast<int>(n), prev_unk);
            }
            i += n;
        }
        // Byte symbols were pushed with placeholder ids; give them their byte piece.
        for (bpe_symbol& s : syms)
            if (s.id == -2) s.id = voc_.byte_ids[static_cast<unsigned char>(w[s.start])];

        if (opt_.rank_merges) {
            bpe_merge(syms, static_cast<std::uint32_t>(n_merges_),
                      [&](const bpe_symbol& l, const bpe_symbol& r, std::uint32_t& k, int& id) {
                if (l.id < 0 || r.id < 0) return false;
                const auto it = ranks_.find(key(l.id, r.id));
                if (it == ranks_.end()) return false;
                k = static_cast<std::uint32_t>(it->second.first);
                id = it->second.second;
                return true;
            });
        } else {
            bpe_merge(syms, n_score_keys_,
                      [&](const bpe_symbol& l, const bpe_symbol& r, std::uint32_t& k, int& id) {
                id = voc_.find(w.substr(l.start, l.len + r.len));
                if (id < 0 || !mergeable(id)) return false;
                k = score_key_[id];
                return true;
            });
        }

        bool prev_unk_out = false;
        for (int i = 0; i >= 0; i = syms[i].next) {
            const bpe_symbol& s = syms[i];
            if (s.id >= 0) {
                if (!(opt_.fuse_unk && prev_unk_out && s.id == voc_.unk)) out.push_back(s.id);
                prev_unk_out = s.id == voc_.unk;
                continue;
            }
            // Still unknown after merging (SentencePiece): bytes, else <unk>.
            if (use_bytes_) {
                for (int k = 0; k < s.len; ++k) out.push_back(voc_.byte_ids[static_cast<unsigned char>(w[s.start + k])]);
                prev_unk_out = false;
            } else {
                if (voc_.unk < 0) throw error("tokenizer: text has a character outside the vocabulary, which has no <unk>");
                if (!(opt_.fuse_unk && prev_unk_out)) out.push_back(voc_.unk);
                prev_unk_out = true;
            }
        }
    }

    spm_options opt_;
    std::vector<std::pair<std::string, std::string>> merges_;
    std::vector<special_token> specials_;
    std::unordered_map<std::uint64_t, std::pair<int, int>> ranks_;  // (left, right) -> (rank, merged)
    std::size_t n_merges_ = 0;
    std::vector<std::uint32_t> score_key_;  // piece id -> rank of its score
    std::uint32_t n_score_keys_ = 0;
    bool use_bytes_ = false;
    special_matcher raw_specials_, norm_specials_;
};

}  // namespace tok
}  // namespace edgeq
