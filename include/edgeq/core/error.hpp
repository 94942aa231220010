// The one exception type of edgeq: every refusal of bad input (a scheme that cannot hold a
// matrix, NaN weights, a corrupt file) throws it with a message meant for the user.
#pragma once
#include <stdexcept>
#include <string>

namespace edgeq {

struct error : std::runtime_error {
    explicit error(const std::string& what) : std::runtime_error("edgeq: " + what) {}
};

}  // namespace edgeq
