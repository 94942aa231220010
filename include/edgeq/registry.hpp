// edgeq::registry: the built-in schemes by name, for picking a scheme at run time.
// (The only edgeq header that includes Boost.Hana.)
//
//     auto l = edgeq::registry::make_linear("int4-g128", w);         // unique_ptr<edgeq::linear>
//     edgeq::registry::info("nf4-g64-dq").bits_per_weight;            // 4.127...
//     edgeq::registry::visit("int3-g64-asym", [&](auto t) {           // the static type, to do
//         using S = typename decltype(t)::type;                       // anything with it
//         auto q = edgeq::quantize<S>(w);
//     });
//
// Names (scheme_name.hpp has the grammar): [algorithm-] int{2,3,4,5,6,8}|nf4 - g{32,64,128,256}|row
// [-asym] [-f32|-dq]. The built-in set is every combination of
//     uniform grid: bits {2,3,4,5,6,8} x group {32,64,128,256,row} x {symmetric, asymmetric}
//                   x {fp16, fp32 scales}                                           120 formats
//     nf4:          group {32,64,128,256} x {fp16, fp32, double_quant scales}        12 formats
//     llama.cpp:    q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs    12 formats
// and every algorithm of algorithms(): rtn<> (no prefix, or "rtn-"), rtn<clip_search>
// ("rtn-clip-"; not for the llama.cpp types, whose quantizers search their own scales), and the
// calibrated ones, gptq<> ("gptq-"), gptq<act_order> ("gptq-actorder-") and awq<> ("awq-"),
// which make_linear refuses (they need engine::quantize_calibrated and its statistics).
// Besides them, SpQR with its own storage (format/spqr.hpp), calibrated too:
//     spqr-2bit-g16, spqr-3bit-g16, spqr-4bit-g16    scheme<spqr<2>>, <3>, <4>          3 schemes
//     spqr-4bit-g32                                  scheme<spqr<4, 32>>                1 scheme
// (not crossed with the algorithms: the name is the algorithm and the format at once; visit
// hands scheme<spqr<Bits>> to its function, whose grouped format_of<S> SpQR does not use).
// Other compositions of edgeq::scheme<...> work in C++, not by name.
//
// Compile time: a translation unit that calls make_linear(name, ...) instantiates the
// quantizer and the four kernels of all 144 formats, about 100 s of one core with gcc -O3
// (examples/edgeq/demo.cpp); so does visit() with a function that quantizes or runs kernels.
// names(), info(), contains() and canonical() instantiate no kernels (under 10 s, mostly the
// headers). Keep the name-dispatching calls in one .cpp file of a project.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/cartesian_product.hpp>
#include <boost/hana/concat.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/front.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/transform.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include "algo/rtn.hpp"
#include "core/error.hpp"
#include "core/matrix_view.hpp"
#include "linear.hpp"
#include "policy/backend.hpp"
#include "scheme.hpp"
#include "scheme_name.hpp"

