#include <catch2/catch.hpp>

#include <xtensor/xmath.hpp>
#include <xtensor/xnorm.hpp>
#include <xtensor/xrandom.hpp>
#include <xtensor/xview.hpp>
#include <xtensor/xtensor.hpp>

#include <edgeq/edgeq.hpp>
#include <edgeq/interop/xtensor.hpp>

namespace eq = edgeq;

TEST_CASE("xtensor matrices quantize and multiply through views without copies", "[interop]") {
    xt::random::seed(3);
    const xt::xtensor<float, 2> w = xt::random::randn<float>({64, 256}, 0.0f, 0.02f);
    const xt::xtensor<float, 1> x = xt::random::randn<float>({256});
    const eq::matrix_view<const float> v = eq::view_of(w);
    CHECK(v.data == w.data());
    CHECK(v.rows == 64);
    CHECK(v.cols == 256);

    using s = eq::scheme<eq::bits<8>, eq::group<32>>;
    const auto q = eq::quantize<s>(v);
    xt::xtensor<float, 1> y = xt::zeros<float>({64});
    eq::gemv(q.view(), x.data(), y.data());
    const xt::xtensor<float, 1> ref = xt::sum(w * xt::view(x, xt::newaxis(), xt::all()), {1});
    // 8-bit g32 is within 1% of the float product.
    CHECK(double(xt::norm_l2(y - ref)()) <= 0.01 * double(xt::norm_l2(ref)()));
}
