#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::scheme<edgeq::nf4, edgeq::bits<3>>>();
