// scheme<Policies...>: a quantization scheme composed from policies, in any order, each kind
// at most once; what is left out takes its default:
//     algorithm rtn<>, codebook uniform_grid, bits<4>, group<128>, symmetric, fp16_scale.
// A llama.cpp type (q4_0 ... q6_k, iq4_nl, iq4_xs) stands instead of the storage policies.
// The scheme names its storage format (format/grouped.hpp) and checks the composition with
// static_asserts whose messages say what to change.
#pragma once
#include <type_traits>

#include "format/ggml/format.hpp"
#include "format/grouped.hpp"
#include "policy/algorithm.hpp"
#include "policy/bits.hpp"
#include "policy/codebook.hpp"
#include "policy/ggml_type.hpp"
#include "policy/group.hpp"
#include "policy/kind.hpp"
#include "policy/scale.hpp"
#include "policy/zero_point.hpp"

namespace edgeq {
namespace detail {

template <class T, class = void>
struct is_policy : std::false_type {};
template <class T>
struct is_policy<T, decltype(void(sizeof(typename T::policy_kind)))> : std::true_type {};

template <class T, class = void>
struct kind_of {
    using type = void;
};
template <class T>
struct kind_of<T, decltype(void(sizeof(typename T::policy_kind)))> {
    using type = typename T::policy_kind;
};

template <class Kind, class... Ps>
struct count_kind : std::integral_constant<int, 0> {};
template <class Kind, class P, class... Ps>
struct count_kind<Kind, P, Ps...>
    : std::integral_constant<int, (std::is_same<typename kind_of<P>::type, Kind>::value ? 1 : 0) +
                                      count_kind<Kind, Ps...>::value> {};

template <class Kind, class Default, class... Ps>
struct find_kind {
    using type = Default;
};
template <class Kind, class Default, class P, class... Ps>
struct find_kind<Kind, Default, P, Ps...> {
    using type = typename std::conditional<std::is_same<typename kind_of<P>::type, Kind>::value, P,
                                           typename find_kind<Kind, Default, Ps...>::type>::type;
};

// The storage format: a fixed one (a ggml_type policy) or the grouped format of the policies.
template <class Storage, class Grouped>
struct storage_format {
    using type = ggml_format<typename Storage::block>;
};
template <class Grouped>
struct storage_format<void, Grouped> {
    using type = Grouped;
};

template <bool... Bs>
struct all_of : std::true_type {};
template <bool B, bool... Bs>
struct all_of<B, Bs...> : std::integral_constant<bool, B && all_of<Bs...>::value> {};

}  // namespace detail

template <class... Policies>
struct scheme {
    static_assert(detail::all_of<detail::is_policy<Policies>::value...>::value,
                  "edgeq::scheme: an argument is not an edgeq policy; use bits<N>, group<G>, per_row, "
                  "symmetric, asymmetric, fp16_scale, fp32_scale, double_quant, uniform_grid, nf4 "
                  "or an algorithm such as rtn<>");
    static_assert(detail::count_kind<kind::algorithm, Policies...>::value <= 1,
                  "edgeq::scheme: two algorithms given; a scheme has one (rtn<>, gptq<>, awq<>...)");
    static_assert(detail::count_kind<kind::bits, Policies...>::value <= 1,
                  "edgeq::scheme: two bit widths given; keep one bits<N>");
    static_assert(detail::count_kind<kind::group, Policies...>::value <= 1,
                  "edgeq::scheme: two group sizes given; keep one group<G> or per_row");
    static_assert(detail::count_kind<kind::zero_point, Policies...>::value <= 1,
                  "edgeq::scheme: both symmetric and asymmetric given; keep one");
    static_assert(detail::count_kind<kind::scale, Policies...>::value <= 1,
                  "edgeq::scheme: two scale storages given; keep one of fp16_scale, fp32_scale, "
                  "double_quant");
    static_assert(detail::count_kind<kind::codebook, Policies...>::value <= 1,
                  "edgeq::scheme: two code-books given; keep uniform_grid or nf4");
    static_assert(detail::count_kind<kind::storage, Policies...>::value <= 1,
                  "edgeq::scheme: two llama.cpp types given (q4_k, q8_0...); keep one");
    static_assert(detail::count_kind<kind::storage, Policies...>::value == 0 ||
                      detail::count_kind<kind::bits, Policies...>::value + detail::count_kind<kind::group, Policies...>::value +
                              detail::count_kind<kind::zero_point, Policies...>::value +
                              detail::count_kind<kind::scale, Policies...>::value +
                              detail::count_kind<kind::codebook, Policies...>::value ==
                          0,
                  "edgeq::scheme: a llama.cpp type (q4_k, q8_0...) fixes its own bits, blocks, scales and "
                  "code-book; drop bits<>, group<>, symmetric/asymmetric, the scale storage and the code-book");

    using algorithm = typename detail::find_kind<kind::algorithm, rtn<>, Policies...>::type;
    using codebook = typename detail::find_kind<kind::codebook, uniform_grid, Policies...>::type;
    using bits_policy = typename detail::find_kind<kind::bits, bits<codebook::default_bits>, Policies...>::type;
    using group_policy = typename detail::find_kind<kind::group, group<std::is_same<codebook, nf4>::value ? 64 : 128>,
                                                    Policies...>::type;
    using zero_policy = typename detail::find_kind<kind::zero_point, symmetric, Policies...>::type;
    using scale_policy = typename detail::find_kind<kind::scale, fp16_scale, Policies...>::type;

    static_assert(!codebook::fixed_bits || bits_policy::value == codebook::default_bits,
                  "edgeq::scheme: nf4 is a 4-bit code-book; use bits<4> or leave bits out");
    static_assert(!std::is_same<codebook, nf4>::value || !zero_policy::has_zero,
                  "edgeq::scheme: nf4 scales each group by its absolute maximum and has no zero "
                  "point; drop asymmetric");

    using storage_policy = typename detail::find_kind<kind::storage, void, Policies...>::type;
    using format = typename detail::storage_format<
        storage_policy, grouped_format<codebook, bits_policy::value, group_policy::value, zero_policy::has_zero,
                                       typename scale_policy::type>>::type;
};

template <class T>
struct is_scheme : std::false_type {};
template <class... Ps>
struct is_scheme<scheme<Ps...>> : std::true_type {};

template <class Scheme>
using format_of = typename Scheme::format;

// Average bits per stored weight, codes plus scales and zero points, as a constant expression.
// Per-row schemes depend on the row length: it is 4096 unless given.
template <class Scheme>
constexpr double bits_per_weight(long row_length = 4096) {
    static_assert(is_scheme<Scheme>::value, "edgeq::bits_per_weight<S>: S must be an edgeq::scheme<...>");
    return Scheme::format::bits_per_weight(row_length);
}

}  // namespace edgeq
