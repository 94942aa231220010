// Compose a scheme from policies, check its size at compile time, quantize, multiply.
#include <cmath>
#include <cstdio>
#include <vector>

#include <edgeq/edgeq.hpp>

using my_scheme = edgeq::scheme<edgeq::bits<3>, edgeq::group<64>, edgeq::asymmetric, edgeq::rtn<edgeq::clip_search>>;
static_assert(edgeq::bits_per_weight<my_scheme>() == 3.375, "3-bit codes + (fp16 scale + 8-bit zero) / 64");

int main() {
    std::vector<float> w(512 * 1024), x(1024, 1.0f), y(512);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.02f * std::sin(0.37f * float(i));
    const auto q = edgeq::quantize<my_scheme>({w.data(), 512, 1024});   // packed: 3.375 bits/weight
    edgeq::gemv(q.view(), x.data(), y.data());                           // y = W x on every core
    edgeq::gemv<edgeq::backend::scalar>(q.view(), x.data(), y.data());   // the reference kernel
    std::printf("%zu bytes, y[0] = %.4f\n", q.storage_bytes(), y[0]);
}
