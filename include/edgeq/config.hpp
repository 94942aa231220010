// Feature macros shared by host and device code. Nothing here includes a library header,
// so every .cu/.cuh file may include it (C++14, nvcc >= 10.2).
#pragma once

#if defined(__CUDACC__)
#define EDGEQ_HOST_DEVICE __host__ __device__
#define EDGEQ_CUDA 1
#else
#define EDGEQ_HOST_DEVICE
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define EDGEQ_HAS_NEON 1
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define EDGEQ_HAS_AVX2 1
#endif

#if defined(__SSE4_1__)
#define EDGEQ_HAS_SSE41 1
#endif