namespace edgeq {
namespace registry {

namespace hana = boost::hana;

namespace detail {

// (hana::type_c<P1>, hana::type_c<P2>, ...) -> hana::type_c<scheme<P1, P2, ...>>
struct make_scheme {
    template <class Policies>
    auto operator()(Policies ps) const {
        return hana::unpack(ps, hana::template_<scheme>);
    }
};

inline auto uniform_schemes() {
    return hana::transform(
        hana::cartesian_product(hana::make_tuple(hana::tuple_t<bits<2>, bits<3>, bits<4>, bits<5>, bits<6>, bits<8>>,
                                                 hana::tuple_t<group<32>, group<64>, group<128>, group<256>, per_row>,
                                                 hana::tuple_t<symmetric, asymmetric>,
                                                 hana::tuple_t<fp16_scale, fp32_scale>)),
        make_scheme{});
}

inline auto nf4_schemes() {
    return hana::transform(
        hana::cartesian_product(hana::make_tuple(hana::tuple_t<nf4>, hana::tuple_t<group<32>, group<64>, group<128>, group<256>>,
                                                 hana::tuple_t<fp16_scale, fp32_scale, double_quant>)),
        make_scheme{});
}

inline auto ggml_schemes() {
    return hana::tuple_t<scheme<q4_0>, scheme<q4_1>, scheme<q5_0>, scheme<q5_1>, scheme<q8_0>, scheme<q2_k>, scheme<q3_k>,
                         scheme<q4_k>, scheme<q5_k>, scheme<q6_k>, scheme<iq4_nl>, scheme<iq4_xs>>;
}

// SpQR: its own storage in 2, 3 and 4 bits, groups of 16, 3-bit statistics over 16 rows; and
// 4 bits in groups of 32 (4.3125 bits before outliers: the 4-bit base that fits under 4.7).
inline auto spqr_schemes() {
    return hana::tuple_t<scheme<spqr<2>>, scheme<spqr<3>>, scheme<spqr<4>>, scheme<spqr<4, 32>>>;
}

// scheme<Ps...> run by Algorithm: the same type for the default rtn<>, so a base name and its
// "rtn-" spelling visit one type.
template <class Scheme, class Algorithm>
struct with_algorithm;
template <class... Ps, class Algorithm>
struct with_algorithm<scheme<Ps...>, Algorithm> {
    using type = typename std::conditional<std::is_same<Algorithm, rtn<>>::value, scheme<Ps...>, scheme<Ps..., Algorithm>>::type;
};
template <class Scheme, class Algorithm>
using with_algorithm_t = typename with_algorithm<Scheme, Algorithm>::type;

}  // namespace detail

// The built-in schemes (algorithm left at its default rtn<>), as a hana tuple of hana::type.
inline auto schemes() {
    return hana::concat(hana::concat(detail::uniform_schemes(), detail::nf4_schemes()), detail::ggml_schemes());
}
using schemes_type = decltype(schemes());
constexpr std::size_t scheme_count = decltype(hana::length(std::declval<schemes_type>()))::value;
// The SpQR schemes (spqr-2bit-g16 ...), named after the scheme_count formats.
constexpr std::size_t spqr_count = decltype(hana::length(detail::spqr_schemes()))::value;

// The algorithms a name can select, as a hana tuple of hana::type; the first is the default.
inline auto algorithms() { return hana::tuple_t<rtn<>, rtn<clip_search>, gptq<>, gptq<act_order>, awq<>>; }
using algorithms_type = decltype(algorithms());
constexpr std::size_t algorithm_count = decltype(hana::length(std::declval<algorithms_type>()))::value;

// What a name stands for.
struct scheme_info {
    std::string name;            // canonical: "int4-g128", "rtn-clip-nf4-g64-dq", "spqr-3bit-g16"
    std::string format_name;     // without the algorithm prefix (SpQR: the name, its format is its own)
    std::string algorithm;       // "rtn", "rtn-clip", "gptq", ..., "spqr"
    // Codes + scales + zero points, at 4096 columns. SpQR: its dense part exactly (codes and both
    // levels of statistics, rows a multiple of 16); the row pointers (32 bits a row) and the
    // outliers (32 bits each) add to it, so a quantized matrix's linear::bits_per_weight() (what
    // edgeq quantize reports) is the exact figure.
    double bits_per_weight = 0;
    int bits = 0;                // per code
    int group = 0;               // weights per scale (llama.cpp: per block); 0: one scale per row
    bool asymmetric = false;     // a stored zero point per group
    std::string codebook;        // "int" (uniform grid), "nf4" or "ggml" (a llama.cpp block type)
    // "fp16", "fp32", "dq8" (double quantization), "block" (llama.cpp's own), "spqr" (3-bit
    // scale and zero codes over 16 rows, with float16 ranges)
    std::string scale;
    // The algorithm needs calibration data (gptq, awq, spqr): make_linear refuses the name,
    // engine::plan_of and edgeq quantize --calib take it.
    bool calibrated = false;
};

namespace detail {

struct table {
    std::vector<scheme_info> formats;  // in schemes() order, algorithm rtn; then spqr_schemes()
    std::vector<std::string> names;
    std::vector<std::string> algorithms;  // name() of each algorithm, in algorithms() order
    std::vector<char> calibrated;         // and whether it needs calibration
    std::vector<int> uniform_bits, groups_int, groups_nf4;  // what the formats cover, for messages
    std::vector<std::string> ggml_names;                    // "q4_0" ... "iq4_xs"
    std::vector<int> spqr_bits, spqr_groups;
};

// The index of SpQR in parsed::algorithm: after algorithms(), whose table visit does not cross
// with SpQR's schemes.
constexpr std::size_t spqr_algorithm = algorithm_count;

// One format's facts as plain data; its name is built from them at run time, by the function
// that name_of<S>() calls.
struct raw_entry {
    int bits;
    int group;
    bool asymmetric;
    const char* codebook;
    const char* scale;
    const char* scale_suffix;
    double bits_per_weight;
    const char* block_name;  // a llama.cpp type's name ("Q4_K"), else null
};

template <class S>
raw_entry raw_entry_of(std::false_type /*llama.cpp type*/) {
    using F = format_of<S>;
    return raw_entry{F::bits, F::group, F::asymmetric, codebook_name_of<S>(), scale_name_of<S>(),
                     edgeq::detail::scale_tag<typename S::scale_policy>::suffix(), edgeq::bits_per_weight<S>(4096), nullptr};
}
template <class S>
raw_entry raw_entry_of(std::true_type) {
    using B = typename format_of<S>::block_type;
    const char* n = B::name();
    while (*n && (*n < '0' || *n > '9')) ++n;  // the width is the name's first digit: Q4_K, IQ4_XS
    return raw_entry{*n - '0', B::weights, false, "ggml", "block", "", edgeq::bits_per_weight<S>(4096), B::name()};
}

struct raw_entries {
    template <class... Ts>
    std::array<raw_entry, sizeof...(Ts)> operator()(Ts...) const {
        return {{raw_entry_of<typename Ts::type>(is_ggml_format<format_of<typename Ts::type>>{})...}};
    }
};

struct algorithm_names_of {
    template <class... As>
    std::vector<std::string> operator()(As...) const {
        return {std::string(As::type::name())...};
    }
};
struct algorithm_calibrated_of {
    template <class... As>
    std::vector<char> operator()(As...) const {
        return {char(As::type::calibrated)...};
    }
};

template <class S>
scheme_info spqr_info_of() {
    using A = typename S::algorithm;
    using F = spqr_format<A::bits, A::group, A::stat_bits, A::stat_group>;
    scheme_info i;
    i.name = i.format_name = F::name();
    i.algorithm = A::name();
    i.bits_per_weight = F::dense_bits_per_weight();
    i.bits = F::bits;
    i.group = F::group;
    i.asymmetric = true;
    i.codebook = "int";
    i.scale = "spqr";
    i.calibrated = A::calibrated;
    return i;
}
struct spqr_infos {
    template <class... Ts>
    std::vector<scheme_info> operator()(Ts...) const {
        return {spqr_info_of<typename Ts::type>()...};
    }
};

inline scheme_info info_from(const raw_entry& e) {
    scheme_info i;
    i.format_name = e.block_name ? edgeq::detail::lower_case(e.block_name)
                                 : edgeq::detail::compose_name(nullptr, e.codebook, e.bits, e.group, e.asymmetric, e.scale_suffix);
    i.name = i.format_name;
    i.bits_per_weight = e.bits_per_weight;
    i.bits = e.bits;
    i.group = e.group;
    i.asymmetric = e.asymmetric;
    i.codebook = e.codebook;
    i.scale = e.scale;
    return i;
}

inline void add_unique(std::vector<int>& v, int x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

inline const table& the_table() {
    static const table t = [] {
        table r;
        r.algorithms = hana::unpack(algorithms(), algorithm_names_of{});
        r.calibrated = hana::unpack(algorithms(), algorithm_calibrated_of{});
        for (const raw_entry& e : hana::unpack(schemes(), raw_entries{})) {
            r.formats.push_back(info_from(e));
            r.formats.back().algorithm = r.algorithms.front();
        }
        for (const scheme_info& i : hana::unpack(spqr_schemes(), spqr_infos{})) r.formats.push_back(i);
        for (const scheme_info& i : r.formats) {
            r.names.push_back(i.name);
            if (i.algorithm == "spqr") {
                add_unique(r.spqr_bits, i.bits);
                add_unique(r.spqr_groups, i.group);
                continue;
            }
            if (i.codebook == "ggml") {
                r.ggml_names.push_back(i.name);
                continue;
            }
            if (i.codebook == "int") add_unique(r.uniform_bits, i.bits);
            add_unique(i.codebook == "int" ? r.groups_int : r.groups_nf4, i.group);
        }
        return r;
    }();
    return t;
}

inline std::string join(const std::vector<std::string>& v, const char* sep, const char* last_sep) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? last_sep : sep) + v[i];
    return s;
}
inline std::string group_token(int g) { return g ? "g" + std::to_string(g) : std::string("row"); }
inline std::string group_list(const std::vector<int>& gs) {
    std::vector<std::string> v;
    for (int g : gs) v.push_back(group_token(g));
    return join(v, ", ", " and ");
}

inline std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> d(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) d[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = d[0];
        d[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = d[j];
            d[j] = std::min(std::min(d[j] + 1, d[j - 1] + 1), diag + (a[i - 1] == b[j - 1] ? 0 : 1));
            diag = up;
        }
    }
    return d[b.size()];
}

inline std::vector<std::string> split_dashes(const std::string& s) {
    std::vector<std::string> tok;
    for (std::size_t b = 0;;) {
        const std::size_t e = s.find('-', b);
        tok.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) return tok;
        b = e + 1;
    }
}

