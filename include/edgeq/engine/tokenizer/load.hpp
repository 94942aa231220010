// load_tokenizer(path): picks the reader by file: *.json (Hugging Face tokenizer.json),
// *.model (SentencePiece), a GGUF model (*.gguf or the GGUF magic: its tokenizer.ggml.*
// metadata through from_gguf_metadata(), gguf_vocab.hpp), anything else as llama2.c
// tokenizer.bin.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "../../io/gguf.hpp"
#include "gguf_vocab.hpp"
#include "hf_json.hpp"
#include "llama2c.hpp"
#include "sp_model.hpp"

namespace edgeq {
namespace tok {

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The tokenizer.ggml.* (and edgeq.tokenizer.*) metadata of a GGUF file.
inline gguf_tokenizer_data gguf_tokenizer_metadata(const io::gguf::file& f) {
    gguf_tokenizer_data d;
    if (!f.has("tokenizer.ggml.model"))
        throw error("tokenizer: " + f.path() + " has no tokenizer (tokenizer.ggml.model is missing); pass one with -t");
    d.model = f.get_string("tokenizer.ggml.model");
    if (f.has("tokenizer.ggml.pre")) d.pre = f.get_string("tokenizer.ggml.pre");
    d.tokens = f.get_strings("tokenizer.ggml.tokens");
    if (f.has("tokenizer.ggml.scores")) d.scores = f.get_array<float>("tokenizer.ggml.scores");
    if (f.has("tokenizer.ggml.token_type")) d.token_type = f.get_array<std::int32_t>("tokenizer.ggml.token_type");
    if (f.has("tokenizer.ggml.merges")) d.merges = f.get_strings("tokenizer.ggml.merges");
    auto id = [&](const char* key) { return f.has(key) ? int(std::min<std::uint64_t>(f.get_uint(key), 0x7fffffff)) : -1; };
    d.bos = id("tokenizer.ggml.bos_token_id");
    d.eos = id("tokenizer.ggml.eos_token_id");
    d.unk = id("tokenizer.ggml.unknown_token_id");
    auto flag = [&](const char* key, bool def) { return f.has(key) ? f.get_bool(key) : def; };
    d.add_bos = flag("tokenizer.ggml.add_bos_token", d.model == "llama");
    d.add_eos = flag("tokenizer.ggml.add_eos_token", false);
    d.add_space_prefix = flag("tokenizer.ggml.add_space_prefix", d.model == "llama");
    d.fuse_unk = flag("edgeq.tokenizer.fuse_unk", false);
    d.normalized_specials = flag("edgeq.tokenizer.normalized_specials", false);
    d.parse_special = flag("edgeq.tokenizer.parse_special", true);
    return d;
}

inline bool has_gguf_magic(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char m[4] = {};
    return f.read(m, 4) && std::memcmp(m, "GGUF", 4) == 0;
}

// n_vocab: for llama2.c files, the model's vocabulary size (0: every piece in the file).
inline std::unique_ptr<tokenizer> load_tokenizer(const std::string& path, int n_vocab = 0) {
    if (ends_with(path, ".json")) return load_hf_tokenizer(path);
    if (ends_with(path, ".model")) return load_sentencepiece(path);
    if (ends_with(path, ".gguf") || has_gguf_magic(path)) return from_gguf_metadata(gguf_tokenizer_metadata(io::gguf::file(path)));
    return load_llama2c(path, n_vocab);
}

}  // namespace tok
}  // namespace edgeq
