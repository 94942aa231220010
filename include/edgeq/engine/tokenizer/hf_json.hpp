// Hugging Face tokenizer.json with a BPE model. Two shapes are understood:
//   - SentencePiece-style (TinyStories-656K, Llama 2): normalizer Prepend("▁") + Replace(" ", "▁")
//     or a Metaspace pre-tokenizer without splitting; no pre-tokenizer otherwise.
//   - byte-level (GPT-2, Llama 3, Qwen2, SmolLM2): a ByteLevel pre-tokenizer, alone or after a
//     Split regex; see byte_bpe.hpp.
// BOS/EOS are not in tokenizer.json: they come from tokenizer_config.json next to it when
// present, else from well-known names.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "byte_bpe.hpp"
#include "file_util.hpp"
#include "spm_bpe.hpp"

namespace edgeq {
namespace tok {
namespace detail {

using json = nlohmann::json;

inline std::vector<std::pair<std::string, std::string>> hf_merges(const json& m) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!m.contains("merges")) return out;
    for (const json& e : m.at("merges")) {
        if (e.is_array() && e.size() == 2) {  // tokenizers >= 0.20 writes ["a", "b"]
            out.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
            continue;
        }
        const std::string s = e.get<std::string>();
        const std::size_t sp = s.find(' ', 1);  // pieces never contain ' ' in this form
        if (sp == std::string::npos) throw error("tokenizer: bad merge '" + s + "'");
        out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
    return out;
}

// Content of a token entry in tokenizer_config.json: a string or {"content": ...}.
inline std::string token_content(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_object() && j.contains("content")) return j.at("content").get<std::string>();
    return std::string();
}

inline void hf_special_ids(vocab& v, const std::string& json_path, bool& add_bos, bool& add_eos) {
    const std::string dir = json_path.substr(0, json_path.find_last_of('/') + 1);
    const std::string cfg = dir + "tokenizer_config.json";
    std::string bos, eos;
    if (json_path.find('/') != std::string::npos && file_exists(cfg)) {
        const json c = json::parse(read_file(cfg));
        if (c.contains("bos_token")) bos = token_content(c["bos_token"]);
        if (c.contains("eos_token")) eos = token_content(c["eos_token"]);
        if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) add_bos = c["add_bos_token"].get<bool>();
        if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) add_eos = c["add_eos_token"].get<bool>();
    }
    auto first_of = [&](std::initializer_list<const char*> names) {
        for (const char* n : names) { const int id = v.find(n); if (id >= 0) return id; }
        return -1;
    };
    v.bos = !bos.empty() ? v.find(bos) : first_of({"<s>", "<|begin_of_text|>", "<|startoftext|>"});
    v.eos = !eos.empty() ? v.find(eos) : first_of({"</s>", "<|end_of_text|>", "<|endoftext|>"});
}

// The byte-level pre-tokenizer steps we reproduce: ByteLevel with its GPT-2 regex, a Split
// regex (Llama 3, Qwen2) before a ByteLevel without one, or Digits(individual) before
// ByteLevel (SmolLM2). Anything else is refused rather than tokenized differently.
inline byte_bpe_options hf_byte_level_options(const json& j, const std::vector<json>& steps, const std::string& path) {
    byte_bpe_options o;
    o.ignore_merges = j.at("model").value("ignore_merges", false);
    const json norm = j.value("normalizer", json());
    // NFC (Qwen2) leaves text that is already NFC unchanged, which we assume.
    if (!norm.is_null() && norm.value("type", std::string()) != "NFC")
        throw error("tokenizer: " + path + ": normalizer " + norm.value("type", std::string("?")) +
                    " is not supported with byte-level BPE");
    std::string regex;
    bool digits = false, bytelevel_regex = false;
    for (const json& p : steps) {
        const std::string t = p.value("type", std::string());
        if (t == "ByteLevel") {
            if (p.value("add_prefix_space", false))
                throw error("tokenizer: " + path + ": ByteLevel add_prefix_space is not supported");
            bytelevel_regex = p.value("use_regex", true);
        } else if (t == "Split" && p.contains("pattern") && p["pattern"].contains("Regex")) {
            regex = p["pattern"]["Regex"].get<std::string>();
        } else if (t == "Digits" && p.value("individual_digits", false)) {
            digits = true;
        } else {
            throw error("tokenizer: " + path + ": pre-tokenizer step " + t + " is not supported");
        }
    }
    if (bytelevel_regex == !regex.empty() || (digits && !bytelevel_regex))
        throw error("tokenizer: " + path + ": this combination of pre-tokenizers is not supported");
    o.pretok = digits ? pretokenizer::smollm : pretokenizer_for_regex(regex);
    return o;
}

}  // namespace detail

