// main() of the CUDA tests (harness.hpp).
#include "harness.hpp"

#include <cstdio>

namespace edgeq_test {
std::vector<test_case>& registry() {
    static std::vector<test_case> r;
    return r;
}
int& failures() {
    static int n = 0;
    return n;
}
}  // namespace edgeq_test

void edgeq_cuda_headers_compile();

int main(int argc, char** argv) {
    edgeq_cuda_headers_compile();
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        std::printf("SKIPPED: no usable CUDA device here (%s); the CUDA kernels were compiled but not run\n",
                    e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
        return 77;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::printf("device: %s, sm_%d%d\n", prop.name, prop.major, prop.minor);
    const std::string filter = argc > 1 ? argv[1] : "";
    int ran = 0, failed = 0;
    for (const auto& t : edgeq_test::registry()) {
        if (!filter.empty() && std::string(t.name).find(filter) == std::string::npos) continue;
        const int before = edgeq_test::failures();
        try {
            t.fn();
        } catch (const edgeq_test::require_failed&) {
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, ex.what());
            ++edgeq_test::failures();
        }
        const bool ok = edgeq_test::failures() == before;
        std::printf("%s %s\n", ok ? "PASS" : "FAIL", t.name);
        ++ran;
        failed += ok ? 0 : 1;
    }
    std::printf("%d tests, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