// Up to three built-in names closest to `wrong` (prefixed with `prefix`): least edit distance,
// then most parts in common, then table order.
inline std::vector<std::string> closest(const std::string& wrong, const std::string& prefix) {
    const table& t = the_table();
    const std::vector<std::string> wt = split_dashes(wrong);
    struct cand {
        std::size_t dist;
        std::size_t shared;
        std::size_t index;
    };
    std::vector<cand> c;
    for (std::size_t i = 0; i < t.names.size(); ++i) {
        std::size_t shared = 0;
        for (const std::string& part : split_dashes(t.names[i])) shared += std::count(wt.begin(), wt.end(), part) ? 1 : 0;
        c.push_back(cand{edit_distance(wrong, t.names[i]), shared, i});
    }
    std::sort(c.begin(), c.end(), [](const cand& a, const cand& b) {
        return a.dist != b.dist ? a.dist < b.dist : a.shared != b.shared ? a.shared > b.shared : a.index < b.index;
    });
    std::vector<std::string> out;
    for (std::size_t k = 0; k < c.size() && out.size() < 3; ++k) {
        if (c[k].dist > c[0].dist + 1 || c[k].dist > std::max<std::size_t>(4, wrong.size() / 2)) break;
        out.push_back(prefix + t.names[c[k].index]);
    }
    return out;
}

