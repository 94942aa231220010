// Splits text at special tokens, leftmost-longest first (as Hugging Face's added vocabulary
// and llama.cpp do). The few special strings are bucketed by first byte, so the scan is one
// pass over the text.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace edgeq {
namespace tok {

// A token matched in text as a whole: in raw text, or (normalized) after normalization, in
// its own normalized form.
struct special_token {
    std::string content;
    int id;
    bool normalized;
};

struct fragment {
    std::string text;  // when id < 0
    int id;            // a matched special token, else -1
};

class special_matcher {
public:
    void add(const std::string& form, int id) {
        if (form.empty()) return;
        by_first_[static_cast<unsigned char>(form[0])].emplace_back(form, id);
        ++n_;
    }
    bool empty() const { return n_ == 0; }
    std::vector<fragment> split(const std::string& text) const {
        std::vector<fragment> out;
        if (empty()) {
            out.push_back(fragment{text, -1});
            return out;
        }
        std::size_t from = 0, i = 0;
        while (i < text.size()) {
            const auto& bucket = by_first_[static_cast<unsigned char>(text[i])];
            std::size_t best_len = 0;
            int best_id = -1;
            for (const auto& f : bucket)
                if (f.first.size() > best_len && text.compare(i, f.first.size(), f.first) == 0) {
                    best_len = f.first.size();
                    best_id = f.second;
                }
            if (best_len == 0) { ++i; continue; }
            if (i > from) out.push_back(fragment{text.substr(from, i - from), -1});
            out.push_back(fragment{std::string(), best_id});
            i += best_len;
            from = i;
        }
        if (from < text.size()) out.push_back(fragment{text.substr(from), -1});
        return out;
    }

private:
    std::vector<std::pair<std::string, int>> by_first_[256];
    int n_ = 0;
};

}  // namespace tok
}  // namespace edgeq
