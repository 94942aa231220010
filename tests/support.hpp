// What several test files need: the shared models folder, temporary folders, files as bytes or
// floats, and the message of an expected edgeq::error.
#pragma once
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include <edgeq/core/error.hpp>

namespace test_support {

// ../shared: $EDGEQ_SHARED when set (only it), else <source dir>/../shared (EDGEQ_SOURCE_DIR from
// CMake), else ../shared from the working directory. Empty when absent.
inline std::string shared_dir() {
    auto has_models = [](const std::string& d) { return std::ifstream(d + "/models/stories260K/stories260K.bin").good(); };
    if (const char* e = std::getenv("EDGEQ_SHARED")) return has_models(e) ? e : "";
    std::vector<std::string> tries;
#ifdef EDGEQ_SOURCE_DIR
    tries.push_back(std::string(EDGEQ_SOURCE_DIR) + "/../shared");
#endif
    tries.push_back("../shared");
    for (const std::string& d : tries)
        if (has_models(d)) return d;
    return "";
}

// A fresh temporary directory, removed with its files at the end of the test.
struct temp_dir {
    std::string path;
    temp_dir() {
        char t[] = "/tmp/edgeq_test.XXXXXX";
        REQUIRE(::mkdtemp(t) != nullptr);
        path = t;
    }
    ~temp_dir() {
        const std::string cmd = "rm -rf '" + path + "'";
        if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path.c_str());
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const std::string& name) const { return path + "/" + name; }
};

inline std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(f.good());
}

// A little-endian float32 file (the references' .f32.bin).
inline std::vector<float> read_floats(const std::string& path) {
    const std::string b = read_bytes(path);
    std::vector<float> v(b.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

// The worst relative L2 error of got against ref over rows of `vocab` values.
inline double worst_rel_l2(const std::vector<float>& got, const std::vector<float>& ref, std::size_t vocab) {
    double worst = 0;
    for (std::size_t t = 0; t < ref.size() / vocab; ++t) {
        double d = 0, r = 0;
        for (std::size_t i = t * vocab; i < (t + 1) * vocab; ++i) {
            d += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
            r += double(ref[i]) * ref[i];
        }
        worst = std::max(worst, std::sqrt(d / r));
    }
    return worst;
}

// Runs f and returns the edgeq::error message; fails the test when nothing (or something else) is thrown.
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const edgeq::error& e) {
        return e.what();
    }
    FAIL("no edgeq::error was thrown");
    return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace test_support

// Skips the rest of a test case (with a note) when the shared folder is absent.
#define REQUIRE_SHARED(dir)                                                                                  \
    const std::string dir = test_support::shared_dir();                                                     \
    if (dir.empty()) {                                                                                       \
        WARN("skipped: ../shared not found (set EDGEQ_SHARED to the folder with models/ and reference/)"); \
        return;                                                                                              \
    }