struct parsed {
    std::size_t format = 0;     // index into schemes()
    std::size_t algorithm = 0;  // index into algorithms()
};

inline bool parse_int(const std::string& s, int& out) {
    if (s.empty() || s.size() > 6) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    out = std::stoi(s);
    return true;
}

inline std::string join_dashes(const std::vector<std::string>& tok) {
    std::string s;
    for (const std::string& t : tok)
        if (!t.empty()) s += (s.empty() ? "" : "-") + t;
    return s;
}

// The format part of a name, without algorithm prefix. On failure: why, and repaired spellings
// to suggest (checked by the caller).
struct body_result {
    bool ok = false;
    std::size_t format = 0;
    std::string why;
    std::vector<std::string> fixes;  // format parts
    std::string fix_prefix;          // the algorithm prefix of the fixes, if they need another one
};

inline body_result parse_body(const std::string& body) {
    const table& t = the_table();
    body_result r;
    const std::vector<std::string> tok = split_dashes(body);
    const auto fail = [&r](std::string why) {
        r.why = std::move(why);
        return r;
    };
    const auto with = [&tok](std::size_t i, const std::string& s) {  // tok with part i replaced (dropped if s is empty)
        std::vector<std::string> v = tok;
        v[i] = s;
        return join_dashes(v);
    };
    for (const std::string& s : tok)
        if (s.empty()) {
            r.fixes.push_back(join_dashes(tok));
            return fail("empty part between dashes");
        }
    if (std::count(t.ggml_names.begin(), t.ggml_names.end(), body)) {
        r.ok = true;
        r.format = std::size_t(std::find(t.names.begin(), t.names.end(), body) - t.names.begin());
        return r;
    }
    if (tok[0].size() > 1 && (tok[0][0] == 'q' || tok[0].compare(0, 2, "iq") == 0) && tok[0].find('_') != std::string::npos)
        return fail("not one of the llama.cpp types built in (" + join(t.ggml_names, ", ", " and ") + ")");

    // Code-book and width.
    std::vector<std::string> widths;
    for (int b : t.uniform_bits) widths.push_back("int" + std::to_string(b));
    widths.push_back("nf4");
    const std::string widths_msg = join(widths, ", ", " or ") + " (or a llama.cpp type: q4_k, q8_0..., or SpQR: spqr-3bit-g16)";
    bool is_nf4 = false;
    int bits = 0;
    if (tok[0] == "nf4") {
        is_nf4 = true;
        bits = 4;
    } else if (tok[0].compare(0, 3, "int") == 0 && parse_int(tok[0].substr(3), bits)) {
        if (std::find(t.uniform_bits.begin(), t.uniform_bits.end(), bits) == t.uniform_bits.end()) {
            std::vector<int> by_distance = t.uniform_bits;
            std::stable_sort(by_distance.begin(), by_distance.end(), [bits](int a, int b) { return std::abs(a - bits) < std::abs(b - bits); });
            for (int b : by_distance) r.fixes.push_back(with(0, "int" + std::to_string(b)));
            return fail("'" + tok[0] + "' is not a built-in width; use " + widths_msg);
        }
    } else if (tok[0] == "clip" || tok[0] == "actorder") {
        r.fixes.push_back(with(0, ""));
        r.fix_prefix = tok[0] == "clip" ? "rtn-clip-" : "gptq-actorder-";
        return fail("'" + tok[0] + "' belongs to the algorithm prefix (" + r.fix_prefix + ")");
    } else {
        return fail("a name starts with the code-book and width: " + widths_msg);
    }

    // Group.
    const std::vector<int>& groups = is_nf4 ? t.groups_nf4 : t.groups_int;
    const int default_group = is_nf4 ? 64 : 128;  // scheme<>'s defaults
    const std::string groups_msg = "valid groups are " + group_list(groups);
    std::vector<int> ranked = groups;  // default first, then the others
    std::stable_sort(ranked.begin(), ranked.end(), [default_group](int a, int b) { return (a == default_group) > (b == default_group); });
    if (tok.size() < 2) {
        for (int g : ranked) r.fixes.push_back(tok[0] + "-" + group_token(g));
        return fail("the group is missing (" + groups_msg + ")");
    }
    int group = -1;
    if (tok[1] == "row") {
        group = 0;
    } else if (tok[1].size() > 1 && tok[1][0] == 'g' && parse_int(tok[1].substr(1), group) && group > 0) {
        // nearest sizes first (ratio), per row last
        const int given = group;
        std::stable_sort(ranked.begin(), ranked.end(), [given](int a, int b) {
            const auto far = [given](int g) { return g ? std::fabs(std::log(double(g) / double(given))) : 1e9; };
            return far(a) < far(b);
        });
    } else {
        group = -1;
    }
    if (group < 0 || std::find(groups.begin(), groups.end(), group) == groups.end()) {
        for (int g : ranked) r.fixes.push_back(with(1, group_token(g)));
        if (is_nf4) r.fixes.push_back("int4-" + join_dashes(std::vector<std::string>(tok.begin() + 1, tok.end())));
        return fail("'" + tok[1] + "' is not a built-in group" + (is_nf4 ? std::string(" for nf4") : std::string()) + "; " +
                    groups_msg + " (in C++, edgeq::group<G> takes any multiple of 32 up to 4096)");
    }

    // Zero point and scale storage: each at most once, in this order.
    bool asym = false, misordered = false;
    std::string scale = "fp16";
    int stage = 0;  // 0: before -asym, 1: after it, 2: after the scale
    for (std::size_t i = 2; i < tok.size(); ++i) {
        const std::string& s = tok[i];
        if (s == "asym") {
            if (stage > 0) misordered = true;
            asym = true;
            stage = std::max(stage, 1);
        } else if (s == "f32" || s == "dq") {
            if (stage == 2) misordered = true;
            scale = s == "f32" ? "fp32" : "dq8";
            stage = 2;
        } else {
            std::string why;
            if (s == "sym" || s == "symmetric") {
                r.fixes.push_back(with(i, ""));
                why = "symmetric is the default; drop '-" + s + "'";
            } else if (s == "fp16" || s == "f16" || s == "half") {
                r.fixes.push_back(with(i, ""));
                why = "fp16 scales are the default; drop '-" + s + "'";
            } else if (s == "asymmetric" || s == "zp" || s == "zero") {
                r.fixes.push_back(with(i, "asym"));
                why = "write the zero point as '-asym', not '-" + s + "'";
            } else if (s == "fp32" || s == "float") {
                r.fixes.push_back(with(i, "f32"));
                why = "write fp32 scales as '-f32', not '-" + s + "'";
            } else if (s == "dq8" || s == "double_quant" || s == "doublequant") {
                r.fixes.push_back(with(i, "dq"));
                why = "write double quantization as '-dq', not '-" + s + "'";
            } else if (s == "clip") {
                r.fixes.push_back(with(i, ""));
                r.fix_prefix = "rtn-clip-";
                why = "the clip search is an algorithm prefix, not a suffix";
            } else if (s == "actorder") {
                r.fixes.push_back(with(i, ""));
                r.fix_prefix = "gptq-actorder-";
                why = "act-order is part of the algorithm prefix: gptq-actorder-";
            } else {
                r.fixes.push_back(with(i, ""));
                why = "'" + s + "' is not a part of a name; after the group come -asym, then -f32 or -dq";
            }
            return fail(why);
        }
    }
    const std::string head = (is_nf4 ? std::string("nf4") : "int" + std::to_string(bits)) + "-" + group_token(group);
    const std::string tail = scale == "fp32" ? "-f32" : scale == "dq8" ? "-dq" : "";
    if (is_nf4 && asym) {
        r.fixes.push_back(head + tail);
        r.fixes.push_back("int4-" + group_token(group) + "-asym" + tail);
        return fail("nf4 has no zero point (each group is scaled by its absolute maximum); drop -asym");
    }
    if (!is_nf4 && scale == "dq8") {
        r.fixes.push_back(head + (asym ? "-asym" : ""));
        r.fixes.push_back(head + (asym ? "-asym" : "") + "-f32");
        if (bits == 4) r.fixes.push_back("nf4-" + group_token(group) + "-dq");
        return fail("double quantization (-dq) is built in for nf4 only; use the default fp16 scales or -f32");
    }
    const std::string canonical = head + (asym ? "-asym" : "") + tail;
    if (misordered || canonical != body) {
        r.fixes.push_back(canonical);
        return fail("not the canonical spelling (parts out of order, repeated or zero-padded)");
    }
    const auto it = std::find(t.names.begin(), t.names.end(), canonical);
    if (it == t.names.end()) return fail("not a built-in scheme");
    r.ok = true;
    r.format = std::size_t(it - t.names.begin());
    return r;
}

