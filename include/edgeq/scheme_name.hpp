// name_of<Scheme>(): the canonical name of a scheme, as the registry and the edgeq CLI spell it.
//
//     [algorithm-] code-book+bits - group [-asym] [-f32 | -dq]
//
//     int4-g128            4-bit uniform grid, groups of 128, symmetric, fp16 scales
//     int4-g128-asym       ... with a zero point per group
//     int8-row             one scale per row
//     int6-g64-f32         fp32 scales
//     nf4-g64, nf4-g64-dq  NF4, fp16 or double-quantized scales
//     q4_k, q8_0, iq4_xs   llama.cpp's block types, as llama.cpp names them in lower case
//     rtn-clip-int4-g128   the algorithm prefix: none for plain rtn<> (the default), otherwise
//                          the algorithm's name(): rtn<clip_search> is "rtn-clip"
//     spqr-3bit-g16        SpQR, which has its own storage (scheme<spqr<3>>; format/spqr.hpp):
//                          spqr-{bits}bit-g{group}, then -s{stat bits} and -sg{stat rows}
//                          when they are not 3 and 16
//
// Defaults are left out of the name (symmetric, fp16 scales, plain rtn<>), so every scheme has
// exactly one name. No Hana here: this header is cheap to include.
#pragma once
#include <string>
#include <type_traits>

#include "format/spqr.hpp"
#include "scheme.hpp"

namespace edgeq {
namespace detail {

template <class Codebook>
struct codebook_tag;
template <>
struct codebook_tag<uniform_grid> {
    static const char* kind() { return "int"; }
};
template <>
struct codebook_tag<nf4> {
    static const char* kind() { return "nf4"; }
};

template <class ScalePolicy>
struct scale_tag;
template <>
struct scale_tag<fp16_scale> {
    static const char* suffix() { return ""; }
    static const char* kind() { return "fp16"; }
};
template <>
struct scale_tag<fp32_scale> {
    static const char* suffix() { return "-f32"; }
    static const char* kind() { return "fp32"; }
};
template <>
struct scale_tag<double_quant> {
    static const char* suffix() { return "-dq"; }
    static const char* kind() { return "dq8"; }
};

// One non-template function builds every name: a scheme's name_of<S>() is a call with
// constants, so naming many schemes (the registry) costs little compile time.
inline std::string compose_name(const char* algorithm, const char* codebook, int bits, int group, bool asymmetric,
                                const char* scale_suffix) {
    std::string n;
    if (algorithm && *algorithm) (n += algorithm) += '-';
    if (std::string(codebook) == "int") n += "int" + std::to_string(bits);
    else n += codebook;
    n += group ? "-g" + std::to_string(group) : std::string("-row");
    if (asymmetric) n += "-asym";
    return n += scale_suffix;
}

// The algorithm's part of a name: none for the default rtn<>.
template <class Algorithm>
const char* algorithm_name_in(std::true_type /*default*/) {
    return nullptr;
}
template <class Algorithm>
const char* algorithm_name_in(std::false_type) {
    return Algorithm::name();
}

// A llama.cpp type is named as llama.cpp names it, in lower case: "q4_k", "iq4_xs".
inline std::string lower_case(std::string s) {
    for (char& c : s) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

template <class Scheme>
std::string compose_name_of(bool with_algorithm, std::true_type /*llama.cpp type*/) {
    using A = typename Scheme::algorithm;
    const char* algorithm = with_algorithm ? algorithm_name_in<A>(std::is_same<A, rtn<>>{}) : nullptr;
    return (algorithm ? std::string(algorithm) + "-" : std::string()) + lower_case(format_of<Scheme>::name());
}

template <class Scheme>
std::string compose_name_of(bool with_algorithm, std::false_type) {
    using F = format_of<Scheme>;
    using A = typename Scheme::algorithm;
    return compose_name(with_algorithm ? algorithm_name_in<A>(std::is_same<A, rtn<>>{}) : nullptr,
                        codebook_tag<typename Scheme::codebook>::kind(), F::bits, F::group, F::asymmetric,
                        scale_tag<typename Scheme::scale_policy>::suffix());
}

// SpQR names its own storage (the algorithm and the format are one).
template <class Scheme, int B, int G, int SB, int SG>
std::string compose_name_by_algorithm(bool, spqr<B, G, SB, SG>) {
    return spqr_name(B, G, SB, SG);
}
template <class Scheme, class Algorithm>
std::string compose_name_by_algorithm(bool with_algorithm, Algorithm) {
    return compose_name_of<Scheme>(with_algorithm, is_ggml_format<format_of<Scheme>>{});
}

template <class Scheme>
std::string compose_name_of(bool with_algorithm) {
    return compose_name_by_algorithm<Scheme>(with_algorithm, typename Scheme::algorithm{});
}

}  // namespace detail

// The name of the scheme's storage format alone (no algorithm prefix): "int4-g128-asym"
// ("spqr-3bit-g16" for SpQR, whose format is its own).
template <class Scheme>
std::string format_name_of() {
    static_assert(is_scheme<Scheme>::value, "edgeq::format_name_of<S>: S must be an edgeq::scheme<...>");
    return detail::compose_name_of<Scheme>(false);
}

// The canonical name: "int4-g128", "rtn-clip-int3-g64-asym", "nf4-g64-dq".
template <class Scheme>
std::string name_of() {
    static_assert(is_scheme<Scheme>::value, "edgeq::name_of<S>: S must be an edgeq::scheme<...>");
    return detail::compose_name_of<Scheme>(true);
}

// "int" or "nf4", and "fp16", "fp32" or "dq8": the words the CLI's tables use.
template <class Scheme>
const char* codebook_name_of() {
    return detail::codebook_tag<typename Scheme::codebook>::kind();
}
template <class Scheme>
const char* scale_name_of() {
    return detail::scale_tag<typename Scheme::scale_policy>::kind();
}

}  // namespace edgeq
