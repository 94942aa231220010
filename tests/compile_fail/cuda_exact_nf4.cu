// Exact half sums split x so that products with integer codes stay exact; NF4's code-book
// values are not integers, so asking for them on NF4 must not compile (its fp32 sums are
// edgeq::cuda::gemv(edgeq::cuda::fp32_sums, ...)).
#include <edgeq/kernel/cuda/gemv_exact.cuh>
#include <edgeq/kernel/cuda/grouped.cuh>
#include <edgeq/scheme.hpp>

using nf4_dq = edgeq::format_of<edgeq::scheme<edgeq::nf4, edgeq::double_quant>>;
void misuse(const edgeq::qview<nf4_dq>& w) {
    namespace kc = edgeq::kernel::cuda;
    const kc::exact_sums<kc::grouped_adaptor<nf4_dq>> e(kc::make_adaptor(w));
    (void)e;
}
