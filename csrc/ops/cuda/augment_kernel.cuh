// CUDA kernels of medcl::augment — raw pointers, sizes and a stream; no torch headers, so
// `make cuda-check` compiles them with nvcc alone. Glue: augment.cu. The math is
// ops/augment_math.h, shared with the CPU kernel.
//
// Three launches on one stream: the deepest pyramid level each image needs (one thread per
// image), the pyramid levels (one thread per level pixel; images that need no deeper level
// return at once), then the views: one thread per output pixel, grid (pixel blocks, view,
// image), the view's setup and tap weights computed once per block into shared memory.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/augment_math.h"

namespace medcl {
namespace cuda {

// Levels a batch of H x W images may need: 1 + ceil(log2(max(H, W))), at most 1 + kAugMaxLevel.
inline int augment_level_count(int64_t H, int64_t W) {
  const int64_t extent = H > W ? H : W;
  int L = 0;
  while (L < kAugMaxLevel && (int64_t(1) << L) < extent) ++L;
  return L + 1;
}
// Floats of scratch for levels 1 .. count - 1 of B images.
inline int64_t augment_scratch_floats(int64_t B, int64_t H, int64_t W) {
  int64_t total = 0;
  for (int l = 1; l < augment_level_count(H, W); ++l)
    total += B * aug_extent(H, l) * aug_extent(W, l);
  return total;
}

struct AugLevels {  // level l of image b starts at ptr[l] + b * h[l] * w[l]
  const float* ptr[kAugMaxLevel + 1];
  int64_t h[kAugMaxLevel + 1], w[kAugMaxLevel + 1];
};

__device__ __forceinline__ void valid_size(const int64_t* sizes, int64_t b, int64_t H, int64_t W,
                                           int64_t* rows, int64_t* cols) {
  const int64_t r = sizes[2 * b], c = sizes[2 * b + 1];
  *rows = r < 0 ? 0 : (r > H ? H : r);
  *cols = c < 0 ? 0 : (c > W ? W : c);
}

__global__ void augment_depth_kernel(const int64_t* __restrict__ sizes, const double* __restrict__ params,
                                     int64_t B, int64_t V, int64_t H, int64_t W, int* __restrict__ depth) {
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < B; b += (int64_t)gridDim.x * blockDim.x) {
    int64_t rows, cols;
    valid_size(sizes, b, H, W, &rows, &cols);
    int d = 0;
    if (rows > 0 && cols > 0) {
      for (int64_t v = 0; v < V; ++v) {
        const int l = aug_setup(params + (b * V + v) * kAugParams, rows, cols).level;
        d = l > d ? l : d;
      }
    }
    depth[b] = d;
  }
}

// Level `level` (Hd x Wd per image) from level - 1 (Hs x Ws): 2x2 means over the valid region.
__global__ void augment_level_kernel(const float* __restrict__ src, int64_t Hs, int64_t Ws, float* __restrict__ dst,
                                     int64_t Hd, int64_t Wd, const int64_t* __restrict__ sizes, int64_t H, int64_t W,
                                     const int* __restrict__ depth, int level, int64_t b0) {
  const int64_t b = b0 + blockIdx.y;
  if (depth[b] < level) return;
  int64_t rows, cols;
  valid_size(sizes, b, H, W, &rows, &cols);
  const int64_t rows_s = aug_extent(rows, level - 1), cols_s = aug_extent(cols, level - 1);
  const int64_t rows_d = aug_extent(rows, level), cols_d = aug_extent(cols, level);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < rows_d * cols_d;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = i / cols_d, c = i % cols_d;
    const float* r0 = src + (b * Hs + 2 * j) * Ws + 2 * c;
    const bool down = 2 * j + 1 < rows_s, right = 2 * c + 1 < cols_s;
    float m;  // the CPU kernel's sums, in the same order
    if (down && right) m = ((r0[0] + r0[1]) + (r0[Ws] + r0[Ws + 1])) * 0.25f;
    else if (down) m = (r0[0] + r0[Ws]) * 0.5f;
    else if (right) m = (r0[0] + r0[1]) * 0.5f;
    else m = r0[0];
    dst[(b * Hd + j) * Wd + c] = m;
  }
}

