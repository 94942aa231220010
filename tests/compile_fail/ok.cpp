#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::scheme<edgeq::nf4, edgeq::double_quant>>();
static_assert(b > 4.1 && b < 4.2, "nf4-g64-dq is about 4.127 bits per weight");
