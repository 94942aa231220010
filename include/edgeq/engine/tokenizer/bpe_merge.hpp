// The merge loop shared by every BPE flavour: symbols in a linked list over the text; the
// pair with the best key (lowest merge rank, or highest score) merges first, leftmost on
// ties; stale candidates are skipped when popped. O(n log n): the TinyStories tokenizer has
// no pre-tokenizer, so a whole test set is one BPE word, where rescanning is O(n^2).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

namespace edgeq {
namespace tok {

struct bpe_symbol {
    int start, len;  // byte span in the text being encoded; len 0 once merged away
    int id;          // token id, or -1 while unknown
    int prev, next;  // neighbours, -1 at the ends
    bool frozen;     // never merges (llama2.c byte-fallback tokens)
};

// Appends a symbol to the list, linking it after the last one.
inline void bpe_push(std::vector<bpe_symbol>& s, int start, int len, int id, bool frozen = false) {
    const int n = static_cast<int>(s.size());
    s.push_back(bpe_symbol{start, len, id, n - 1, -1, frozen});
    if (n > 0) s[n - 1].next = n;
}

// Merges until no pair qualifies. pair(left, right, key, new_id) says whether two adjacent
// symbols may merge, their key (smaller merges first, must be < n_keys) and the merged id.
// Symbol 0 stays the head: a merge keeps the left symbol and drops the right one.
template <class PairFn>
void bpe_merge(std::vector<bpe_symbol>& s, std::uint32_t n_keys, PairFn pair) {
    // Each symbol has at most one live candidate, the pair with its current next, kept in
    // `best`; a queued entry whose candidate has since changed is stale.
    struct cand {
        std::uint32_t key;
        int right, len, new_id;  // len: both symbols' lengths together when found
    };
    const std::uint32_t none = 0xFFFFFFFFu;
    std::vector<cand> best(s.size(), cand{none, -1, 0, -1});

    // The queue orders (key, position). Short words use one binary heap of packed integers;
    // long ones a heap per key (positions only, so each stays small and in cache) plus a heap
    // of the keys that have entries: 3x faster on a megabyte-long word.
    const bool bucketed = s.size() > 4096 && n_keys <= s.size() * 4;
    std::vector<std::uint64_t> heap;
    std::vector<std::vector<int>> buckets(bucketed ? n_keys : 0);
    std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<std::uint32_t>> keys;
    const auto later = std::greater<std::uint64_t>();
    const auto right_of = std::greater<int>();
    auto enqueue = [&](std::uint32_t key, int pos) {
        if (!bucketed) {
            heap.push_back((static_cast<std::uint64_t>(key) << 32) | static_cast<std::uint32_t>(pos));
            std::push_heap(heap.begin(), heap.end(), later);
            return;
        }
        if (key >= buckets.size()) buckets.resize(key + 1);  // a caller's n_keys was too small
        std::vector<int>& b = buckets[key];
        if (b.empty()) keys.push(key);
        b.push_back(pos);
        std::push_heap(b.begin(), b.end(), right_of);
    };
    auto dequeue = [&](std::uint32_t& key, int& pos) {
        if (!bucketed) {
            if (heap.empty()) return false;
            std::pop_heap(heap.begin(), heap.end(), later);
            key = static_cast<std::uint32_t>(heap.back() >> 32);
            pos = static_cast<int>(heap.back() & 0xFFFFFFFFu);
            heap.pop_back();
            return true;
        }
        while (!keys.empty() && buckets[keys.top()].empty()) keys.pop();
        if (keys.empty()) return false;
        key = keys.top();
        std::vector<int>& b = buckets[key];
        std::pop_heap(b.begin(), b.end(), right_of);
        pos = b.back();
        b.pop_back();
        return true;
    };
    auto consider = [&](int l, int r) {
        if (l < 0) return;
        best[l].key = none;
        if (r < 0 || s[l].frozen || s[r].frozen) return;
        std::uint32_t key;
        int id;
        if (!pair(s[l], s[r], key, id)) return;
        best[l] = cand{key, r, s[l].len + s[r].len, id};
        enqueue(key, l);
    };

    for (int i = 0; i + 1 < static_cast<int>(s.size()); ++i) consider(i, i + 1);
    std::uint32_t key;
    int li;
    while (dequeue(key, li)) {
        const cand c = best[li];
        bpe_symbol& l = s[li];
        // Stale when replaced, when the left symbol is gone or has merged (its next changed),
        // or when the right one has grown (the lengths no longer add up).
        if (c.key != key || l.len == 0 || l.next != c.right || l.len + s[c.right].len != c.len) continue;
        bpe_symbol& r = s[c.right];
        l.len += r.len;
        l.id = c.new_id;
        l.next = r.next;
        if (r.next >= 0) s[r.next].prev = li;
        r.len = 0;
        best[c.right].key = none;
        consider(l.prev, li);
        consider(li, l.next);
    }
}

}  // namespace tok
}  // namespace edgeq
