// GGUF (versions 2 and 3, little-endian) read in place from a memory mapping, and written
// deterministically and atomically. Host only.
//
// File layout (the GGUF specification, llama.cpp ggml/src/gguf.cpp):
//     "GGUF"  u32 version  u64 n_tensors  u64 n_kv
//     n_kv x  { string key, u32 value_type, value }
//     n_tensors x { string name, u32 n_dims (<= 4), u64 ne[n_dims], u32 type, u64 offset }
//     padding to `general.alignment` (u32, a power of two, default 32)
//     data: each tensor at `offset` from here, a multiple of the alignment
// string = u64 length + bytes (no terminator); array = u32 element type + u64 count + elements.
// ne[0] is the row length (the fastest-varying dimension); ne = {cols, rows} for a matrix.
//
// The reader checks everything before using it: magic, version, counts against the bytes left
// (so no allocation exceeds the file), string and array lengths, array nesting depth, key
// duplicates, general.alignment, tensor dims (<= 4, product without overflow, row length a
// multiple of the block), known type ids, offsets aligned and inside the file, data sizes,
// duplicate names and overlapping tensors. Every failure is an edgeq::error naming the file.
//
// ---------------------------------------------------------------------------------------------
// edgeq's private tensor types (not known to llama.cpp, which rejects them as unknown types):
//
//   1024  EDGEQ_GROUPED  a grouped-format blob (format/grouped.hpp: codes, scales, zero points,
//                        dq factors, each section 64-byte aligned), one per matrix. Its shape is
//                        the matrix's {cols, rows} like any GGUF tensor. The blob's layout is
//                        named by two metadata keys per tensor, both required:
//                          edgeq.tensor.<name>.scheme  string, a registry name ("int4-g128-asym")
//                          edgeq.tensor.<name>.bytes   uint64, the blob size in bytes
//                        The reader checks that the blob lies inside the file; whoever turns it
//                        into a qview (the registry knows the format of each scheme name) must
//                        check `bytes == format::storage_bytes(rows, cols)`.
//   1025  EDGEQ_SPQR     a SpQR blob (format/spqr.hpp: codes, 3-bit statistics, the outliers'
//                        row_ptr, column indices and float16 values, each section 64-byte
//                        aligned), with the same two keys; its scheme is a SpQR name
//                        ("spqr-3bit-g16", and only such names are EDGEQ_SPQR). The size
//                        depends on the outlier count, row_ptr[rows] inside the blob: whoever
//                        reads it must check `bytes` against it and the CSR structure
//                        (spqr_matrix::from_blob does).
//   1026 - 1279          reserved for later edgeq types.
// The writer (gguf_writer::add_edgeq_blob, add_grouped) sets both keys. A file holding them also
// gets `edgeq.format_version` (uint32, 1).
// ---------------------------------------------------------------------------------------------
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../format/ggml/blocks.hpp"
#include "mmap.hpp"