__device__ __forceinline__ void aug_store(float x, float* dst) { *dst = x; }
__device__ __forceinline__ void aug_store(float x, __half* dst) { *dst = __float2half_rn(x); }

template <typename Out>
__global__ void augment_kernel(AugLevels lv, const int64_t* __restrict__ sizes, const double* __restrict__ params,
                               Out* __restrict__ out, int64_t V, int64_t H, int64_t W, int64_t out_h, int64_t out_w,
                               float mean, float inv_std, int64_t b0) {
  __shared__ AugSetup s;
  __shared__ double tu[kAugMaxTaps], tv[kAugMaxTaps], gu[kAugMaxTaps], gv[kAugMaxTaps];
  __shared__ bool empty;
  const int64_t b = b0 + blockIdx.z, v = blockIdx.y;
  if (threadIdx.x == 0) {
    int64_t rows, cols;
    valid_size(sizes, b, H, W, &rows, &cols);
    s = aug_setup(params + (b * V + v) * kAugParams, rows, cols);
    empty = rows == 0 || cols == 0;
    if (empty) s.level = 0;
  }
  __syncthreads();
  if (threadIdx.x < kAugMaxTaps) {
    const int k = threadIdx.x;
    if (k < s.n_u) aug_tap(s, k, s.n_u, &tu[k], &gu[k]);
    if (k < s.n_v) aug_tap(s, k, s.n_v, &tv[k], &gv[k]);
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // normalise, summing in the CPU kernel's order
    double su = 0.0, sv = 0.0;
    for (int k = 0; k < s.n_u; ++k) su += gu[k];
    for (int k = 0; k < s.n_v; ++k) sv += gv[k];
    for (int k = 0; k < s.n_u; ++k) gu[k] /= su;
    for (int k = 0; k < s.n_v; ++k) gv[k] /= sv;
  }
  __syncthreads();
  const int L = s.level;
  const int64_t stride = lv.w[L];
  const float* img = lv.ptr[L] + b * lv.h[L] * stride;
  const int64_t dx = s.cols > 1 ? 1 : 0, dy = s.rows > 1 ? stride : 0;
  const double xhi = s.cols > 2 ? s.cols - 2 : 0, yhi = s.rows > 2 ? s.rows - 2 : 0;
  Out* dst = out + (b * V + v) * out_h * out_w;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < out_h * out_w;
       i += (int64_t)gridDim.x * blockDim.x) {
    const double u = static_cast<double>(i % out_w), row = static_cast<double>(i / out_w);
    float acc = 0.f;
    if (!empty) {
      const double row_x = s.a[1] * row + s.a[2], row_y = s.a[4] * row + s.a[5];
      for (int l = 0; l < s.n_v; ++l) {
        for (int k = 0; k < s.n_u; ++k) {
          const double x = s.a[0] * u + (row_x + (s.a[0] * tu[k] + s.a[1] * tv[l]));
          const double y = s.a[3] * u + (row_y + (s.a[3] * tu[k] + s.a[4] * tv[l]));
          if (!(x >= -0.5 && x <= s.xmax && y >= -0.5 && y <= s.ymax)) continue;
          const double x0 = fmin(fmax(floor(x), 0.0), xhi), y0 = fmin(fmax(floor(y), 0.0), yhi);
          const float ax = fminf(fmaxf(static_cast<float>(x - x0), 0.f), 1.f);
          const float ay = fminf(fmaxf(static_cast<float>(y - y0), 0.f), 1.f);
          const float* q = img + static_cast<int64_t>(y0) * stride + static_cast<int64_t>(x0);
          const float top = __ldg(q) * (1.f - ax) + __ldg(q + dx) * ax;
          const float bot = __ldg(q + dy) * (1.f - ax) + __ldg(q + dy + dx) * ax;
          acc += static_cast<float>(gu[k] * gv[l]) * (top * (1.f - ay) + bot * ay);
        }
      }
    }
    float x = fminf(fmaxf(acc, 0.f), 1.f);
    if (s.tone) x = fminf(fmaxf(x * s.contrast + s.offset, 0.f), 1.f);
    if (s.power) x = x > 0.f ? powf(x, s.gamma) : 0.f;
    if (s.noisy) {
      float u1, u2;
      aug_uniforms(s.key, static_cast<uint32_t>(i), &u1, &u2);
      x = fminf(fmaxf(x + s.noise * (sqrtf(-2.f * logf(u1)) * cospif(2.f * u2)), 0.f), 1.f);
    }
    aug_store((x - mean) * inv_std, dst + i);
  }
}

