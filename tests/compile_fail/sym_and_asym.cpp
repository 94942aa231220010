#include <edgeq/scheme.hpp>
constexpr double b = edgeq::bits_per_weight<edgeq::scheme<edgeq::symmetric, edgeq::asymmetric>>();
