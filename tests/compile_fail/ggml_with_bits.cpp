#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::scheme<edgeq::q4_k, edgeq::bits<4>>>();