namespace edgeq {
namespace io {
namespace gguf {

constexpr std::uint32_t default_alignment = 32;
constexpr std::uint32_t max_dims = 4;
constexpr int max_array_depth = 8;

// --- tensor types --------------------------------------------------------------------------

namespace type {
constexpr std::uint32_t f32 = 0, f16 = 1, bf16 = 30;
constexpr std::uint32_t edgeq_grouped = 1024, edgeq_spqr = 1025;
constexpr std::uint32_t edgeq_first = 1024, edgeq_last = 1279;
}  // namespace type

// The edgeq blob type that stores a scheme of this registry name: SpQR's own, else grouped.
inline std::uint32_t edgeq_type_of(const std::string& scheme) {
    return scheme == "spqr" || scheme.compare(0, 5, "spqr-") == 0 ? type::edgeq_spqr : type::edgeq_grouped;
}
// Whether a type is one of edgeq's blobs (size and layout named by metadata).
inline bool is_edgeq_blob(std::uint32_t id) { return id == type::edgeq_grouped || id == type::edgeq_spqr; }

struct type_info {
    std::uint32_t id;
    const char* name;
    std::uint32_t block_weights;  // 0: an edgeq blob (size from metadata)
    std::uint32_t block_bytes;
};

namespace detail {
template <class B>
constexpr type_info block_info() {
    return type_info{std::uint32_t(B::type_id), B::name(), std::uint32_t(B::weights), std::uint32_t(sizeof(B))};
}
inline const std::vector<type_info>& type_table() {
    namespace g = edgeq::ggml;
    static const std::vector<type_info> t = {
        {type::f32, "F32", 1, 4},
        {type::f16, "F16", 1, 2},
        {type::bf16, "BF16", 1, 2},
        block_info<g::block_q4_0>(),
        block_info<g::block_q4_1>(),
        block_info<g::block_q5_0>(),
        block_info<g::block_q5_1>(),
        block_info<g::block_q8_0>(),
        block_info<g::block_iq4_nl>(),
        block_info<g::block_q2_K>(),
        block_info<g::block_q3_K>(),
        block_info<g::block_q4_K>(),
        block_info<g::block_q5_K>(),
        block_info<g::block_q6_K>(),
        block_info<g::block_q8_K>(),
        block_info<g::block_iq4_xs>(),
        {type::edgeq_grouped, "EDGEQ_GROUPED", 0, 0},
        {type::edgeq_spqr, "EDGEQ_SPQR", 0, 0},
    };
    return t;
}
}  // namespace detail

// The type with this id, or nullptr if edgeq does not know it.
inline const type_info* find_type(std::uint32_t id) {
    for (const type_info& t : detail::type_table())
        if (t.id == id) return &t;
    return nullptr;
}
inline std::string type_name(std::uint32_t id) {
    const type_info* t = find_type(id);
    return t ? std::string(t->name) : "type " + std::to_string(id);
}

// --- metadata values -----------------------------------------------------------------------

enum class value_type : std::uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12
};

inline const char* value_type_name(value_type t) {
    static const char* const n[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                    "bool",  "string", "array",  "uint64", "int64", "float64"};
    return std::uint32_t(t) <= 12 ? n[std::uint32_t(t)] : "unknown";
}
// Size of a fixed-size value; 0 for string and array.
inline std::size_t value_size(value_type t) {
    switch (t) {
        case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
        case value_type::u16: case value_type::i16: return 2;
        case value_type::u32: case value_type::i32: case value_type::f32: return 4;
        case value_type::u64: case value_type::i64: case value_type::f64: return 8;
        default: return 0;
    }
}

template <class T> struct value_type_of;
template <> struct value_type_of<std::uint8_t> { static constexpr value_type value = value_type::u8; };
template <> struct value_type_of<std::int8_t> { static constexpr value_type value = value_type::i8; };
template <> struct value_type_of<std::uint16_t> { static constexpr value_type value = value_type::u16; };
template <> struct value_type_of<std::int16_t> { static constexpr value_type value = value_type::i16; };
template <> struct value_type_of<std::uint32_t> { static constexpr value_type value = value_type::u32; };
template <> struct value_type_of<std::int32_t> { static constexpr value_type value = value_type::i32; };
template <> struct value_type_of<float> { static constexpr value_type value = value_type::f32; };
template <> struct value_type_of<bool> { static constexpr value_type value = value_type::boolean; };
template <> struct value_type_of<std::uint64_t> { static constexpr value_type value = value_type::u64; };
template <> struct value_type_of<std::int64_t> { static constexpr value_type value = value_type::i64; };
template <> struct value_type_of<double> { static constexpr value_type value = value_type::f64; };

// One metadata value. Scalars keep their little-endian bytes; arrays of fixed-size elements keep
// them packed in `raw`; arrays of strings or arrays keep a vector of values.
class value {
   public:
    value() = default;

    template <class T>
    static value scalar(T v) {
        value r;
        r.type_ = value_type_of<T>::value;
        std::uint8_t b[8] = {};
        if (std::is_same<T, bool>::value) b[0] = v ? 1 : 0;
        else std::memcpy(b, &v, sizeof v);
        r.raw_.assign(b, b + sizeof(T));
        return r;
    }
    static value string(const std::string& s) {
        value r;
        r.type_ = value_type::string;
        r.str_ = s;
        return r;
    }
    template <class T>
    static value array(const std::vector<T>& v) {
        value r;
        r.type_ = value_type::array;
        r.elem_ = value_type_of<T>::value;
        r.count_ = v.size();
        for (const T& x : v) {
            const value s = scalar<T>(x);
            r.raw_.insert(r.raw_.end(), s.raw_.begin(), s.raw_.end());
        }
        return r;
    }
    static value string_array(const std::vector<std::string>& v) {
        value r;
        r.type_ = value_type::array;
        r.elem_ = value_type::string;
        r.count_ = v.size();
        for (const std::string& s : v) r.items_.push_back(string(s));
        return r;
    }
    // An array of arrays (each item an array value; GGUF requires one element type).
    static value array_of_arrays(const std::vector<value>& v) {
        for (const value& x : v)
            if (x.type_ != value_type::array) throw error("GGUF: an array of arrays needs array items");
        value r;
        r.type_ = value_type::array;
        r.elem_ = value_type::array;
        r.count_ = v.size();
        r.items_ = v;
        return r;
    }

    value_type type() const { return type_; }
    value_type element_type() const { return elem_; }
    std::uint64_t size() const { return count_; }  // array length
    bool is_integer() const { return is_int(type_); }
    bool is_float() const { return type_ == value_type::f32 || type_ == value_type::f64; }

    // Scalar reads; a wrong type throws (the reader's typed accessors give the key's name).
    std::uint64_t as_u64() const {
        if (!is_int(type_)) wrong("an integer");
        const std::int64_t s = signed_value(type_, raw_.data());
        if (is_signed(type_) && s < 0) throw error("GGUF: the value " + std::to_string(s) + " is negative");
        return is_signed(type_) ? std::uint64_t(s) : unsigned_value(type_, raw_.data());
    }
    std::int64_t as_i64() const {
        if (!is_int(type_)) wrong("an integer");
        if (!is_signed(type_)) {
            const std::uint64_t u = unsigned_value(type_, raw_.data());
            if (u > std::uint64_t(INT64_MAX)) throw error("GGUF: the value " + std::to_string(u) + " is too large");
            return std::int64_t(u);
        }
        return signed_value(type_, raw_.data());
    }
    double as_f64() const {
        if (type_ == value_type::f32) {
            float f;
            std::memcpy(&f, raw_.data(), 4);
            return f;
        }
        if (type_ == value_type::f64) {
            double d;
            std::memcpy(&d, raw_.data(), 8);
            return d;
        }
        wrong("a float");
    }
    bool as_bool() const {
        if (type_ != value_type::boolean) wrong("a bool");
        return raw_[0] != 0;
    }
    const std::string& as_string() const {
        if (type_ != value_type::string) wrong("a string");
        return str_;
    }

