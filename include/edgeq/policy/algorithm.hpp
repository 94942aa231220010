// Offline algorithms: how the stored values are chosen. They do not change the storage format.
#pragma once
#include <type_traits>

#include "kind.hpp"

namespace edgeq {

// Option of rtn<>: search a shrink factor of the group range that minimises the (importance
// weighted) squared error, then refit the scale by least squares for the chosen codes.
struct clip_search {
    using option_kind = clip_search;
};

// Option of gptq<>: quantize columns in order of decreasing Hessian diagonal, with every group's
// scale fixed beforehand (static groups), so the stored layout keeps the original column order.
struct act_order {
    using option_kind = act_order;
};

namespace detail {
template <class X, class... Os>
struct has_option;
template <class X>
struct has_option<X> {
    static constexpr bool value = false;
};
template <class X, class O, class... Os>
struct has_option<X, O, Os...> {
    static constexpr bool value = std::is_same<O, X>::value || has_option<X, Os...>::value;
};
}  // namespace detail

// Round to nearest, optionally with clip_search. Needs no calibration; given calibration data
// (engine::quantize_calibrated), weighs each weight's error by E[x^2] of its input column.
template <class... Options>
struct rtn {
    using policy_kind = kind::algorithm;
    static constexpr bool clip = detail::has_option<clip_search, Options...>::value;
    static constexpr bool calibrated = false;
    static constexpr const char* name() { return clip ? "rtn-clip" : "rtn"; }
};

// GPTQ (Frantar et al., 2022; algo/gptq.hpp): needs the Hessian of each layer's inputs.
template <class... Options>
struct gptq {
    using policy_kind = kind::algorithm;
    static constexpr bool clip = detail::has_option<clip_search, Options...>::value;
    static constexpr bool act_order = detail::has_option<edgeq::act_order, Options...>::value;
    static constexpr bool calibrated = true;
    static constexpr const char* name() { return act_order ? "gptq-actorder" : "gptq"; }
};

// AWQ (Lin et al., 2023; algo/awq.hpp): per-channel scales from calibration inputs, folded into
// the layer that produces them, then round to nearest with the clip search.
template <class... Options>
struct awq {
    using policy_kind = kind::algorithm;
    static constexpr bool clip = true;
    static constexpr bool calibrated = true;
    static constexpr const char* name() { return "awq"; }
};

// SpQR (Dettmers et al., 2023; algo/spqr.hpp): GPTQ's sweep over groups of Group weights whose
// scales and zeros are quantized to StatBits over blocks of StatGroup rows, with the weights that
// would cost the most kept apart in float16. Unlike the algorithms above it decides the storage:
// spqr_format<Bits, Group, StatBits, StatGroup> (format/spqr.hpp), a dense part and a sparse one.
// So a SpQR scheme is scheme<spqr<...>> and nothing else (the scheme's grouped format_of is not
// what it stores); engine::plan_of produces it from the Hessian, and the registry names it
// "spqr-3bit-g16".
template <int Bits = 3, int Group = 16, int StatBits = 3, int StatGroup = 16>
struct spqr {
    using policy_kind = kind::algorithm;
    static constexpr bool clip = false;
    static constexpr bool calibrated = true;
    static constexpr int bits = Bits, group = Group, stat_bits = StatBits, stat_group = StatGroup;
    static constexpr const char* name() { return "spqr"; }
};

template <class Algorithm>
struct is_spqr : std::false_type {};
template <int B, int G, int SB, int SG>
struct is_spqr<spqr<B, G, SB, SG>> : std::true_type {};

}  // namespace edgeq
