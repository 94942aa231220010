// A tokenizer from GGUF tokenizer.ggml.* metadata, passed as plain vectors so that this header
// does not depend on the GGUF reader:
//   model "llama": SentencePiece BPE with scores and token types (byte fallback after merging,
//                  as llama.cpp and SentencePiece do), dummy prefix per add_space_prefix;
//   model "gpt2":  byte-level BPE with merges ("left right") and the pre-tokenizer named by
//                  tokenizer.ggml.pre.
// Control and user-defined tokens are matched in the text (as Hugging Face does, and as
// llama.cpp does with parse_special).
//
// edgeq's converter keeps a Hugging Face SentencePiece-style tokenizer.json exact in a "llama"
// vocabulary: it adds tokenizer.ggml.merges (llama.cpp reads merges only for "gpt2", so it
// ignores them) and scores that follow the merge order (so llama.cpp's score merging comes
// close), plus private keys for what GGUF cannot say:
//   edgeq.tokenizer.fuse_unk             bool: consecutive unknown characters give one <unk>
//   edgeq.tokenizer.normalized_specials  bool: control tokens match in normalized text in their
//                                        normalized form (HF "normalized": "▁<unk>")
//   edgeq.tokenizer.parse_special        bool, default true: false when the source matched no
//                                        special tokens in text (llama2.c: "<unk>" is plain text)
// A "llama" vocabulary with merges is then merged by rank, per character before merging, as
// tokenizers does. to_gguf_metadata() is the converse: a tokenizer as these vectors.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "byte_bpe.hpp"
#include "spm_bpe.hpp"

