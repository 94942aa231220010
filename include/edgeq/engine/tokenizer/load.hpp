// load_tokenizer(path): picks the reader by file: *.json (Hugging Face tokenizer.json),
// *.model (SentencePiece), anything else as llama2.c tokenizer.bin. GGUF metadata goes
// through from_gguf_metadata() (gguf_vocab.hpp).
#pragma once
#include <memory>
#include <string>

#include "gguf_vocab.hpp"
#include "hf_json.hpp"
#include "llama2c.hpp"
#include "sp_model.hpp"

namespace edgeq {
namespace tok {

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// n_vocab: for llama2.c files, the model's vocabulary size (0: every piece in the file).
inline std::unique_ptr<tokenizer> load_tokenizer(const std::string& path, int n_vocab = 0) {
    if (ends_with(path, ".json")) return load_hf_tokenizer(path);
    if (ends_with(path, ".model")) return load_sentencepiece(path);
    return load_llama2c(path, n_vocab);
}

}  // namespace tok
}  // namespace edgeq
