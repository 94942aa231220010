// The GPU engine, compiled once by nvcc: the two entry points of engine/cuda/gpu_model.hpp, which
// edgeq run and edgeq perplexity (compiled by the C++ compiler) call for --device cuda.
#include <edgeq/engine/cuda/llama_gpu.cuh>

namespace edgeq {
namespace engine {
namespace gpu {

bool available(std::string* why) { return device_available(why); }

std::unique_ptr<builder> make_builder(const llama_config& c, int n_ctx, arithmetic math) { return new_builder(c, n_ctx, math); }

}  // namespace gpu
}  // namespace engine
}  // namespace edgeq