namespace edgeq {
namespace tok {

struct gguf_tokenizer_data {
    std::string model;                 // tokenizer.ggml.model
    std::string pre;                   // tokenizer.ggml.pre ("" = default)
    std::vector<std::string> tokens;   // tokenizer.ggml.tokens
    std::vector<float> scores;         // tokenizer.ggml.scores (may be empty for gpt2)
    std::vector<int> token_type;       // tokenizer.ggml.token_type (may be empty)
    std::vector<std::string> merges;   // tokenizer.ggml.merges (gpt2)
    int bos = -1, eos = -1, unk = -1;  // tokenizer.ggml.{bos,eos,unknown}_token_id
    bool add_bos = true, add_eos = false;  // tokenizer.ggml.add_{bos,eos}_token
    bool add_space_prefix = true;      // tokenizer.ggml.add_space_prefix (llama)
    bool parse_special = true;         // match control tokens in text
    bool fuse_unk = false;             // edgeq.tokenizer.fuse_unk
    bool normalized_specials = false;  // edgeq.tokenizer.normalized_specials
};

// "left right" -> (left, right); pieces hold no ' ' (SentencePiece writes it as U+2581).
inline std::vector<std::pair<std::string, std::string>> split_merges(const std::vector<std::string>& in) {
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(in.size());
    for (const std::string& m : in) {
        const std::size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) throw error("tokenizer: bad GGUF merge '" + m + "'");
        merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    return merges;
}

inline std::unique_ptr<tokenizer> from_gguf_metadata(const gguf_tokenizer_data& d) {
    vocab v;
    v.pieces = d.tokens;
    v.scores = d.scores;
    v.types = d.token_type;
    v.index();
    auto valid = [&](int id) { return id >= 0 && id < v.size() ? id : -1; };
    v.bos = valid(d.bos); v.eos = valid(d.eos); v.unk = valid(d.unk);
    std::vector<special_token> specials;
    for (int i = 0; i < v.size(); ++i)
        if (v.types[i] == user_defined || (d.parse_special && v.types[i] == control))
            specials.push_back(special_token{v.pieces[i], i, false});

    if (d.model == "llama") {
        if (v.unk < 0) v.unk = v.find("<unk>");
        spm_options o;
        o.dummy_prefix = d.add_space_prefix;
        o.fuse_unk = d.fuse_unk;
        o.add_bos = d.add_bos;
        o.add_eos = d.add_eos;
        const std::vector<std::pair<std::string, std::string>> merges = split_merges(d.merges);
        if (!merges.empty()) {  // a Hugging Face tokenizer.json kept exact (see the top)
            o.rank_merges = true;
            o.fallback_before_merge = true;
        }
        if (d.normalized_specials)
            for (special_token& s : specials) s.normalized = v.types[std::size_t(s.id)] == control;
        return std::unique_ptr<tokenizer>(new spm_bpe(std::move(v), o, merges, specials));
    }
    if (d.model == "gpt2") {
        const std::vector<std::pair<std::string, std::string>> merges = split_merges(d.merges);
        byte_bpe_options o;
        o.pretok = pretokenizer_for_gguf(d.pre);
        o.ignore_merges = o.pretok == pretokenizer::llama3;  // as llama.cpp does for Llama 3
        o.add_bos = d.add_bos;
        o.add_eos = d.add_eos;
        return std::unique_ptr<tokenizer>(new byte_bpe(std::move(v), o, merges, specials));
    }
    throw error("tokenizer: GGUF tokenizer model '" + d.model + "' is not supported (llama and gpt2 are)");
}

// The GGUF name of a pre-tokenizer (tokenizer.ggml.pre), as llama.cpp spells it.
inline const char* gguf_pre_name(pretokenizer p) {
    switch (p) {
        case pretokenizer::llama3: return "llama-bpe";
        case pretokenizer::qwen2: return "qwen2";
        case pretokenizer::smollm: return "smollm";
        default: return "gpt-2";
    }
}

// A tokenizer as GGUF vectors, for a converter: from_gguf_metadata(to_gguf_metadata(t)) encodes
// as t does. SentencePiece-style vocabularies become "llama" (pieces with the space mark U+2581,
// as llama.cpp expects: llama2.c's " " is rewritten), byte-level ones "gpt2".
inline gguf_tokenizer_data to_gguf_metadata(const tokenizer& t) {
    const vocab& v = t.vocabulary();
    gguf_tokenizer_data d;
    d.tokens = v.pieces;
    d.token_type = v.types;
    d.bos = v.bos;
    d.eos = v.eos;
    d.unk = v.unk;
    d.add_bos = t.add_bos_default();
    d.add_eos = t.add_eos_default();
    auto join = [](const std::vector<std::pair<std::string, std::string>>& m) {
        std::vector<std::string> out;
        out.reserve(m.size());
        for (const auto& x : m) out.push_back(x.first + " " + x.second);
        return out;
    };
    if (const spm_bpe* s = dynamic_cast<const spm_bpe*>(&t)) {
        const spm_options& o = s->options();
        d.parse_special = !s->specials().empty();
        const std::string mark = "\xE2\x96\x81";
        d.model = "llama";
        d.pre = "default";
        d.add_space_prefix = o.dummy_prefix;
        d.fuse_unk = o.fuse_unk;
        if (o.rank_merges) {
            // Scores in merge order: the piece made by merge r scores -r - 1, the rest 0; with
            // them llama.cpp's score merging follows the merge list where the pairs allow it.
            d.merges = join(s->merges());
            d.scores.assign(v.pieces.size(), 0.0f);
            for (std::size_t r = s->merges().size(); r-- > 0;) {
                const int id = v.find(s->merges()[r].first + s->merges()[r].second);
                if (id >= 0) d.scores[std::size_t(id)] = -float(r) - 1.0f;
            }
            for (const special_token& sp : s->specials()) d.normalized_specials = d.normalized_specials || sp.normalized;
        } else {
            d.scores = v.scores;
        }
        if (o.space != mark) {  // llama2.c: pieces hold ' ' where GGUF holds U+2581
            for (std::size_t i = 0; i < d.tokens.size(); ++i) {
                if (d.token_type[i] == control || d.token_type[i] == byte) continue;
                std::string p;
                for (std::size_t k = 0; k < d.tokens[i].size();) {
                    if (d.tokens[i].compare(k, o.space.size(), o.space) == 0) {
                        p += mark;
                        k += o.space.size();
                    } else {
                        p += d.tokens[i][k++];
                    }
                }
                d.tokens[i] = p;
            }
            if (o.space != " ") throw error("tokenizer: a space mark other than U+2581 or ' ' cannot be written to GGUF");
        }
        return d;
    }
    if (const byte_bpe* b = dynamic_cast<const byte_bpe*>(&t)) {
        d.model = "gpt2";
        d.parse_special = !b->specials().empty();
        d.pre = gguf_pre_name(b->options().pretok);
        d.merges = join(b->merges());
        d.add_space_prefix = false;
        return d;
    }
    throw error("tokenizer: this tokenizer cannot be written as GGUF metadata");
}

}  // namespace tok
}  // namespace edgeq
