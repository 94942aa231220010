// SentencePiece tokenizer.model: a protobuf ModelProto, of which we read only
//   1 pieces (repeated SentencePiece { 1 piece, 2 score (float), 3 type (enum, default 1) }),
//   2 trainer_spec { 3 model_type (2 = BPE), 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id },
//   3 normalizer_spec { 3 add_dummy_prefix, 4 remove_extra_whitespaces },
// with a minimal wire-format reader, and build the score-merging spm_bpe of the Llama 2
// tokenizer. Normalization rules (nmt_nfkc etc.) are not applied: Llama-family models use
// "identity".
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "file_util.hpp"
#include "spm_bpe.hpp"

namespace edgeq {
namespace tok {
namespace detail {

// One length-delimited protobuf message; next() walks its fields.
class pb_reader {
public:
    pb_reader(const char* p, std::size_t n) : p_(reinterpret_cast<const unsigned char*>(p)), end_(p_ + n) {}

    // Reads the next field's number and wire type; false at the end.
    bool next(int& field, int& wire) {
        if (p_ >= end_) return false;
        const std::uint64_t tag = varint();
        field = static_cast<int>(tag >> 3);
        wire = static_cast<int>(tag & 7);
        return true;
    }
    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            need(1);
            const unsigned char b = *p_++;
            v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
            if (!(b & 0x80)) return v;
        }
        throw error("tokenizer: bad varint in tokenizer.model");
    }
    float fixed32() {
        need(4);
        std::uint32_t u = static_cast<std::uint32_t>(p_[0]) | (static_cast<std::uint32_t>(p_[1]) << 8) |
                          (static_cast<std::uint32_t>(p_[2]) << 16) | (static_cast<std::uint32_t>(p_[3]) << 24);
        p_ += 4;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    pb_reader bytes() {
        const std::uint64_t n = varint();
        need(n);
        pb_reader r(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(n));
        p_ += n;
        return r;
    }
    std::string str() {
        pb_reader r = bytes();
        return std::string(reinterpret_cast<const char*>(r.p_), static_cast<std::size_t>(r.end_ - r.p_));
    }
    void skip(int wire) {
        switch (wire) {
            case 0: varint(); break;
            case 1: need(8); p_ += 8; break;
            case 2: bytes(); break;
            case 5: need(4); p_ += 4; break;
            default: throw error("tokenizer: unsupported protobuf wire type " + std::to_string(wire) + " in tokenizer.model");
        }
    }

private:
    void need(std::uint64_t n) const {
        if (n > static_cast<std::uint64_t>(end_ - p_)) throw error("tokenizer: tokenizer.model is truncated");
    }
    const unsigned char* p_;
    const unsigned char* end_;
};

}  // namespace detail

inline std::unique_ptr<spm_bpe> load_sentencepiece(const std::string& path) {
    const std::string b = read_file(path);
    detail::pb_reader model(b.data(), b.size());
    vocab v;
    int model_type = 1, unk = 0, bos = 1, eos = 2;
    bool byte_fallback = false, dummy_prefix = true, remove_extra = true;
    int field, wire;
    while (model.next(field, wire)) {
        if (field == 1 && wire == 2) {
            detail::pb_reader sp = model.bytes();
            std::string piece;
            float score = 0.0f;
            int type = normal;
            while (sp.next(field, wire)) {
                if (field == 1 && wire == 2) piece = sp.str();
                else if (field == 2 && wire == 5) score = sp.fixed32();
                else if (field == 3 && wire == 0) type = static_cast<int>(sp.varint());
                else sp.skip(wire);
            }
            v.pieces.push_back(piece);
            v.scores.push_back(score);
            v.types.push_back(type);
        } else if (field == 2 && wire == 2) {
            detail::pb_reader ts = model.bytes();
            while (ts.next(field, wire)) {
                if (wire != 0) { ts.skip(wire); continue; }
                const auto x = ts.varint();
                if (field == 3) model_type = static_cast<int>(x);
                else if (field == 35) byte_fallback = x != 0;
                else if (field == 40) unk = static_cast<int>(x);
                else if (field == 41) bos = static_cast<int>(x);
                else if (field == 42) eos = static_cast<int>(x);
            }
        } else if (field == 3 && wire == 2) {
            detail::pb_reader ns = model.bytes();
            while (ns.next(field, wire)) {
                if (wire != 0) { ns.skip(wire); continue; }
                const auto x = ns.varint();
                if (field == 3) dummy_prefix = x != 0;
                else if (field == 4) remove_extra = x != 0;
            }
        } else {
            model.skip(wire);
        }
    }
    if (v.pieces.empty()) throw error("tokenizer: " + path + " has no pieces (not a SentencePiece model?)");
    if (model_type != 2) throw error("tokenizer: " + path + " is a SentencePiece unigram model; only BPE is supported");
    v.index();
    // A bos/eos id of -1 means "none"; varint -1 reads as a huge number.
    auto id_or_none = [&](int id) { return id >= 0 && id < v.size() ? id : -1; };
    v.unk = id_or_none(unk); v.bos = id_or_none(bos); v.eos = id_or_none(eos);
    spm_options o;
    o.byte_fallback = byte_fallback;
    o.dummy_prefix = dummy_prefix;
    o.collapse_spaces = remove_extra;
    o.fuse_unk = false;
    std::vector<special_token> specials;
    for (int i = 0; i < v.size(); ++i)
        if (v.types[i] == user_defined) specials.push_back(special_token{v.pieces[i], i, false});
    return std::unique_ptr<spm_bpe>(new spm_bpe(std::move(v), o, {}, specials));
}

}  // namespace tok
}  // namespace edgeq
