// The CUDA GEMV against the CPU scalar reference, for every kind of grouped format. Without a
// GPU (or driver) every test case passes with a SKIPPED warning.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <edgeq/kernel/cuda/grouped.cuh>

#include "reference.hpp"

void edgeq_cuda_headers_compile();

namespace {

// The kernel sums each 32-weight chunk in fp32 in its own order, the reference per group and
// subtracts the zero point after the sum: both are fp32 roundings of the same value.
constexpr double kRelTol = 1e-4;  // max |y - y_ref| / max |y_ref|

#define CUDA_CHECK(call)                                                                      \
    do {                                                                                      \
        const cudaError_t e_ = (call);                                                        \
        if (e_ != cudaSuccess) FAIL(#call << ": " << cudaGetErrorString(e_));                 \
    } while (0)

// True when a device can run the test; false (with a warning) when this machine has none.
bool have_gpu() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && n == 0)) {
        WARN("SKIPPED: no CUDA device here (" << (e == cudaSuccess ? "0 devices" : cudaGetErrorString(e))
                                             << "); the CUDA kernels were compiled but not run");
        return false;
    }
    CUDA_CHECK(e);
    return true;
}

// A device buffer freed at scope exit, so a failed REQUIRE leaks nothing.
template <class T>
struct device_buffer {
    T* p = nullptr;
    explicit device_buffer(std::size_t n) { CUDA_CHECK(cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T))); }
    ~device_buffer() { cudaFree(p); }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
};

// Runs one launcher (the plain one, or one tagged with an SM) and compares with the reference.
template <class F, class Launch>
void check_gemv(std::size_t rows, std::size_t cols, Launch launch) {
    edgeq_test::host_case<F> hc;
    edgeq_test::make_case<F>(rows, cols, unsigned(rows * 31 + cols), hc);

    device_buffer<std::uint8_t> blob(hc.blob.size());
    device_buffer<float> x(cols), y(rows);
    CUDA_CHECK(cudaMemcpy(blob.p, hc.blob.data(), hc.blob.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(x.p, hc.x.data(), cols * sizeof(float), cudaMemcpyHostToDevice));
    // Poison y: a row the kernel does not write stays NaN and fails below.
    const std::vector<float> nans(rows, std::numeric_limits<float>::quiet_NaN());
    CUDA_CHECK(cudaMemcpy(y.p, nans.data(), rows * sizeof(float), cudaMemcpyHostToDevice));

    const edgeq::qview<F> dview = edgeq::cuda::rebase(hc.view, hc.blob.data(), blob.p);
    launch(dview, x.p, y.p);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());

    std::vector<float> out(rows);
    CUDA_CHECK(cudaMemcpy(out.data(), y.p, rows * sizeof(float), cudaMemcpyDeviceToHost));
    double max_err = 0.0, max_ref = 0.0;
    std::size_t worst = 0, non_finite = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        if (!std::isfinite(out[r])) ++non_finite;
        const double e = std::fabs(double(out[r]) - double(hc.y_ref[r]));
        if (e > max_err) max_err = e, worst = r;
        max_ref = std::max(max_ref, std::fabs(double(hc.y_ref[r])));
    }
    INFO(rows << " x " << cols << ": worst row " << worst << ": " << out[worst] << " vs " << hc.y_ref[worst]);
    REQUIRE(non_finite == 0);
    REQUIRE(max_ref > 0.0);
    CHECK(max_err / max_ref <= kRelTol);
}

template <class F>
void check_format() {
    // Row counts that leave partial blocks and warps; columns that give every lane one chunk
    // (1024), some lanes two (1536), and fewer chunks than lanes (256).
    const std::size_t shapes[][2] = {{75, 1024}, {129, 1536}, {3, 256}};
    for (const auto& s : shapes) {
        check_gemv<F>(s[0], s[1], [](const edgeq::qview<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(w, x, y, 0);
        });
        check_gemv<F>(s[0], s[1], [](const edgeq::qview<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(edgeq::backend::cuda_sm53{}, w, x, y, 0);
        });
        check_gemv<F>(s[0], s[1], [](const edgeq::qview<F>& w, const float* x, float* y) {
            edgeq::cuda::gemv(edgeq::backend::cuda_sm90{}, w, x, y, 0);
        });
    }
}

}  // namespace

TEMPLATE_TEST_CASE("CUDA gemv matches the scalar reference", "[cuda]", edgeq_test::int2_g128,
                   edgeq_test::int3_g128, edgeq_test::int4_g128, edgeq_test::int8_g128,
                   edgeq_test::int4_g128_asym, edgeq_test::int5_g64_asym_fp32, edgeq_test::int6_per_row,
                   edgeq_test::nf4_dq) {
    edgeq_cuda_headers_compile();
    if (!have_gpu()) return;
    check_format<TestType>();
}

TEST_CASE("CUDA gemv of an empty matrix launches nothing; misaligned x is refused", "[cuda]") {
    if (!have_gpu()) return;
    edgeq::qview<edgeq_test::int4_g128> w;  // rows == 0
    edgeq::cuda::gemv(w, nullptr, nullptr);
    CUDA_CHECK(cudaGetLastError());

    edgeq_test::host_case<edgeq_test::int4_g128> hc;
    edgeq_test::make_case<edgeq_test::int4_g128>(4, 128, 1, hc);
    device_buffer<std::uint8_t> blob(hc.blob.size());
    device_buffer<float> x(129), y(4);
    const auto dview = edgeq::cuda::rebase(hc.view, hc.blob.data(), blob.p);
    REQUIRE_THROWS_WITH(edgeq::cuda::gemv(dview, x.p + 1, y.p), Catch::Contains("16-byte aligned"));
}