// SpQR's names: "spqr-" width "bit-" group, nothing after (its zero points are always stored).
inline body_result parse_spqr(const std::string& name) {
    const table& t = the_table();
    body_result r;
    const std::vector<std::string> tok = split_dashes(name);  // tok[0] is "spqr"
    const auto fail = [&r](std::string why) {
        r.why = std::move(why);
        return r;
    };
    const auto named = [](int bits, int group) { return "spqr-" + std::to_string(bits) + "bit-g" + std::to_string(group); };
    const int group0 = t.spqr_groups.front();
    for (const std::string& s : tok)
        if (s.empty()) {
            r.fixes.push_back(join_dashes(tok));
            return fail("empty part between dashes");
        }
    std::vector<std::string> widths;
    for (int b : t.spqr_bits) widths.push_back(std::to_string(b) + "bit");
    const std::string widths_msg = "SpQR's widths are " + join(widths, ", ", " and ");
    if (tok.size() < 2) {
        for (int b : t.spqr_bits) r.fixes.push_back(named(b, group0));
        return fail("SpQR's name gives the width and the group (" + widths_msg + ")");
    }
    // The width: "3bit"; "int3", "3", "3b" are repaired.
    std::string digits = tok[1];
    for (const char* pre : {"int", "w"})
        if (digits.compare(0, std::strlen(pre), pre) == 0) digits = digits.substr(std::strlen(pre));
    for (const char* suf : {"bits", "bit", "b"})
        if (digits.size() > std::strlen(suf) && digits.compare(digits.size() - std::strlen(suf), std::string::npos, suf) == 0) {
            digits = digits.substr(0, digits.size() - std::strlen(suf));
            break;
        }
    int bits = 0;
    if (!parse_int(digits, bits)) {
        for (int b : t.spqr_bits) r.fixes.push_back(named(b, group0));
        return fail("'" + tok[1] + "' is not a width; " + widths_msg);
    }
    const std::string group_part = tok.size() > 2 ? tok[2] : "g" + std::to_string(group0);
    if (std::find(t.spqr_bits.begin(), t.spqr_bits.end(), bits) == t.spqr_bits.end()) {
        std::vector<int> by_distance = t.spqr_bits;
        std::stable_sort(by_distance.begin(), by_distance.end(), [bits](int a, int b) { return std::abs(a - bits) < std::abs(b - bits); });
        for (int b : by_distance) r.fixes.push_back("spqr-" + std::to_string(b) + "bit-" + group_part);
        return fail("'" + tok[1] + "' is not a built-in SpQR width; " + widths_msg);
    }
    if (tok[1] != std::to_string(bits) + "bit") {
        r.fixes.push_back("spqr-" + std::to_string(bits) + "bit-" + group_part);
        return fail("SpQR's width is written '" + std::to_string(bits) + "bit', not '" + tok[1] + "'");
    }
    // The group: one of those built in at this width.
    std::vector<int> groups;
    for (const scheme_info& i : t.formats)
        if (i.algorithm == "spqr" && i.bits == bits) add_unique(groups, i.group);
    int group = 0;
    if (tok.size() < 3 || !(tok[2].size() > 1 && tok[2][0] == 'g' && parse_int(tok[2].substr(1), group)) ||
        std::find(groups.begin(), groups.end(), group) == groups.end()) {
        for (int g : groups) r.fixes.push_back(named(bits, g));
        std::vector<std::string> gs;
        for (int g : groups) gs.push_back("g" + std::to_string(g));
        return fail((tok.size() < 3 ? std::string("the group is missing")
                                    : "'" + tok[2] + "' is not a built-in SpQR group at " + std::to_string(bits) + " bits") +
                    "; the built-in " + std::to_string(bits) + "-bit SpQR schemes have " + join(gs, ", ", " and ") +
                    " (in C++, edgeq::spqr<Bits, Group> takes other groups)");
    }
    // Nothing after the group.
    if (tok.size() > 3) {
        r.fixes.push_back(named(bits, group));
        if (tok[3] == "asym") return fail("SpQR stores a zero point for every group; drop '-asym'");
        return fail("'" + tok[3] + "' is not a part of a SpQR name, which ends with the group");
    }
    const std::string canonical = named(bits, group);
    if (canonical != name) {
        r.fixes.push_back(canonical);
        return fail("not the canonical spelling (zero-padded)");
    }
    const auto it = std::find(t.names.begin(), t.names.end(), canonical);
    if (it == t.names.end()) return fail("not a built-in scheme");
    r.ok = true;
    r.format = std::size_t(it - t.names.begin());
    return r;
}

