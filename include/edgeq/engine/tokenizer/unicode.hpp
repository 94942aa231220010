// UTF-8 helpers and the Unicode categories the pre-tokenizers need (letters, numbers,
// white space), looked up in generated range tables instead of std::regex, which has no
// Unicode classes.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "unicode_tables.hpp"

namespace edgeq {
namespace tok {

// Length of the UTF-8 sequence that starts with byte c; 1 for a stray continuation or an
// invalid lead byte, so malformed text still advances byte by byte.
inline std::size_t utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

// Decodes the code point at s[i] and sets n to its length in bytes (clamped to the text, and
// 1 for malformed input, whose code point is then the byte itself).
inline std::uint32_t utf8_decode(const std::string& s, std::size_t i, std::size_t& n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    n = utf8_len(c);
    if (i + n > s.size()) n = 1;
    if (n == 1) return c;
    std::uint32_t cp = c & (0xFF >> (n + 1));
    for (std::size_t k = 1; k < n; ++k) {
        const unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xC0) != 0x80) { n = 1; return c; }
        cp = (cp << 6) | (d & 0x3F);
    }
    return cp;
}

inline void utf8_append(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

namespace detail {
// Tables hold sorted, disjoint [first, last] pairs flattened into one array.
template <std::size_t N>
inline bool in_ranges(const std::uint32_t (&r)[N], std::uint32_t cp) {
    // First pair whose last >= cp: search the odd (last) elements.
    std::size_t lo = 0, hi = N / 2;
    while (lo < hi) {
        const std::size_t mid = (lo + hi) / 2;
        if (r[2 * mid + 1] < cp) lo = mid + 1; else hi = mid;
    }
    return lo < N / 2 && r[2 * lo] <= cp;
}
}  // namespace detail

inline bool is_letter(std::uint32_t cp) { return detail::in_ranges(unicode_letter_ranges, cp); }
inline bool is_number(std::uint32_t cp) { return detail::in_ranges(unicode_number_ranges, cp); }
inline bool is_space(std::uint32_t cp) { return detail::in_ranges(unicode_space_ranges, cp); }

}  // namespace tok
}  // namespace edgeq