// From a parsed tokenizer.json; path names it in messages and locates tokenizer_config.json.
inline std::unique_ptr<tokenizer> hf_tokenizer_from_json(const nlohmann::json& j, const std::string& path) {
    using detail::json;
    const json& m = j.at("model");
    if (m.value("type", std::string()) != "BPE")
        throw error("tokenizer: " + path + ": only BPE models are supported, not " + m.value("type", std::string("?")));

    vocab v;
    const json& jv = m.at("vocab");
    v.pieces.resize(jv.size());
    for (auto it = jv.begin(); it != jv.end(); ++it) {
        const int id = it.value().get<int>();
        if (id < 0) throw error("tokenizer: negative id in " + path);
        if (id >= static_cast<int>(v.pieces.size())) v.pieces.resize(id + 1);
        v.pieces[id] = it.key();
    }
    std::vector<special_token> specials;
    if (j.contains("added_tokens"))
        for (const json& a : j["added_tokens"]) {
            const int id = a.at("id").get<int>();
            if (id >= static_cast<int>(v.pieces.size())) v.pieces.resize(id + 1);
            v.pieces[id] = a.at("content").get<std::string>();
            specials.push_back(special_token{v.pieces[id], id, a.value("normalized", false)});
        }
    v.index();
    for (const special_token& s : specials) v.types[s.id] = control;
    if (m.contains("unk_token") && m["unk_token"].is_string()) v.unk = v.find(m["unk_token"].get<std::string>());

    bool add_bos = false, add_eos = false;
    detail::hf_special_ids(v, path, add_bos, add_eos);
    const auto merges = detail::hf_merges(m);

    // Byte-level when any pre-tokenizer step is ByteLevel.
    const json pre = j.value("pre_tokenizer", json());
    std::vector<json> steps;
    if (pre.is_object()) {
        if (pre.value("type", std::string()) == "Sequence") for (const json& p : pre.at("pretokenizers")) steps.push_back(p);
        else steps.push_back(pre);
    }
    bool byte_level = false;
    for (const json& p : steps) byte_level = byte_level || p.value("type", std::string()) == "ByteLevel";
    if (byte_level) {
        byte_bpe_options o = detail::hf_byte_level_options(j, steps, path);
        o.add_bos = add_bos;
        o.add_eos = add_eos;
        return std::unique_ptr<tokenizer>(new byte_bpe(std::move(v), o, merges, specials));
    }

    spm_options o;
    o.rank_merges = true;
    o.fallback_before_merge = true;
    o.byte_fallback = m.value("byte_fallback", false);
    o.fuse_unk = m.value("fuse_unk", false);
    o.dummy_prefix = false;
    o.add_bos = add_bos;
    o.add_eos = add_eos;
    bool space_replaced = false;
    const json norm = j.value("normalizer", json());
    std::vector<json> nsteps;
    if (norm.is_object()) {
        if (norm.value("type", std::string()) == "Sequence") for (const json& n : norm.at("normalizers")) nsteps.push_back(n);
        else nsteps.push_back(norm);
    }
    for (const json& n : nsteps) {
        const std::string t = n.value("type", std::string());
        if (t == "Prepend") {
            o.dummy_prefix = true;
            o.space = n.at("prepend").get<std::string>();
        } else if (t == "Replace" && n.at("pattern").contains("String") &&
                   n["pattern"]["String"].get<std::string>() == " ") {
            o.space = n.at("content").get<std::string>();
            space_replaced = true;
        } else {
            throw error("tokenizer: " + path + ": normalizer " + t + " is not supported");
        }
    }
    for (const json& p : steps) {
        const std::string t = p.value("type", std::string());
        if (t != "Metaspace") throw error("tokenizer: " + path + ": pre-tokenizer " + t + " is not supported");
        if (p.value("split", true)) throw error("tokenizer: " + path + ": Metaspace with split is not supported");
        o.space = p.value("replacement", std::string("\xE2\x96\x81"));
        const std::string scheme = p.value("prepend_scheme", std::string("always"));
        o.dummy_prefix = scheme != "never";
        o.prefix_first_only = scheme == "first";
        o.prefix_unless_space = true;
        space_replaced = true;
        // No normalizer then: a "normalized" special token is matched as written.
        for (special_token& s : specials) s.normalized = false;
    }
    if (!space_replaced && o.dummy_prefix) throw error("tokenizer: " + path + ": Prepend without replacing spaces is not supported");
    return std::unique_ptr<tokenizer>(new spm_bpe(std::move(v), o, merges, specials));
}

inline std::unique_ptr<tokenizer> load_hf_tokenizer(const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file(path));
        return hf_tokenizer_from_json(j, path);
    } catch (const nlohmann::json::exception& e) {
        throw error("tokenizer: " + path + " is not a tokenizer.json this reader understands: " + e.what());
    }
}

}  // namespace tok
}  // namespace edgeq
