#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::scheme<edgeq::bits<4>, edgeq::bits<3>>>();