inline bool is_spqr_name(const std::string& body) { return body == "spqr" || body.compare(0, 5, "spqr-") == 0; }

// One line: what is wrong, what to write instead, how to list every name.
[[noreturn]] inline void refuse(const std::string& name, const std::string& why, std::vector<std::string> fixes,
                                const std::string& near_body, const std::string& prefix) {
    std::string msg = "unknown scheme '" + name + "': " + why;
    if (fixes.empty() && !near_body.empty()) fixes = closest(near_body, prefix);
    if (!fixes.empty()) msg += "; did you mean " + join(fixes, ", ", " or ") + "?";
    msg += " (`edgeq schemes` or edgeq::registry::names() lists all " + std::to_string(the_table().names.size()) + ")";
    throw error(msg);
}

// Splits off the algorithm prefix, longest match first ("rtn-clip-" before "rtn-").
inline std::size_t split_prefix(const std::string& name, std::string& prefix, std::string& body) {
    const table& t = the_table();
    std::size_t algorithm = 0, len = 0;
    for (std::size_t a = 0; a < t.algorithms.size(); ++a) {
        const std::string pre = t.algorithms[a] + "-";
        if (name.compare(0, pre.size(), pre) == 0 && pre.size() > len) len = pre.size(), algorithm = a;
    }
    prefix = name.substr(0, len);
    body = name.substr(len);
    return algorithm;
}

