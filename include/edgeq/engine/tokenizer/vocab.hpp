// The vocabulary every tokenizer shares: pieces, scores, SentencePiece/GGUF token types and
// the reverse map, plus the byte pieces <0x00>..<0xFF> that byte fallback uses.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "../../core/error.hpp"

namespace edgeq {
namespace tok {

// Token types as SentencePiece and GGUF (tokenizer.ggml.token_type) number them.
enum token_type : int { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct vocab {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<int> types;
    std::unordered_map<std::string, int> ids;
    int byte_ids[256];  // id of <0xAB>, or -1
    int bos = -1, eos = -1, unk = -1;

    vocab() { for (int& b : byte_ids) b = -1; }

    // Fills ids and byte_ids from pieces; scores and types default to 0 and normal. When a
    // piece occurs twice, the first id wins (as in SentencePiece and llama.cpp).
    void index() {
        if (scores.empty()) scores.assign(pieces.size(), 0.0f);
        if (types.empty()) types.assign(pieces.size(), normal);
        if (scores.size() != pieces.size() || types.size() != pieces.size())
            throw error("tokenizer: " + std::to_string(pieces.size()) + " pieces but " +
                        std::to_string(scores.size()) + " scores and " + std::to_string(types.size()) + " types");
        ids.clear();
        ids.reserve(pieces.size() * 2);
        for (int i = 0; i < static_cast<int>(pieces.size()); ++i) {
            ids.emplace(pieces[i], i);
            int b = byte_value(pieces[i]);
            if (b >= 0 && byte_ids[b] < 0) byte_ids[b] = i;
        }
    }

    int find(const std::string& piece) const {
        auto it = ids.find(piece);
        return it == ids.end() ? -1 : it->second;
    }
    int size() const { return static_cast<int>(pieces.size()); }
    bool has_byte_pieces() const {
        for (int b : byte_ids) if (b < 0) return false;
        return true;
    }

    // 0xAB for the piece "<0xAB>", else -1.
    static int byte_value(const std::string& p) {
        if (p.size() != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
        int v = 0;
        for (int k = 3; k < 5; ++k) {
            const char c = p[k];
            v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1000);
        }
        return v < 0 ? -1 : v;
    }
    void check_id(int id) const {
        if (id < 0 || id >= size())
            throw error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(size()));
    }
};

}  // namespace tok
}  // namespace edgeq
