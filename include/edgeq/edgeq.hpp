// Umbrella header for host code: policies, schemes, formats, quantization and kernels.
// (No CUDA and no Boost.Hana: the registry is edgeq/registry.hpp, CUDA kernels kernel/cuda/.)
#pragma once
#include "algo/awq.hpp"
#include "algo/ggml/quantize.hpp"
#include "algo/gptq.hpp"
#include "algo/hessian.hpp"
#include "algo/rtn.hpp"
#include "kernels.hpp"
#include "linear.hpp"
#include "scheme.hpp"
#include "scheme_name.hpp"
