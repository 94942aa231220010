#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::bits<4>>();
