// Every policy names its kind, so scheme<...> can find each one whatever the order and refuse
// two of the same kind or a type that is not a policy.
#pragma once

namespace edgeq {
namespace kind {
struct algorithm {};
struct bits {};
struct group {};
struct zero_point {};
struct scale {};
struct codebook {};
struct storage {};  // a fixed storage format (llama.cpp's block types): replaces the five above
}  // namespace kind
}  // namespace edgeq
