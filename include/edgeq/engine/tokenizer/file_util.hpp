// Reading a whole file, with an edgeq::error that names it when it cannot be read.
#pragma once
#include <fstream>
#include <sstream>
#include <string>

#include "../../core/error.hpp"

namespace edgeq {
namespace tok {

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw error("tokenizer: cannot open " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline bool file_exists(const std::string& path) { return static_cast<bool>(std::ifstream(path)); }

}  // namespace tok
}  // namespace edgeq