    // Array elements.
    value at(std::uint64_t i) const {
        if (type_ != value_type::array) wrong("an array");
        if (i >= count_) throw error("GGUF: array index " + std::to_string(i) + " past the end (" + std::to_string(count_) + ")");
        if (!items_.empty()) return items_[std::size_t(i)];
        value r;
        r.type_ = elem_;
        const std::size_t n = value_size(elem_);
        r.raw_.assign(raw_.begin() + std::ptrdiff_t(i * n), raw_.begin() + std::ptrdiff_t((i + 1) * n));
        return r;
    }
    template <class T>
    std::vector<T> to_vector() const {
        if (type_ != value_type::array || elem_ != value_type_of<T>::value)
            wrong(std::string("an array of ") + value_type_name(value_type_of<T>::value));
        std::vector<T> v;
        v.reserve(static_cast<std::size_t>(count_));
        for (std::size_t i = 0; i < static_cast<std::size_t>(count_); ++i) {
            T x;
            load(raw_.data() + i * sizeof(T), x);
            v.push_back(x);
        }
        return v;
    }
    std::vector<std::string> to_strings() const {
        if (type_ != value_type::array || elem_ != value_type::string) wrong("an array of strings");
        std::vector<std::string> v;
        v.reserve(items_.size());
        for (const value& x : items_) v.push_back(x.str_);
        return v;
    }
    const std::vector<value>& items() const { return items_; }     // string / array elements
    const std::vector<std::uint8_t>& raw() const { return raw_; }  // fixed-size elements, LE

    // Short human-readable form; arrays longer than `max_items` are abbreviated.
    std::string to_text(std::size_t max_items = 8) const {
        switch (type_) {
            case value_type::string: return quote(str_);
            case value_type::boolean: return raw_[0] ? "true" : "false";
            case value_type::f32: case value_type::f64: {
                char b[40];
                std::snprintf(b, sizeof b, "%.9g", as_f64());
                return b;
            }
            case value_type::array: {
                std::string s = "[";
                for (std::uint64_t i = 0; i < count_ && i < max_items; ++i) s += (i ? ", " : "") + at(i).to_text(max_items);
                if (count_ > max_items) s += ", ... (" + std::to_string(count_) + " " + value_type_name(elem_) + ")";
                return s + "]";
            }
            default:
                return is_signed(type_) ? std::to_string(signed_value(type_, raw_.data()))
                                        : std::to_string(unsigned_value(type_, raw_.data()));
        }
    }

    // Serialized (GGUF) form of the value without its type tag.
    void serialize(std::string& out) const {
        if (type_ == value_type::string) {
            put_u64(out, str_.size());
            out += str_;
        } else if (type_ == value_type::array) {
            put_u32(out, std::uint32_t(elem_));
            put_u64(out, count_);
            if (items_.empty()) out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
            for (const value& x : items_) x.serialize(out);  // a nested array: its type, count, elements
        } else {
            out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
        }
    }

    static void put_u32(std::string& o, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) o += char((v >> (8 * i)) & 0xff);
    }
    static void put_u64(std::string& o, std::uint64_t v) {
        for (int i = 0; i < 8; ++i) o += char((v >> (8 * i)) & 0xff);
    }

   private:
    friend class reader_access;
    static void load(const std::uint8_t* p, bool& x) { x = *p != 0; }
    template <class T>
    static void load(const std::uint8_t* p, T& x) { std::memcpy(&x, p, sizeof(T)); }
    static bool is_int(value_type t) {
        return t == value_type::u8 || t == value_type::i8 || t == value_type::u16 || t == value_type::i16 ||
               t == value_type::u32 || t == value_type::i32 || t == value_type::u64 || t == value_type::i64;
    }
    static bool is_signed(value_type t) {
        return t == value_type::i8 || t == value_type::i16 || t == value_type::i32 || t == value_type::i64;
    }
    static std::uint64_t unsigned_value(value_type t, const std::uint8_t* p) {
        std::uint64_t v = 0;
        for (std::size_t i = value_size(t); i-- > 0;) v = (v << 8) | p[i];
        return v;
    }
    static std::int64_t signed_value(value_type t, const std::uint8_t* p) {
        const std::size_t n = value_size(t);
        std::uint64_t v = unsigned_value(t, p);
        if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t(0) << (8 * n);  // sign-extend
        std::int64_t s;
        std::memcpy(&s, &v, 8);
        return s;
    }
    static std::string quote(const std::string& s) {
        std::string o = "\"";
        for (char c : s) {
            if (c == '"' || c == '\\') o += '\\', o += c;
            else if (static_cast<unsigned char>(c) < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\x%02x", unsigned(static_cast<unsigned char>(c)));
                o += b;
            } else o += c;
        }
        return o + "\"";
    }
    [[noreturn]] void wrong(const std::string& wanted) const {
        std::string is = value_type_name(type_);
        if (type_ == value_type::array) is = std::string("an array of ") + value_type_name(elem_);
        throw error("GGUF: the value is " + is + ", not " + wanted);
    }

