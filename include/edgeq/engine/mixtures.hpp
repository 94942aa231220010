// llama.cpp's k-quant mixtures (q4_k_m, q3_k_s, ...): which block type each tensor of a Llama
// gets, as llama-quantize chooses it (src/llama-quant.cpp, llama_tensor_get_type, for the llama
// architecture without experts). A mixture is a base type plus more bits where errors cost most:
// attn_v and ffn_down in the first and last eighths of the layers and every third layer between,
// the classifier in Q6_K. Rows that the chosen type cannot hold fall back as llama.cpp does.
#pragma once
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace edgeq {
namespace engine {

inline const std::vector<std::string>& mixture_names() {
    static const std::vector<std::string> n = {"q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                                               "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
    return n;
}

inline bool is_mixture(const std::string& name) {
    for (const std::string& n : mixture_names())
        if (n == name) return true;
    return false;
}

// The role of a tensor, from its GGUF name.
enum class tensor_role { token_embd, output, attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down, other };

inline tensor_role role_of(const std::string& name) {
    auto has = [&name](const char* s) { return name.find(s) != std::string::npos; };
    if (name.compare(0, 10, "token_embd") == 0) return tensor_role::token_embd;
    if (name == "output" || name == "output.weight") return tensor_role::output;
    if (has(".attn_q")) return tensor_role::attn_q;
    if (has(".attn_k")) return tensor_role::attn_k;
    if (has(".attn_v")) return tensor_role::attn_v;
    if (has(".attn_output")) return tensor_role::attn_output;
    if (has(".ffn_gate")) return tensor_role::ffn_gate;
    if (has(".ffn_up")) return tensor_role::ffn_up;
    if (has(".ffn_down")) return tensor_role::ffn_down;
    return tensor_role::other;
}

// The type llama.cpp uses when a row length is not a multiple of 256 (the k-quants' block).
inline std::string k_fallback(const std::string& type) {
    if (type == "q2_k" || type == "q3_k") return "iq4_nl";
    if (type == "q4_k") return "q5_0";
    if (type == "q5_k") return "q5_1";
    if (type == "q6_k") return "q8_0";
    return type;
}

// The llama.cpp type of tensor `name` (GGUF name, "blk.3.ffn_down") in mixture `mix`, for a
// model of n_layers layers whose attention has n_gqa query heads per kv head, with rows of
// `row_length` weights. `tied`: the embedding is also the classifier (it is then typed as one).
inline std::string mixture_type(const std::string& mix, const std::string& name, int layer, int n_layers, int n_gqa,
                                std::size_t row_length, bool tied = false) {
    if (!is_mixture(mix)) throw error("unknown mixture '" + mix + "'");
    const std::string base = mix.substr(0, 4);  // q4_k_m -> q4_k
    auto more_bits = [n_layers](int i) { return i < n_layers / 8 || i >= 7 * n_layers / 8 || (i - n_layers / 8) % 3 == 2; };
    std::string t = base;
    switch (role_of(name)) {
        case tensor_role::output: t = "q6_k"; break;
        case tensor_role::token_embd: t = tied ? "q6_k" : base; break;
        case tensor_role::attn_v:
            if (mix == "q2_k") t = n_gqa >= 4 ? "q4_k" : "q3_k";
            else if (mix == "q3_k_m") t = layer < 2 ? "q5_k" : "q4_k";
            else if (mix == "q3_k_l") t = "q5_k";
            else if ((mix == "q4_k_m" || mix == "q5_k_m") && more_bits(layer)) t = "q6_k";
            else if (mix == "q4_k_s" && layer < 4) t = "q5_k";
            break;
        case tensor_role::ffn_down:
            if (mix == "q2_k") t = "q3_k";
            else if (mix == "q3_k_m") t = layer < n_layers / 16 ? "q5_k" : "q4_k";
            else if (mix == "q3_k_l") t = "q5_k";
            else if ((mix == "q4_k_m" || mix == "q5_k_m") && more_bits(layer)) t = "q6_k";
            else if (mix == "q4_k_s" && layer < n_layers / 8) t = "q5_k";
            break;
        case tensor_role::attn_output:
            if (mix == "q2_k") t = "q3_k";
            else if (mix == "q3_k_m") t = "q4_k";
            else if (mix == "q3_k_l") t = "q5_k";
            break;
        default: break;
    }
    if (row_length % 256) {
        // The classifier and a tied embedding fall back to Q8_0 outright; the others by type.
        const tensor_role r = role_of(name);
        t = r == tensor_role::output || (tied && r == tensor_role::token_embd) ? "q8_0" : k_fallback(t);
    }
    return t;
}

}  // namespace engine
}  // namespace edgeq
