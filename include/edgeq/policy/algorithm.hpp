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

namespace detail {
template <class... Os>
struct has_clip_search;
template <>
struct has_clip_search<> {
    static constexpr bool value = false;
};
template <class O, class... Os>
struct has_clip_search<O, Os...> {
    static constexpr bool value = std::is_same<O, clip_search>::value || has_clip_search<Os...>::value;
};
}  // namespace detail

// Round to nearest, optionally with clip_search.
template <class... Options>
struct rtn {
    using policy_kind = kind::algorithm;
    static constexpr bool clip = detail::has_clip_search<Options...>::value;
    static constexpr const char* name() { return clip ? "rtn-clip" : "rtn"; }
};

}  // namespace edgeq
