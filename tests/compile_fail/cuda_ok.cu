// The control of the CUDA cases: exact half sums on integer codes compile.
#include <edgeq/kernel/cuda/gemv_exact.cuh>
#include <edgeq/kernel/cuda/grouped.cuh>
#include <edgeq/scheme.hpp>

using int4_g128 = edgeq::format_of<edgeq::scheme<edgeq::bits<4>, edgeq::group<128>>>;
void use(const edgeq::qview<int4_g128>& w) {
    namespace kc = edgeq::kernel::cuda;
    const kc::exact_sums<kc::grouped_adaptor<int4_g128>> e(kc::make_adaptor(w));
    static_assert(decltype(e)::m_max == 32, "int4: chains of 8 products of |q| <= 8 leave |m| <= 32");
}
