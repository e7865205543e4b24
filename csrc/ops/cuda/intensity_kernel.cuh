// CUDA kernels of medcl::intensity — raw pointers, sizes and a stream; no torch headers, so
// `make cuda-check` compiles them with nvcc alone. Glue: intensity.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/intensity_math.h"

namespace medcl {
namespace cuda {

// Computed in double for every output type, as on the CPU: the kernel is memory-bound, and
// float32 arithmetic lost up to ~1e-5 of a narrow window's output for large stored values
// (slope * 70000 + intercept held in float32: ulp 0.008; seen on an H200 against the float64
// reference).
template <typename Out> struct IntensityAcc { using type = double; };

// grid: (x: pixel blocks, y: images). Each thread walks pixels of one image with a grid stride.
template <typename In, typename Out>
__global__ void intensity_kernel(const In* __restrict__ px, const double* __restrict__ params,
                                 const int32_t* __restrict__ function,
                                 const bool* __restrict__ invert, Out* __restrict__ out,
                                 int64_t n_per_image, int64_t image0) {
  using Acc = typename IntensityAcc<Out>::type;
  const int64_t b = image0 + blockIdx.y;
  const double* p = params + 4 * b;
  const Acc slope = static_cast<Acc>(p[0]), intercept = static_cast<Acc>(p[1]);
  const Acc center = static_cast<Acc>(p[2]), width = static_cast<Acc>(p[3]);
  const int32_t fn = function[b];
  const bool inv = invert[b];
  const In* src = px + b * n_per_image;
  Out* dst = out + b * n_per_image;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_per_image;
       i += (int64_t)gridDim.x * blockDim.x) {
    dst[i] = static_cast<Out>(intensity_value<Acc>(static_cast<Acc>(src[i]), slope, intercept,
                                                   center, width, fn, inv));
  }
}

// Launch over B images of N pixels each on `stream`; returns the launch error, if any.
template <typename In, typename Out>
inline cudaError_t launch_intensity(const In* px, const double* params, const int32_t* function,
                                    const bool* invert, Out* out, int64_t B, int64_t N,
                                    cudaStream_t stream) {
  if (B == 0 || N == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks_needed = (N + kThreads - 1) / kThreads;
  const unsigned gx = static_cast<unsigned>(blocks_needed < 1024 ? blocks_needed : 1024);
  constexpr int64_t kMaxGridY = 65535;
  for (int64_t b0 = 0; b0 < B; b0 += kMaxGridY) {
    const unsigned gy = static_cast<unsigned>(B - b0 < kMaxGridY ? B - b0 : kMaxGridY);
    intensity_kernel<In, Out><<<dim3(gx, gy), kThreads, 0, stream>>>(px, params, function, invert,
                                                                       out, N, b0);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate every kernel so nvcc compiles each for the target archs.
#define MEDCL_INTENSITY_INSTANTIATE(In, Out)                                                      \
  template cudaError_t medcl::cuda::launch_intensity<In, Out>(const In*, const double*,           \
                                                              const int32_t*, const bool*, Out*,  \
                                                              int64_t, int64_t, cudaStream_t);
#define MEDCL_INTENSITY_INSTANTIATE_IN(In) \
  MEDCL_INTENSITY_INSTANTIATE(In, float) MEDCL_INTENSITY_INSTANTIATE(In, double)
MEDCL_INTENSITY_INSTANTIATE_IN(uint8_t)
MEDCL_INTENSITY_INSTANTIATE_IN(int8_t)
MEDCL_INTENSITY_INSTANTIATE_IN(uint16_t)
MEDCL_INTENSITY_INSTANTIATE_IN(int16_t)
MEDCL_INTENSITY_INSTANTIATE_IN(int32_t)
MEDCL_INTENSITY_INSTANTIATE_IN(int64_t)
#endif
