// llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 length,
// the bytes. Encoding follows run.c encode(): a dummy-prefix " " token, each UTF-8 code
// point that is a piece becomes it, else its bytes (ids 3..258: "<0x00>".."<0xFF>"), then the
// adjacent pair whose concatenation is the highest-scoring piece merges, leftmost on ties.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "file_util.hpp"
#include "spm_bpe.hpp"

namespace edgeq {
namespace tok {

// n_vocab is not in the file: run.c takes it from the model header. 0 reads to the end.
inline std::unique_ptr<spm_bpe> load_llama2c(const std::string& path, int n_vocab = 0) {
    const std::string b = read_file(path);
    std::size_t off = 0;
    auto need = [&](std::size_t n) {
        if (off + n > b.size()) throw error("tokenizer: " + path + " is truncated (llama2.c tokenizer.bin)");
    };
    auto i32 = [&]() { need(4); std::int32_t v; std::memcpy(&v, b.data() + off, 4); off += 4; return v; };
    auto f32 = [&]() { need(4); float v; std::memcpy(&v, b.data() + off, 4); off += 4; return v; };
    const std::int32_t max_len = i32();
    if (max_len <= 0 || max_len > 1 << 16) throw error("tokenizer: " + path + " is not a llama2.c tokenizer.bin");
    vocab v;
    while (off < b.size() && (n_vocab <= 0 || v.size() < n_vocab)) {
        const float score = f32();
        const std::int32_t len = i32();
        if (len < 0 || len > max_len) throw error("tokenizer: " + path + ": bad piece length " + std::to_string(len));
        need(static_cast<std::size_t>(len));
        v.pieces.push_back(b.substr(off, static_cast<std::size_t>(len)));
        v.scores.push_back(score);
        off += static_cast<std::size_t>(len);
    }
    if (n_vocab > 0 && v.size() != n_vocab) throw error("tokenizer: " + path + " has fewer than " + std::to_string(n_vocab) + " pieces");
    v.index();
    // run.c's byte fallback is id = byte + 3, i.e. exactly the "<0xAB>" pieces.
    for (int i = 0; i < 256; ++i)
        if (v.byte_ids[i] != i + 3) throw error("tokenizer: " + path + " lacks the byte pieces at ids 3..258");
    for (int i = 0; i < 259 && i < v.size(); ++i) v.types[i] = i < 3 ? control : byte;
    v.unk = 0; v.bos = 1; v.eos = 2;
    spm_options o;
    o.space = " ";
    o.fallback_before_merge = true;
    o.freeze_bytes = true;
    o.merge_any_type = true;
    o.fuse_unk = false;
    return std::unique_ptr<spm_bpe>(new spm_bpe(std::move(v), o));
}

}  // namespace tok
}  // namespace edgeq