// Levels are written into `scratch` (augment_scratch_floats(B, H, W) floats); `depth` holds B ints.
template <typename Out>
inline cudaError_t launch_augment(const float* images, const int64_t* sizes, const double* params, Out* out,
                                  float* scratch, int* depth, int64_t B, int64_t V, int64_t H, int64_t W,
                                  int64_t out_h, int64_t out_w, float mean, float inv_std, cudaStream_t stream) {
  if (B == 0 || V == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  constexpr int64_t kMaxGridYZ = 65535;
  const unsigned depth_blocks = static_cast<unsigned>((B + kThreads - 1) / kThreads < 1024 ? (B + kThreads - 1) / kThreads : 1024);
  augment_depth_kernel<<<depth_blocks, kThreads, 0, stream>>>(sizes, params, B, V, H, W, depth);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  AugLevels lv{};
  lv.ptr[0] = images;
  lv.h[0] = H;
  lv.w[0] = W;
  const int count = augment_level_count(H, W);
  float* next = scratch;
  for (int l = 1; l < count; ++l) {
    lv.h[l] = aug_extent(H, l);
    lv.w[l] = aug_extent(W, l);
    lv.ptr[l] = next;
    const int64_t blocks = (lv.h[l] * lv.w[l] + kThreads - 1) / kThreads;
    const unsigned gx = static_cast<unsigned>(blocks < 1024 ? blocks : 1024);
    for (int64_t b0 = 0; b0 < B; b0 += kMaxGridYZ) {
      const unsigned gy = static_cast<unsigned>(B - b0 < kMaxGridYZ ? B - b0 : kMaxGridYZ);
      augment_level_kernel<<<dim3(gx, gy), kThreads, 0, stream>>>(lv.ptr[l - 1], lv.h[l - 1], lv.w[l - 1], next,
                                                                   lv.h[l], lv.w[l], sizes, H, W, depth, l, b0);
      if ((err = cudaGetLastError()) != cudaSuccess) return err;
    }
    next += B * lv.h[l] * lv.w[l];
  }
  const int64_t blocks = (out_h * out_w + kThreads - 1) / kThreads;
  const unsigned gx = static_cast<unsigned>(blocks < 4096 ? blocks : 4096);
  for (int64_t b0 = 0; b0 < B; b0 += kMaxGridYZ) {
    const unsigned gz = static_cast<unsigned>(B - b0 < kMaxGridYZ ? B - b0 : kMaxGridYZ);
    augment_kernel<Out><<<dim3(gx, static_cast<unsigned>(V), gz), kThreads, 0, stream>>>(
        lv, sizes, params, out, V, H, W, out_h, out_w, mean, inv_std, b0);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate every kernel so nvcc compiles each for the target archs.
template cudaError_t medcl::cuda::launch_augment<float>(const float*, const int64_t*, const double*, float*, float*,
                                                        int*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                        float, float, cudaStream_t);
template cudaError_t medcl::cuda::launch_augment<__half>(const float*, const int64_t*, const double*, __half*,
                                                         float*, int*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                         int64_t, float, float, cudaStream_t);
#endif