    value_type type_ = value_type::u8;
    value_type elem_ = value_type::u8;
    std::uint64_t count_ = 0;
    std::vector<std::uint8_t> raw_;
    std::string str_;
    std::vector<value> items_;
};

// Lets the parser fill a value's fields.
class reader_access {
   public:
    static void set_scalar(value& v, value_type t, const std::uint8_t* p) {
        v.type_ = t;
        v.raw_.assign(p, p + value_size(t));
    }
    static void set_string(value& v, std::string s) {
        v.type_ = value_type::string;
        v.str_ = std::move(s);
    }
    static void set_array(value& v, value_type elem, std::uint64_t n, const std::uint8_t* raw, std::vector<value> items) {
        v.type_ = value_type::array;
        v.elem_ = elem;
        v.count_ = n;
        if (raw) v.raw_.assign(raw, raw + n * value_size(elem));
        v.items_ = std::move(items);
    }
};

// --- tensors -------------------------------------------------------------------------------

struct tensor_info {
    std::string name;
    std::uint32_t type = 0;
    std::vector<std::uint64_t> shape;  // GGUF order: shape[0] is the row length
    std::uint64_t offset = 0;          // from the start of the data section
    std::uint64_t elements = 0;
    std::uint64_t bytes = 0;
    const std::uint8_t* data = nullptr;  // inside the mapping (aligned to the file's alignment)
    std::string scheme;                  // EDGEQ_GROUPED and EDGEQ_SPQR only

    std::uint64_t cols() const { return shape.empty() ? 1 : shape[0]; }
    std::uint64_t rows() const { return cols() ? elements / cols() : 0; }
    double bits_per_weight() const { return elements ? 8.0 * double(bytes) / double(elements) : 0.0; }
};

namespace detail {

// Bytes a tensor of `type` and `shape` needs, checking block divisibility and overflow.
// Returns false with `why` set when it cannot be stored.
inline bool tensor_bytes(const type_info& t, const std::vector<std::uint64_t>& shape, std::uint64_t& elements,
                         std::uint64_t& bytes, std::string& why) {
    elements = 1;
    for (std::uint64_t d : shape) {
        if (d > std::uint64_t(INT64_MAX)) {
            why = "a dimension exceeds 2^63";
            return false;
        }
        if (d && elements > std::uint64_t(INT64_MAX) / d) {
            why = "the element count overflows";
            return false;
        }
        elements *= d;
    }
    if (!t.block_weights) {  // size given by metadata
        bytes = 0;
        return true;
    }
    const std::uint64_t row = shape.empty() ? 1 : shape[0];
    if (row % t.block_weights) {
        why = "the row length " + std::to_string(row) + " is not a multiple of the " + std::to_string(t.block_weights) +
              "-weight " + t.name + " block";
        return false;
    }
    const std::uint64_t blocks = elements / t.block_weights;
    if (blocks > std::uint64_t(INT64_MAX) / t.block_bytes) {
        why = "the byte size overflows";
        return false;
    }
    bytes = blocks * t.block_bytes;
    return true;
}

inline std::string shape_text(const std::vector<std::uint64_t>& s) {
    std::string o = "[";
    for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
}

class cursor {
   public:
    cursor(const std::uint8_t* base, std::size_t size, const std::string& where) : p_(base), size_(size), where_(where) {}
    std::size_t pos() const { return pos_; }
    std::size_t left() const { return size_ - pos_; }
    void need(std::uint64_t n, const char* what) const {
        if (n > left())
            throw error(where_ + " is truncated: " + what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
                        " bytes, " + std::to_string(left()) + " are left");
    }
    const std::uint8_t* take(std::uint64_t n, const char* what) {
        need(n, what);
        const std::uint8_t* r = p_ + pos_;
        pos_ += std::size_t(n);
        return r;
    }
    std::uint32_t u32(const char* what) {
        const std::uint8_t* b = take(4, what);
        return std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 | std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24;
    }
    std::uint64_t u64(const char* what) {
        const std::uint8_t* b = take(8, what);
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
        return v;
    }
    std::string str(const char* what) {
        const std::uint64_t n = u64(what);
        if (n > left())
            throw error(where_ + ": " + what + " at byte " + std::to_string(pos_ - 8) + " claims " + std::to_string(n) +
                        " bytes, past the end of the file (" + std::to_string(left()) + " left)");
        const std::uint8_t* b = take(n, what);
        return std::string(reinterpret_cast<const char*>(b), std::size_t(n));
    }
    const std::string& where() const { return where_; }