inline std::string canonical_prefix(std::size_t algorithm) {
    return algorithm == 0 ? std::string() : the_table().algorithms[algorithm] + "-";
}

inline std::string lower(std::string s) {
    for (char& c : s) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

// A SpQR name (its lower-case spelling, split at an algorithm prefix, starts with "spqr").
inline parsed parse_spqr_name(const std::string& name, const std::string& lprefix, const std::string& lbody) {
    std::vector<std::string> fixes;
    if (parse_spqr(lbody).ok) fixes.push_back(lbody);
    if (!lprefix.empty())
        refuse(name, "SpQR is an algorithm of its own; drop the prefix '" + name.substr(0, lprefix.size()) + "'", fixes, lbody, "");
    if (lower(name) != name) refuse(name, "names are lower case", fixes, lbody, "");
    const body_result b = parse_spqr(name);
    if (!b.ok) {
        fixes.clear();
        for (const std::string& f : b.fixes)
            if (parse_spqr(f).ok && std::find(fixes.begin(), fixes.end(), f) == fixes.end() && fixes.size() < 3) fixes.push_back(f);
        refuse(name, b.why, fixes, name, "");
    }
    parsed p;
    p.algorithm = spqr_algorithm;
    p.format = b.format;
    return p;
}

// Strict: the canonical spelling only (the prefix "rtn-" of the default algorithm is accepted
// and dropped), with a message that says what to write instead.
inline parsed parse(const std::string& name) {
    const table& t = the_table();
    if (name.empty()) refuse(name, "the name is empty", {}, "", "");
    for (const std::string& a : t.algorithms)
        if (name == a) refuse(name, "'" + name + "' is an algorithm; follow it with a format", {name + "-int4-g128"}, "", "");

    {
        std::string lprefix, lbody;
        split_prefix(lower(name), lprefix, lbody);
        if (is_spqr_name(lbody)) return parse_spqr_name(name, lprefix, lbody);
    }

    parsed p;
    std::string prefix, body;
    p.algorithm = split_prefix(name, prefix, body);
    const std::string canon_prefix = canonical_prefix(p.algorithm);
    if (body.empty()) refuse(name, "the algorithm prefix needs a format after it", {prefix + "int4-g128"}, "", "");

    std::string lower = name;
    for (char& c : lower) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (lower != name) {
        std::string lprefix, lbody;
        const std::size_t la = split_prefix(lower, lprefix, lbody);
        std::vector<std::string> fixes;
        if (parse_body(lbody).ok) fixes.push_back(canonical_prefix(la) + lbody);
        refuse(name, "names are lower case", fixes, lbody, canonical_prefix(la));
    }

    const body_result b = parse_body(body);
    if (!b.ok) {
        // Suggest the repairs that are built-in names.
        std::vector<std::string> fixes;
        for (const std::string& f : b.fixes) {
            const std::string full = (b.fix_prefix.empty() ? canon_prefix : b.fix_prefix) + f;
            if (parse_body(f).ok && std::find(fixes.begin(), fixes.end(), full) == fixes.end() && fixes.size() < 3)
                fixes.push_back(full);
        }
        refuse(name, b.why, fixes, body, canon_prefix);
    }
    p.format = b.format;
    if (t.algorithms[p.algorithm] == "rtn-clip" && t.formats[p.format].codebook == "ggml")
        refuse(name, "llama.cpp's types fit their scales with their own search; drop the prefix '" + prefix + "'",
               {body}, "", "");
    return p;
}

// visit's dispatch: one thunk per (algorithm, format), built once per F.
template <class R, class F, class S>
R call_with(F& f) {
    return f(hana::type_c<S>);
}

template <class R, class F, class Algorithm>
struct row_of_thunks {
    template <class... Ts>
    std::array<R (*)(F&), sizeof...(Ts)> operator()(Ts...) const {
        return {{&call_with<R, F, with_algorithm_t<typename Ts::type, Algorithm>>...}};
    }
};

template <class R, class F>
struct spqr_thunks {
    template <class... Ts>
    std::array<R (*)(F&), sizeof...(Ts)> operator()(Ts...) const {
        return {{&call_with<R, F, typename Ts::type>...}};
    }
};

template <class R, class F>
struct thunk_table {
    template <class... As>
    std::array<std::array<R (*)(F&), scheme_count>, sizeof...(As)> operator()(As...) const {
        return {{hana::unpack(schemes(), row_of_thunks<R, F, typename As::type>{})...}};
    }
};

}  // namespace detail

