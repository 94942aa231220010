// A minimal test harness for the CUDA tests, so that they build with nothing but a CUDA toolkit
// and a C++ compiler (a GPU machine need not have Catch2): TEST(name) registers a function,
// CHECK / REQUIRE record failures with their message, CUDA_CHECK checks every CUDA call.
// main() (harness.cu) runs every test and exits 0 (all passed), 1 (a failure) or 77 when the
// machine has no usable GPU, which CTest reports as skipped (SKIP_RETURN_CODE 77).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgeq_test {

struct test_case {
    const char* name;
    void (*fn)();
};
std::vector<test_case>& registry();
int& failures();

struct registrar {
    registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

// Thrown by REQUIRE: ends the current test, which is counted as failed.
struct require_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace edgeq_test

#define EDGEQ_TEST_CAT2(a, b) a##b
#define EDGEQ_TEST_CAT(a, b) EDGEQ_TEST_CAT2(a, b)
#define TEST(name)                                                                                          \
    static void EDGEQ_TEST_CAT(test_fn_, __LINE__)();                                                       \
    static const ::edgeq_test::registrar EDGEQ_TEST_CAT(test_reg_, __LINE__)(name, &EDGEQ_TEST_CAT(test_fn_, __LINE__)); \
    static void EDGEQ_TEST_CAT(test_fn_, __LINE__)()

#define EDGEQ_TEST_FAIL(kind, expr, msg)                                                              \
    do {                                                                                              \
        std::ostringstream os_;                                                                       \
        os_ << __FILE__ << ":" << __LINE__ << ": " << kind << " failed: " << expr << "; " << msg;     \
        std::fprintf(stderr, "%s\n", os_.str().c_str());                                              \
        ++::edgeq_test::failures();                                                                   \
        if (std::string(kind) == "REQUIRE") throw ::edgeq_test::require_failed(os_.str());            \
    } while (0)
#define CHECK_MSG(cond, msg) \
    do {                     \
        if (!(cond)) EDGEQ_TEST_FAIL("CHECK", #cond, msg); \
    } while (0)
#define REQUIRE_MSG(cond, msg) \
    do {                       \
        if (!(cond)) EDGEQ_TEST_FAIL("REQUIRE", #cond, msg); \
    } while (0)
#define CHECK(cond) CHECK_MSG(cond, "")
#define REQUIRE(cond) REQUIRE_MSG(cond, "")
#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        const cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) EDGEQ_TEST_FAIL("REQUIRE", #call, cudaGetErrorString(e_));    \
    } while (0)
// The statement must throw an exception whose what() contains `text`.
#define REQUIRE_THROWS_WITH_TEXT(stmt, text)                                                         \
    do {                                                                                             \
        bool thrown_ = false;                                                                        \
        try {                                                                                        \
            stmt;                                                                                    \
        } catch (const std::exception& ex_) {                                                        \
            thrown_ = true;                                                                          \
            if (std::string(ex_.what()).find(text) == std::string::npos)                             \
                EDGEQ_TEST_FAIL("REQUIRE", #stmt, "threw '" << ex_.what() << "', expected " << text); \
        }                                                                                            \
        if (!thrown_) EDGEQ_TEST_FAIL("REQUIRE", #stmt, "did not throw");                            \
    } while (0)

namespace edgeq_test {

// A device buffer freed at scope exit, so a failed REQUIRE leaks nothing.
template <class T>
struct device_buffer {
    T* p = nullptr;
    explicit device_buffer(std::size_t n) { CUDA_CHECK(cudaMalloc(&p, (n ? n : 1) * sizeof(T))); }
    ~device_buffer() { cudaFree(p); }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
};

}  // namespace edgeq_test