   private:
    const std::uint8_t* p_;
    std::size_t size_;
    std::size_t pos_ = 0;
    std::string where_;
};

inline value read_value(cursor& c, value_type t, const std::string& key, int depth) {
    value v;
    const std::string ctx = "the value of '" + key + "'";
    if (std::uint32_t(t) > 12)
        throw error(c.where() + ": metadata '" + key + "' has unknown value type " + std::to_string(std::uint32_t(t)));
    if (t == value_type::string) {
        reader_access::set_string(v, c.str(ctx.c_str()));
    } else if (t == value_type::array) {
        if (depth >= max_array_depth)
            throw error(c.where() + ": metadata '" + key + "' nests arrays deeper than " + std::to_string(max_array_depth));
        const std::uint32_t et = c.u32(ctx.c_str());
        if (et > 12) throw error(c.where() + ": metadata '" + key + "' is an array of unknown type " + std::to_string(et));
        const value_type e = value_type(et);
        const std::uint64_t n = c.u64(ctx.c_str());
        const std::size_t fixed = value_size(e);
        const std::uint64_t min_elem = fixed ? fixed : (e == value_type::string ? 8 : 12);
        if (n > c.left() / min_elem)
            throw error(c.where() + ": metadata '" + key + "' claims " + std::to_string(n) + " " + value_type_name(e) +
                        " elements, more than the " + std::to_string(c.left()) + " bytes left can hold");
        if (fixed) {
            const std::uint8_t* raw = c.take(n * fixed, ctx.c_str());
            if (e == value_type::boolean)
                for (std::uint64_t i = 0; i < n; ++i)
                    if (raw[i] > 1) throw error(c.where() + ": metadata '" + key + "' holds a bool that is not 0 or 1");
            reader_access::set_array(v, e, n, raw, {});
        } else {
            std::vector<value> items;
            items.reserve(std::size_t(n));
            for (std::uint64_t i = 0; i < n; ++i) items.push_back(read_value(c, e, key, depth + 1));
            reader_access::set_array(v, e, n, nullptr, std::move(items));
        }
    } else {
        const std::uint8_t* p = c.take(value_size(t), ctx.c_str());
        if (t == value_type::boolean && *p > 1) throw error(c.where() + ": metadata '" + key + "' is a bool that is not 0 or 1");
        reader_access::set_scalar(v, t, p);
    }
    return v;
}

}  // namespace detail

// --- reader --------------------------------------------------------------------------------

class file {
   public:
    explicit file(const std::string& path) : map_(path), where_("GGUF file '" + path + "'") { parse(); }

    std::uint32_t version() const { return version_; }
    std::uint32_t alignment() const { return alignment_; }
    std::uint64_t data_offset() const { return data_offset_; }  // where the data section starts
    std::size_t file_size() const { return map_.size(); }
    // Drops a tensor's pages from memory after its bytes were copied (mapped_file::release).
    void release(const tensor_info& t) const { map_.release(t.data, std::size_t(t.bytes)); }
    const std::string& path() const { return map_.path(); }

    // Metadata in file order.
    const std::vector<std::pair<std::string, value>>& metadata() const { return kv_; }
    bool has(const std::string& key) const { return kv_index_.count(key) != 0; }
    const value* find_value(const std::string& key) const {
        const auto it = kv_index_.find(key);
        return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
    }
    const value& get(const std::string& key) const {
        const value* v = find_value(key);
        if (!v) throw error(where_ + ": metadata key '" + key + "' is missing");
        return *v;
    }

    // Typed accessors: a missing key or a value of another type is an error that names the key.
    // Integers of any width convert when the value fits.
    std::uint64_t get_uint(const std::string& key) const { return with_key(key, [](const value& v) { return v.as_u64(); }); }
    std::int64_t get_int(const std::string& key) const { return with_key(key, [](const value& v) { return v.as_i64(); }); }
    std::uint32_t get_u32(const std::string& key) const {
        const std::uint64_t v = get_uint(key);
        if (v > 0xffffffffu) throw error(where_ + ": metadata '" + key + "' = " + std::to_string(v) + " does not fit 32 bits");
        return std::uint32_t(v);
    }
    double get_float(const std::string& key) const { return with_key(key, [](const value& v) { return v.as_f64(); }); }
    bool get_bool(const std::string& key) const { return with_key(key, [](const value& v) { return v.as_bool(); }); }
    std::string get_string(const std::string& key) const {
        return with_key(key, [](const value& v) { return v.as_string(); });
    }
    std::vector<std::string> get_strings(const std::string& key) const {
        return with_key(key, [](const value& v) { return v.to_strings(); });
    }
    template <class T>
    std::vector<T> get_array(const std::string& key) const {
        return with_key(key, [](const value& v) { return v.template to_vector<T>(); });
    }

    const std::vector<tensor_info>& tensors() const { return tensors_; }
    const tensor_info* find(const std::string& name) const {
        const auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }
    const tensor_info& tensor(const std::string& name) const {
        const tensor_info* t = find(name);
        if (!t) throw error(where_ + ": no tensor named '" + name + "'");
        return *t;
    }

   private:
    template <class F>
    auto with_key(const std::string& key, F f) const -> decltype(f(std::declval<const value&>())) {
        const value& v = get(key);
        try {
            return f(v);
        } catch (const error& e) {
            std::string m = e.what();
            const std::string strip = "edgeq: GGUF: ";
            if (m.compare(0, strip.size(), strip) == 0) m = m.substr(strip.size());
            throw error(where_ + ": metadata '" + key + "': " + m);
        }
    }