// All built-in names, canonical: the scheme_count formats without algorithm prefix (prefix one
// with "rtn-clip-" to turn the clip search on), then the spqr_count SpQR schemes.
inline const std::vector<std::string>& names() { return detail::the_table().names; }

// The algorithm prefixes a format's name may carry: "rtn" (the default, may be left out),
// "rtn-clip", "gptq", "gptq-actorder", "awq". (SpQR's names are whole: spqr-3bit-g16.)
inline const std::vector<std::string>& algorithm_names() { return detail::the_table().algorithms; }

// True if `name` parses to a built-in scheme (no exception).
inline bool contains(const std::string& name) {
    try {
        detail::parse(name);
        return true;
    } catch (const error&) {
        return false;
    }
}

// Throws edgeq::error for a name that is not built in, with the closest names.
inline scheme_info info(const std::string& name) {
    const detail::parsed p = detail::parse(name);
    scheme_info i = detail::the_table().formats[p.format];
    if (p.algorithm == detail::spqr_algorithm) return i;
    i.algorithm = detail::the_table().algorithms[p.algorithm];
    i.calibrated = detail::the_table().calibrated[p.algorithm] != 0;
    if (p.algorithm != 0) i.name = i.algorithm + "-" + i.format_name;
    return i;
}

// The canonical spelling of a valid name ("rtn-int4-g128" -> "int4-g128").
inline std::string canonical(const std::string& name) { return info(name).name; }

// Calls f(hana::type_c<S>) with the scheme `name` stands for and returns what f returns; f must
// return the same type (or void) for every scheme. Instantiates f for every built-in scheme and
// algorithm, and for the SpQR schemes scheme<spqr<Bits>> (is_spqr<typename S::algorithm>: their
// storage is spqr_format, not format_of<S>). Throws edgeq::error for a name that is not built in.
template <class F>
auto visit(const std::string& name, F&& f) -> decltype(f(hana::front(schemes()))) {
    using Fn = typename std::remove_reference<F>::type;
    using R = decltype(f(hana::front(schemes())));
    static const auto table = hana::unpack(algorithms(), detail::thunk_table<R, Fn>{});
    static const auto spqr_table = hana::unpack(detail::spqr_schemes(), detail::spqr_thunks<R, Fn>{});
    const detail::parsed p = detail::parse(name);
    if (p.algorithm == detail::spqr_algorithm) return spqr_table[p.format - scheme_count](f);
    return table[p.algorithm][p.format](f);
}

// Calls f(hana::type_c<S>) for every built-in scheme (algorithm rtn<>), in names() order.
template <class F>
void for_each_scheme(F&& f) {
    hana::for_each(schemes(), f);
}

namespace detail {
template <class S, class Backend>
std::unique_ptr<linear> make_linear_of(const std::string&, matrix_view<const float> w, quant_options opt,
                                       std::false_type /*calibrated*/) {
    opt.fit.clip_search = S::algorithm::clip;
    return edgeq::make_linear<S, Backend>(w, opt);
}
// A calibrated algorithm (gptq, awq, spqr): refused without compiling a linear for it.
template <class S, class Backend>
std::unique_ptr<linear> make_linear_of(const std::string& name, matrix_view<const float>, quant_options, std::true_type) {
    throw error("registry::make_linear: " + name + " needs calibration data (the Hessian or the activations of "
                "its inputs): use engine::quantize_calibrated, or edgeq quantize --calib FILE");
}
}  // namespace detail

// Quantizes w with the scheme `name` stands for. The clip search follows the name's algorithm
// prefix (opt.fit.clip_search is set from it); the other options are taken from opt.
template <class Backend = backend::best>
std::unique_ptr<linear> make_linear(const std::string& name, matrix_view<const float> w, quant_options opt) {
    return visit(name, [&name, &w, &opt](auto t) -> std::unique_ptr<linear> {
        using S = typename decltype(t)::type;
        return detail::make_linear_of<S, Backend>(name, w, opt, std::integral_constant<bool, S::algorithm::calibrated>{});
    });
}
template <class Backend = backend::best>
std::unique_ptr<linear> make_linear(const std::string& name, matrix_view<const float> w) {
    return make_linear<Backend>(name, w, quant_options{});
}

}  // namespace registry
}  // namespace edgeq
