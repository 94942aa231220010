// The common interface of edgeq's tokenizers. Readers (load.hpp's load_tokenizer picks one):
//   tokenizer.json (Hugging Face)   hf_json.hpp    -> spm_bpe (SentencePiece-style) or byte_bpe
//   tokenizer.model (SentencePiece) sp_model.hpp   -> spm_bpe with scores and byte fallback
//   tokenizer.bin (llama2.c)        llama2c.hpp    -> spm_bpe in run.c mode
//   GGUF tokenizer.ggml.* vectors   gguf_vocab.hpp -> spm_bpe ("llama") or byte_bpe ("gpt2")
// encode() and decode() are const and keep no state: one tokenizer may serve many threads.
#pragma once
#include <string>
#include <vector>

#include "vocab.hpp"

namespace edgeq {
namespace tok {

class tokenizer {
public:
    virtual ~tokenizer() = default;
    // Token ids of text; specials the vocabulary declares are matched in the text.
    virtual std::vector<int> encode(const std::string& text, bool add_bos, bool add_eos) const = 0;
    // The bytes of one token, for streaming: byte pieces become their byte, the SentencePiece
    // space mark becomes ' ', byte-level BPE characters become their bytes.
    virtual std::string decode(int id) const = 0;
    // Concatenated pieces; drops the one leading space a dummy prefix put there.
    virtual std::string decode(const std::vector<int>& ids) const {
        std::string s;
        for (int id : ids) s += decode(id);
        return s;
    }
    int bos() const { return voc_.bos; }
    int eos() const { return voc_.eos; }
    int n_vocab() const { return voc_.size(); }
    // Whether the model's own configuration adds BOS / EOS (Llama: BOS; Qwen2, GPT-2: none).
    bool add_bos_default() const { return add_bos_; }
    bool add_eos_default() const { return add_eos_; }
    const tok::vocab& vocabulary() const { return voc_; }

protected:
    tok::vocab voc_;
    bool add_bos_ = false, add_eos_ = false;
};

}  // namespace tok
}  // namespace edgeq