    void parse() {
        detail::cursor c(map_.data(), map_.size(), where_);
        const std::uint8_t* magic = c.take(4, "the magic");
        if (std::memcmp(magic, "GGUF", 4) != 0) {
            if (std::memcmp(magic, "FUGG", 4) == 0) throw error(where_ + " is a big-endian GGUF, which edgeq does not read");
            throw error(where_ + " is not a GGUF file (bad magic)");
        }
        version_ = c.u32("the version");
        if (version_ == 1) throw error(where_ + " is GGUF version 1, which is obsolete; edgeq reads versions 2 and 3");
        if (version_ != 2 && version_ != 3)
            throw error(where_ + " has unsupported GGUF version " + std::to_string(version_) + "; edgeq reads versions 2 and 3");
        const std::uint64_t n_tensors = c.u64("the tensor count");
        const std::uint64_t n_kv = c.u64("the metadata count");
        // Smallest possible entries: a kv is a key (8 + 1) + type (4) + 1 byte; a tensor info is
        // a name (8 + 1) + n_dims (4) + type (4) + offset (8).
        if (n_kv > c.left() / 14)
            throw error(where_ + " claims " + std::to_string(n_kv) + " metadata entries, more than its " +
                        std::to_string(c.left()) + " remaining bytes can hold");
        if (n_tensors > c.left() / 25)
            throw error(where_ + " claims " + std::to_string(n_tensors) + " tensors, more than its " +
                        std::to_string(c.left()) + " remaining bytes can hold");
        kv_.reserve(std::size_t(n_kv));
        for (std::uint64_t i = 0; i < n_kv; ++i) {
            std::string key = c.str("a metadata key");
            if (key.empty()) throw error(where_ + ": metadata entry " + std::to_string(i) + " has an empty key");
            if (kv_index_.count(key)) throw error(where_ + ": metadata key '" + key + "' appears twice");
            const std::uint32_t t = c.u32("a metadata value type");
            value v = detail::read_value(c, value_type(t), key, 0);
            kv_index_[key] = kv_.size();
            kv_.emplace_back(std::move(key), std::move(v));
        }
        alignment_ = default_alignment;
        if (const value* a = find_value("general.alignment")) {
            if (a->type() != value_type::u32)
                throw error(where_ + ": general.alignment is " + value_type_name(a->type()) + ", not uint32");
            alignment_ = std::uint32_t(a->as_u64());
            if (alignment_ == 0 || (alignment_ & (alignment_ - 1)))
                throw error(where_ + ": general.alignment " + std::to_string(alignment_) + " is not a power of two");
        }
        tensors_.reserve(std::size_t(n_tensors));
        for (std::uint64_t i = 0; i < n_tensors; ++i) {
            tensor_info t;
            t.name = c.str("a tensor name");
            const std::string tw = where_ + ": tensor '" + t.name + "'";
            if (t.name.empty()) throw error(where_ + ": tensor " + std::to_string(i) + " has an empty name");
            if (tensor_index_.count(t.name)) throw error(where_ + ": tensor name '" + t.name + "' appears twice");
            const std::uint32_t nd = c.u32("a tensor's dimension count");
            if (nd > max_dims) throw error(tw + " has " + std::to_string(nd) + " dimensions; GGUF allows at most 4");
            for (std::uint32_t d = 0; d < nd; ++d) t.shape.push_back(c.u64("a tensor dimension"));
            t.type = c.u32("a tensor type");
            t.offset = c.u64("a tensor offset");
            const type_info* ti = find_type(t.type);
            if (!ti) throw error(tw + " has unknown type " + std::to_string(t.type));
            std::string why;
            if (!detail::tensor_bytes(*ti, t.shape, t.elements, t.bytes, why))
                throw error(tw + " (" + ti->name + ", shape " + detail::shape_text(t.shape) + "): " + why);
            tensor_index_[t.name] = tensors_.size();
            tensors_.push_back(std::move(t));
        }
        // Data section.
        const std::uint64_t header_end = c.pos();
        data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
        if (!tensors_.empty() && data_offset_ > map_.size())
            throw error(where_ + " is truncated: the data section would start at byte " + std::to_string(data_offset_) +
                        ", past the end (" + std::to_string(map_.size()) + " bytes)");
        const std::uint64_t data_size = tensors_.empty() ? 0 : map_.size() - data_offset_;
        for (tensor_info& t : tensors_) {
            const std::string tw = where_ + ": tensor '" + t.name + "'";
            if (is_edgeq_blob(t.type)) {
                const value* s = find_value("edgeq.tensor." + t.name + ".scheme");
                const value* b = find_value("edgeq.tensor." + t.name + ".bytes");
                if (!s || s->type() != value_type::string || !b || b->type() != value_type::u64)
                    throw error(tw + " is an " + type_name(t.type) + " blob without the string edgeq.tensor." + t.name +
                                ".scheme and the uint64 edgeq.tensor." + t.name + ".bytes");
                t.scheme = s->as_string();
                t.bytes = b->as_u64();
                if (edgeq_type_of(t.scheme) != t.type)
                    throw error(tw + " is " + type_name(t.type) + ", but its scheme '" + t.scheme + "' is stored as " +
                                type_name(edgeq_type_of(t.scheme)));
            }
            if (t.offset % alignment_)
                throw error(tw + " has offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                            std::to_string(alignment_));
            if (t.offset > data_size || t.bytes > data_size - t.offset)
                throw error(tw + " (" + std::to_string(t.bytes) + " bytes at data offset " + std::to_string(t.offset) +
                            ") ends past the end of the file (the data section has " + std::to_string(data_size) + " bytes)");
            t.data = map_.data() + data_offset_ + t.offset;
        }
        std::vector<const tensor_info*> by_offset;
        for (const tensor_info& t : tensors_) by_offset.push_back(&t);
        std::sort(by_offset.begin(), by_offset.end(),
                  [](const tensor_info* a, const tensor_info* b) { return a->offset < b->offset; });
        for (std::size_t i = 1; i < by_offset.size(); ++i)
            if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
                throw error(where_ + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
    }

    mapped_file map_;
    std::string where_;
    std::uint32_t version_ = 0;
    std::uint32_t alignment_ = default_alignment;
    std::uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, value>> kv_;
    std::map<std::string, std::size_t> kv_index_;
    std::vector<tensor_info> tensors_;
    std::map<std::string, std::size_t> tensor_index_;
};

// --- writer --------------------------------------------------------------------------------

// Collects metadata and tensors (by pointer: the data must outlive write()) and writes a GGUF
// version 3 file. The output depends only on the calls made: metadata in the order first set,
// tensors in the order added, zero padding; no time stamps. llama.cpp's layout rules hold:
// tensor offsets are consecutive, each padded to the alignment.
//
// Streaming: the header needs only each tensor's size, so a tensor may be declared without its
// data (declare_tensor, declare_grouped) and produced at write time by a source callback, one
// tensor at a time, in the order added; a model larger than memory can be written this way.
class writer {
   public:
    // Receives a declared tensor's bytes, in as many pieces as the source likes.
    using sink_fn = std::function<void(const void* data, std::size_t bytes)>;
    // Produces tensor `index` (its position among all tensors added) through `sink`: exactly the
    // bytes declared, or write() fails and leaves no file.
    using source_fn = std::function<void(std::size_t index, const std::string& name, const sink_fn& sink)>;

    explicit writer(std::uint32_t alignment = default_alignment) : alignment_(alignment) {
        if (alignment == 0 || (alignment & (alignment - 1))) throw error("GGUF writer: the alignment must be a power of two");
        if (alignment != default_alignment) set("general.alignment", value::scalar<std::uint32_t>(alignment));
    }

    // Sets a key (a key set twice keeps its first position and its last value).
    void set(const std::string& key, const value& v) {
        if (key.empty()) throw error("GGUF writer: empty metadata key");
        if (key == "general.alignment" && (v.type() != value_type::u32 || v.as_u64() != alignment_))
            throw error("GGUF writer: general.alignment is set by the writer's constructor");
        const auto it = index_.find(key);
        if (it != index_.end()) {
            kv_[it->second].second = v;
            return;
        }
        index_[key] = kv_.size();
        kv_.emplace_back(key, v);
    }
    void set_string(const std::string& key, const std::string& s) { set(key, value::string(s)); }
    void set_u32(const std::string& key, std::uint32_t v) { set(key, value::scalar(v)); }
    void set_f32(const std::string& key, float v) { set(key, value::scalar(v)); }
    void set_bool(const std::string& key, bool v) { set(key, value::scalar(v)); }

    // A tensor of a GGUF type; shape in GGUF order ({cols, rows}); `bytes` must match.
    void add_tensor(const std::string& name, std::uint32_t type_id, const std::vector<std::uint64_t>& shape,
                    const void* data, std::uint64_t bytes) {
        const type_info* ti = find_type(type_id);
        if (!ti) throw error("GGUF writer: tensor '" + name + "' has unknown type " + std::to_string(type_id));
        if (!ti->block_weights) throw error("GGUF writer: add edgeq blob tensor '" + name + "' with add_edgeq_blob");
        add(name, *ti, shape, data, bytes);
    }
    // An edgeq blob (see the top of this file): EDGEQ_GROUPED or EDGEQ_SPQR, as the scheme says.
    void add_edgeq_blob(const std::string& name, const std::string& scheme, std::uint64_t cols, std::uint64_t rows,
                        const void* blob, std::uint64_t bytes) {
        if (scheme.empty()) throw error("GGUF writer: tensor '" + name + "' needs a scheme name");
        add(name, *find_type(edgeq_type_of(scheme)), {cols, rows}, blob, bytes);
        set_blob_keys(name, scheme, bytes);
    }
    void add_grouped(const std::string& name, const std::string& scheme, std::uint64_t cols, std::uint64_t rows,
                     const void* blob, std::uint64_t bytes) {
        add_edgeq_blob(name, scheme, cols, rows, blob, bytes);
    }

    // Declared tensors, produced at write time by write(path, source).
    void declare_tensor(const std::string& name, std::uint32_t type_id, const std::vector<std::uint64_t>& shape) {
        const type_info* ti = find_type(type_id);
        if (!ti) throw error("GGUF writer: tensor '" + name + "' has unknown type " + std::to_string(type_id));
        if (!ti->block_weights) throw error("GGUF writer: declare edgeq blob tensor '" + name + "' with declare_edgeq_blob");
        std::uint64_t elements = 0, bytes = 0;
        std::string why;
        if (!detail::tensor_bytes(*ti, shape, elements, bytes, why))
            throw error("GGUF writer: tensor '" + name + "' (" + ti->name + ", shape " + detail::shape_text(shape) + "): " + why);
        add(name, *ti, shape, nullptr, bytes, true);
    }
    void declare_edgeq_blob(const std::string& name, const std::string& scheme, std::uint64_t cols, std::uint64_t rows,
                            std::uint64_t bytes) {
        if (scheme.empty()) throw error("GGUF writer: tensor '" + name + "' needs a scheme name");
        add(name, *find_type(edgeq_type_of(scheme)), {cols, rows}, nullptr, bytes, true);
        set_blob_keys(name, scheme, bytes);
    }
    void declare_grouped(const std::string& name, const std::string& scheme, std::uint64_t cols, std::uint64_t rows,
                         std::uint64_t bytes) {
        declare_edgeq_blob(name, scheme, cols, rows, bytes);
    }

    // The header (everything before the data section), padded to the alignment.
    std::string header() const {
        std::string o = "GGUF";
        value::put_u32(o, 3);
        value::put_u64(o, t_.size());
        value::put_u64(o, kv_.size());
        for (const auto& kv : kv_) {
            value::put_u64(o, kv.first.size());
            o += kv.first;
            value::put_u32(o, std::uint32_t(kv.second.type()));
            kv.second.serialize(o);
        }
        std::uint64_t off = 0;
        for (const pending& t : t_) {
            value::put_u64(o, t.name.size());
            o += t.name;
            value::put_u32(o, std::uint32_t(t.shape.size()));
            for (std::uint64_t d : t.shape) value::put_u64(o, d);
            value::put_u32(o, t.type);
            value::put_u64(o, off);
            off += pad(t.bytes);
        }
        o.append(std::size_t(pad(o.size()) - o.size()), '\0');
        return o;
    }

    // Writes the file atomically (a temporary file renamed into place; nothing on failure).
    // Declared tensors need the source overload.
    void write(const std::string& path) const { write(path, source_fn()); }
    void write(const std::string& path, const source_fn& source) const {
        const std::string h = header();
        atomic_writer w(path);
        w.write(h.data(), h.size());
        for (std::size_t i = 0; i < t_.size(); ++i) {
            const pending& t = t_[i];
            if (!t.deferred) {
                w.write(t.data, std::size_t(t.bytes));
            } else {
                if (!source) throw error("GGUF writer: tensor '" + t.name + "' was declared without data and no source was given");
                std::uint64_t got = 0;
                source(i, t.name, [&](const void* p, std::size_t n) {
                    if (n > t.bytes - got)
                        throw error("GGUF writer: the source gave more than the " + std::to_string(t.bytes) +
                                    " bytes declared for tensor '" + t.name + "'");
                    w.write(p, n);
                    got += n;
                });
                if (got != t.bytes)
                    throw error("GGUF writer: the source gave " + std::to_string(got) + " of the " + std::to_string(t.bytes) +
                                " bytes declared for tensor '" + t.name + "'");
            }
            w.write_zeros(std::size_t(pad(t.bytes) - t.bytes));
        }
        w.commit();
    }

   private:
    struct pending {
        std::string name;
        std::uint32_t type;
        std::vector<std::uint64_t> shape;
        const void* data;
        std::uint64_t bytes;
        bool deferred;  // declared: produced by write()'s source
    };
    std::uint64_t pad(std::uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

    void set_blob_keys(const std::string& name, const std::string& scheme, std::uint64_t bytes) {
        set("edgeq.format_version", value::scalar<std::uint32_t>(1));
        set("edgeq.tensor." + name + ".scheme", value::string(scheme));
        set("edgeq.tensor." + name + ".bytes", value::scalar<std::uint64_t>(bytes));
    }

    void add(const std::string& name, const type_info& ti, const std::vector<std::uint64_t>& shape, const void* data,
             std::uint64_t bytes, bool deferred = false) {
        if (name.empty()) throw error("GGUF writer: empty tensor name");
        for (const pending& t : t_)
            if (t.name == name) throw error("GGUF writer: tensor '" + name + "' added twice");
        if (shape.size() > max_dims) throw error("GGUF writer: tensor '" + name + "' has more than 4 dimensions");
        std::uint64_t elements = 0, need = 0;
        std::string why;
        if (!detail::tensor_bytes(ti, shape, elements, need, why))
            throw error("GGUF writer: tensor '" + name + "' (" + ti.name + ", shape " + detail::shape_text(shape) + "): " + why);
        if (ti.block_weights && bytes != need)
            throw error("GGUF writer: tensor '" + name + "' (" + ti.name + ", shape " + detail::shape_text(shape) + ") needs " +
                        std::to_string(need) + " bytes, not " + std::to_string(bytes));
        if (bytes && !data && !deferred) throw error("GGUF writer: tensor '" + name + "' has no data");
        t_.push_back(pending{name, ti.id, shape, data, bytes, deferred});
    }

    std::uint32_t alignment_;
    std::vector<std::pair<std::string, value>> kv_;
    std::map<std::string, std::size_t> index_;
    std::vector<pending> t_;
};

}  // namespace gguf
}  // namespace io
}  // namespace edgeq
