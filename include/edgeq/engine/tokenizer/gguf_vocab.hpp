// A tokenizer from GGUF tokenizer.ggml.* metadata, passed as plain vectors so that this header
// does not depend on the GGUF reader:
//   model "llama": SentencePiece BPE with scores and token types (byte fallback after merging,
//                  as llama.cpp and SentencePiece do), dummy prefix per add_space_prefix;
//   model "gpt2":  byte-level BPE with merges ("left right") and the pre-tokenizer named by
//                  tokenizer.ggml.pre.
// Control and user-defined tokens are matched in the text (as Hugging Face does, and as
// llama.cpp does with parse_special).
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
};

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
        o.fuse_unk = false;
        o.add_bos = d.add_bos;
        o.add_eos = d.add_eos;
        return std::unique_ptr<tokenizer>(new spm_bpe(std::move(v), o, {}, specials));
    }
    if (d.model == "gpt2") {
        std::vector<std::pair<std::string, std::string>> merges;
        merges.reserve(d.merges.size());
        for (const std::string& m : d.merges) {
            const std::size_t sp = m.find(' ', 1);
            if (sp == std::string::npos) throw error("tokenizer: bad GGUF merge '" + m + "'");
            merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
        }
        byte_bpe_options o;
        o.pretok = pretokenizer_for_gguf(d.pre);
        o.ignore_merges = o.pretok == pretokenizer::llama3;  // as llama.cpp does for Llama 3
        o.add_bos = d.add_bos;
        o.add_eos = d.add_eos;
        return std::unique_ptr<tokenizer>(new byte_bpe(std::move(v), o, merges, specials));
    }
    throw error("tokenizer: GGUF tokenizer model '" + d.model + "' is not supported (llama and gpt2 are)");
}

}  // namespace tok
}  // namespace edgeq
