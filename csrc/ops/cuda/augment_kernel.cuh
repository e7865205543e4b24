// CUDA kernels of medcl::augment — raw pointers, sizes and a stream; no torch headers, so
// `make cuda-check` compiles them with nvcc alone. Glue: augment.cu. The math is
// ops/augment_math.h, shared with the CPU kernel.
//
// Scratch holds only the pyramid levels the views read, compacted:
//   1. launch_augment_mask: per image the bitmask of levels its views read (one thread per view,
//      atomicOr) and its valid size, into `info` (B x 3 ints);
//   2. the glue copies `info` to the host (the op's one synchronisation) and augment_plan lays
//      out each image's stored levels, valid region only (ceil(rows / 2^l) x ceil(cols / 2^l),
//      row stride its own width), into a table of offsets and source levels and, per level,
//      the list of images that store it;
//   3. launch_augment: one launch per level some image stores (grid (pixel blocks, images on
//      that level's list), one thread per level pixel), then the views: one thread per output
//      pixel, grid (pixel blocks, view, image), the view's setup and tap weights computed once
//      per block into shared memory.
// A stored level l is built directly from the nearest stored level m below it (level 0 being
// the image), so the levels in between need no storage: each pixel evaluates the 2^d x 2^d
// quadtree (d = l - m) of 2x2 means in registers, with the recursive kernel's expressions, so
// the values are bit for bit those of the level-by-level pyramid (and of the CPU kernel's). To
// bound a pixel's work to 16 x 16 reads, d <= kAugMaxDepth = 4: where the next level the views
// read lies more than 4 levels past the last one stored (or the image), augment_plan also
// stores the level 4 past that one as an anchor (1/256 of the image's pixels or fewer).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/augment_math.h"

namespace medcl {
namespace cuda {

constexpr int kAugLevels = kAugMaxLevel + 1;  // levels 0 .. kAugMaxLevel
constexpr int kAugMaxDepth = 4;               // a stored level is built from one at most 4 above it
constexpr int kAugTableCols = 2 * kAugLevels; // per image: offsets of levels 0..12, then their sources
constexpr int kAugInfoCols = 3;               // per image in `info`: level mask, valid rows, valid cols

// What augment_plan decided for a batch.
struct AugPlan {
  int64_t scratch_floats = 0;           // floats of scratch for all stored levels
  int64_t most_pixels[kAugLevels] = {};  // per level: the most pixels an image stores (0: none stores it)
  int64_t images[kAugLevels] = {};       // per level: how many images store it
};

// int64s of augment_plan's table for B images.
inline int64_t augment_table_size(int64_t B) { return B * (kAugTableCols + kAugLevels); }

// Host: lays out the stored levels of B images from `info` (B x kAugInfoCols: mask of levels read,
// valid rows, valid cols) into `table` (augment_table_size(B) int64s): table[b][l] (row length
// kAugTableCols) = the float offset of image b's level l in scratch (-1: not stored; level 0 is
// the image itself, never stored), table[b][kAugLevels + l] = the level it is built from
// (0 <= source < l, l - source <= kAugMaxDepth); then, at B * kAugTableCols + l * B, the
// plan.images[l] images that store level l, in order.
inline AugPlan augment_plan(int64_t B, const int* info, int64_t* table) {
  AugPlan plan;
  int64_t* lists = table + B * kAugTableCols;
  for (int64_t i = 0; i < B * kAugLevels; ++i) lists[i] = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t* t = table + b * kAugTableCols;
    for (int l = 0; l < kAugLevels; ++l) {
      t[l] = -1;
      t[kAugLevels + l] = 0;
    }
    const unsigned mask = static_cast<unsigned>(info[b * kAugInfoCols]) & ((1u << kAugLevels) - 2u);  // not level 0
    const int64_t rows = info[b * kAugInfoCols + 1], cols = info[b * kAugInfoCols + 2];
    if (mask == 0 || rows <= 0 || cols <= 0) continue;
    int deepest = 0;
    while ((mask >> (deepest + 1)) != 0) ++deepest;
    int source = 0;  // the last level stored (0: the image)
    for (int l = 1; l <= deepest; ++l) {
      const bool read = (mask >> l) & 1u;
      const bool anchor = l - source == kAugMaxDepth && l < deepest;  // a deeper level needs it as source
      if (!read && !anchor) continue;
      const int64_t pixels = aug_extent(rows, l) * aug_extent(cols, l);
      t[l] = plan.scratch_floats;
      t[kAugLevels + l] = source;
      plan.scratch_floats += pixels;
      if (pixels > plan.most_pixels[l]) plan.most_pixels[l] = pixels;
      lists[l * B + plan.images[l]++] = b;
      source = l;
    }
  }
  return plan;
}

MEDCL_HD float aug_load(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

// Valid rows r[k] and columns c[k] of levels m + k, k = 0 .. kAugMaxDepth, m the source level.
struct AugExtents {
  int64_t r[kAugMaxDepth + 1], c[kAugMaxDepth + 1];
};

// The level m + D pixel whose 2^D x 2^D block of level m starts at p, the block lying wholly in
// level m's valid region (so all four children are present at every level): the quadtree of
// 2x2 means ((top-left + top-right) + (bottom-left + bottom-right)) * 0.25 of the level-by-level
// pyramid, the same float operations in the same order.
template <int D>
MEDCL_HD float aug_box_full(const float* p, int64_t stride) {
  if constexpr (D == 0) {
    return aug_load(p);
  } else {
    constexpr int h = 1 << (D - 1);
    const float tl = aug_box_full<D - 1>(p, stride), tr = aug_box_full<D - 1>(p + h, stride);
    const float bl = aug_box_full<D - 1>(p + h * stride, stride), br = aug_box_full<D - 1>(p + h * stride + h, stride);
    return ((tl + tr) + (bl + br)) * 0.25f;
  }
}

// Pixel (y, x) of level m + D, any block (the last row / column of a level may be partial): a
// parent at level m + k + 1 averages the children present at level m + k (2y + 1 < r[k] for a
// second row, 2x + 1 < c[k] for a second column) with the level-by-level kernel's expressions;
// absent children are never evaluated, so every read lies in the valid region. 32-bit unsigned
// index math: a present pixel's coordinates and index lie below its level's pixel count (< 2^31).
template <int D>
MEDCL_HD float aug_box_edge(const float* src, uint32_t stride, uint32_t y, uint32_t x, const AugExtents& e) {
  if constexpr (D == 0) {
    return aug_load(src + (y * stride + x));
  } else {
    const bool down = 2 * y + 1 < static_cast<uint32_t>(e.r[D - 1]);
    const bool right = 2 * x + 1 < static_cast<uint32_t>(e.c[D - 1]);
    const float tl = aug_box_edge<D - 1>(src, stride, 2 * y, 2 * x, e);
    const float tr = right ? aug_box_edge<D - 1>(src, stride, 2 * y, 2 * x + 1, e) : 0.f;
    const float bl = down ? aug_box_edge<D - 1>(src, stride, 2 * y + 1, 2 * x, e) : 0.f;
    const float br = down && right ? aug_box_edge<D - 1>(src, stride, 2 * y + 1, 2 * x + 1, e) : 0.f;
    if (down && right) return ((tl + tr) + (bl + br)) * 0.25f;
    if (down) return (tl + bl) * 0.5f;
    if (right) return (tl + tr) * 0.5f;
    return tl;
  }
}

// Pixel (j, c) of level m + D from level m (src, row stride `stride`, valid region e.r[0] x e.c[0]).
template <int D>
MEDCL_HD float aug_level_pixel(const float* src, int64_t stride, int64_t j, int64_t c, const AugExtents& e) {
  if (((j + 1) << D) <= e.r[0] && ((c + 1) << D) <= e.c[0])
    return aug_box_full<D>(src + (j << D) * stride + (c << D), stride);
  return aug_box_edge<D>(src, static_cast<uint32_t>(stride), static_cast<uint32_t>(j), static_cast<uint32_t>(c), e);
}

// One image's stored level: where it is built from and where it goes.
struct AugLevelJob {
  const float* src;  // the source level (the image or a stored level)
  int64_t stride;    // its row stride
  float* dst;        // the level, rows x cols (stride cols)
  int64_t rows, cols;
  int depth;         // level - source, 1 .. kAugMaxDepth
  AugExtents e;
};

// Image b's level `level` (t: its table row; rows, cols: its valid size); false: not stored.
MEDCL_HD bool aug_level_job(const float* images, float* scratch, const int64_t* t, int64_t b, int64_t rows,
                            int64_t cols, int64_t H, int64_t W, int level, AugLevelJob* job) {
  const int64_t off = t[level];
  if (off < 0 || rows <= 0 || cols <= 0) return false;
  const int m = static_cast<int>(t[kAugLevels + level]);
  job->depth = level - m;
  if (job->depth < 1 || job->depth > kAugMaxDepth || (m > 0 && t[m] < 0)) return false;  // never, by augment_plan
  for (int k = 0; k <= kAugMaxDepth; ++k) {
    job->e.r[k] = aug_extent(rows, m + k);
    job->e.c[k] = aug_extent(cols, m + k);
  }
  job->src = m == 0 ? images + b * H * W : scratch + t[m];
  job->stride = m == 0 ? W : job->e.c[0];
  job->dst = scratch + off;
  job->rows = aug_extent(rows, level);  // = e.r[depth], without indexing e at run time
  job->cols = aug_extent(cols, level);
  return true;
}

template <int D>
MEDCL_HD float aug_job_pixel(const AugLevelJob& job, int64_t j, int64_t c) {
  return aug_level_pixel<D>(job.src, job.stride, j, c, job.e);
}

__device__ __forceinline__ void valid_size(const int64_t* sizes, int64_t b, int64_t H, int64_t W,
                                           int64_t* rows, int64_t* cols) {
  const int64_t r = sizes[2 * b], c = sizes[2 * b + 1];
  *rows = r < 0 ? 0 : (r > H ? H : r);
  *cols = c < 0 ? 0 : (c > W ? W : c);
}

// info (B x kAugInfoCols, zeroed): OR of 1 << level over each image's views, valid rows, cols.
__global__ void augment_mask_kernel(const int64_t* __restrict__ sizes, const double* __restrict__ params,
                                    int64_t B, int64_t V, int64_t H, int64_t W, int* __restrict__ info) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < B * V; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / V, v = i - b * V;
    int64_t rows, cols;
    valid_size(sizes, b, H, W, &rows, &cols);
    if (v == 0) {
      info[b * kAugInfoCols + 1] = static_cast<int>(rows);
      info[b * kAugInfoCols + 2] = static_cast<int>(cols);
    }
    if (rows > 0 && cols > 0) {
      const int l = aug_setup(params + i * kAugParams, rows, cols).level;
      if (l > 0) atomicOr(&info[b * kAugInfoCols], 1 << l);
    }
  }
}

template <int D>
__device__ __forceinline__ void level_pixels(const AugLevelJob& job) {
  // rows * cols < 2^31 (a level of an image of fewer than 2^31 pixels): 32-bit index math
  const uint32_t n = static_cast<uint32_t>(job.rows * job.cols), w = static_cast<uint32_t>(job.cols);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint32_t j = i / w;
    job.dst[i] = aug_job_pixel<D>(job, j, i - j * w);
  }
}

// Level `level` of the images that store it (blockIdx.y: the image at k0 + y on the level's
// list). Reads the image or levels above `level` in scratch, writes level `level`'s own region:
// no overlap.
__global__ void __launch_bounds__(256) augment_level_kernel(const float* __restrict__ images, float* scratch,
                                                            const int64_t* __restrict__ table, int64_t B,
                                                            const int64_t* __restrict__ sizes, int64_t H, int64_t W,
                                                            int level, int64_t k0) {
  const int64_t b = table[B * kAugTableCols + level * B + k0 + blockIdx.y];
  int64_t rows, cols;
  valid_size(sizes, b, H, W, &rows, &cols);
  AugLevelJob job;
  if (!aug_level_job(images, scratch, table + b * kAugTableCols, b, rows, cols, H, W, level, &job)) return;
  switch (job.depth) {  // the same for the whole block: no divergence
    case 1: level_pixels<1>(job); break;
    case 2: level_pixels<2>(job); break;
    case 3: level_pixels<3>(job); break;
    default: level_pixels<4>(job); break;
  }
}

__device__ __forceinline__ void aug_store(float x, float* dst) { *dst = x; }
__device__ __forceinline__ void aug_store(float x, __half* dst) { *dst = __float2half_rn(x); }

template <typename Out>
__global__ void augment_kernel(const float* __restrict__ images, const float* __restrict__ scratch,
                               const int64_t* __restrict__ table, const int64_t* __restrict__ sizes,
                               const double* __restrict__ params, Out* __restrict__ out, int64_t V, int64_t H,
                               int64_t W, int64_t out_h, int64_t out_w, float mean, float inv_std, int64_t b0) {
  __shared__ AugSetup s;
  __shared__ double tu[kAugMaxTaps], tv[kAugMaxTaps], gu[kAugMaxTaps], gv[kAugMaxTaps];
  __shared__ bool empty, missing;
  __shared__ const float* level_img;
  __shared__ int64_t level_stride;
  const int64_t b = b0 + blockIdx.z, v = blockIdx.y;
  if (threadIdx.x == 0) {
    int64_t rows, cols;
    valid_size(sizes, b, H, W, &rows, &cols);
    s = aug_setup(params + (b * V + v) * kAugParams, rows, cols);
    empty = rows == 0 || cols == 0;
    if (empty) s.level = 0;
    missing = false;
    if (s.level == 0) {
      level_img = images + b * H * W;
      level_stride = W;
    } else {  // stored by augment_plan: the mask kernel ran this same aug_setup
      const int64_t off = table[b * kAugTableCols + s.level];
      missing = off < 0;  // never; NaN outputs rather than a read out of bounds if it were
      level_img = missing ? images : scratch + off;
      level_stride = s.cols;
    }
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
  const int64_t stride = level_stride;
  const float* img = level_img;
  const int64_t dx = s.cols > 1 ? 1 : 0, dy = s.rows > 1 ? stride : 0;
  const double xhi = s.cols > 2 ? s.cols - 2 : 0, yhi = s.rows > 2 ? s.rows - 2 : 0;
  Out* dst = out + (b * V + v) * out_h * out_w;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < out_h * out_w;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (missing) {
      aug_store(__int_as_float(0x7fc00000), dst + i);
      continue;
    }
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

constexpr int kAugThreads = 256;
constexpr int64_t kAugMaxGridYZ = 65535;

// Step 1: `info` (B x kAugInfoCols ints) gets each image's mask of levels read and valid size.
inline cudaError_t launch_augment_mask(const int64_t* sizes, const double* params, int* info, int64_t B, int64_t V,
                                       int64_t H, int64_t W, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  cudaError_t err = cudaMemsetAsync(info, 0, sizeof(int) * kAugInfoCols * B, stream);
  if (err != cudaSuccess || V == 0) return err;
  const int64_t blocks = (B * V + kAugThreads - 1) / kAugThreads;
  augment_mask_kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), kAugThreads, 0, stream>>>(
      sizes, params, B, V, H, W, info);
  return cudaGetLastError();
}

// Step 3: the stored levels into `scratch` (plan.scratch_floats floats) as `table` (a device
// copy of augment_plan's table) lays them out, then the views.
template <typename Out>
inline cudaError_t launch_augment(const float* images, const int64_t* sizes, const double* params, Out* out,
                                  float* scratch, const int64_t* table, const AugPlan& plan, int64_t B, int64_t V,
                                  int64_t H, int64_t W, int64_t out_h, int64_t out_w, float mean, float inv_std,
                                  cudaStream_t stream) {
  if (B == 0 || V == 0) return cudaSuccess;
  cudaError_t err;
  for (int l = 1; l < kAugLevels; ++l) {  // in order: a level's source is built before it
    const int64_t n = plan.images[l];
    if (n == 0 || plan.most_pixels[l] == 0) continue;
    const int64_t blocks = (plan.most_pixels[l] + kAugThreads - 1) / kAugThreads;
    const unsigned gx = static_cast<unsigned>(blocks < 1024 ? blocks : 1024);
    for (int64_t k0 = 0; k0 < n; k0 += kAugMaxGridYZ) {
      const unsigned gy = static_cast<unsigned>(n - k0 < kAugMaxGridYZ ? n - k0 : kAugMaxGridYZ);
      augment_level_kernel<<<dim3(gx, gy), kAugThreads, 0, stream>>>(images, scratch, table, B, sizes, H, W, l, k0);
      if ((err = cudaGetLastError()) != cudaSuccess) return err;
    }
  }
  const int64_t blocks = (out_h * out_w + kAugThreads - 1) / kAugThreads;
  const unsigned gx = static_cast<unsigned>(blocks < 4096 ? blocks : 4096);
  for (int64_t b0 = 0; b0 < B; b0 += kAugMaxGridYZ) {
    const unsigned gz = static_cast<unsigned>(B - b0 < kAugMaxGridYZ ? B - b0 : kAugMaxGridYZ);
    augment_kernel<Out><<<dim3(gx, static_cast<unsigned>(V), gz), kAugThreads, 0, stream>>>(
        images, scratch, table, sizes, params, out, V, H, W, out_h, out_w, mean, inv_std, b0);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate every kernel so nvcc compiles each for the target archs.
template cudaError_t medcl::cuda::launch_augment<float>(const float*, const int64_t*, const double*, float*, float*,
                                                        const int64_t*, const medcl::cuda::AugPlan&, int64_t, int64_t,
                                                        int64_t, int64_t, int64_t, int64_t, float, float, cudaStream_t);
template cudaError_t medcl::cuda::launch_augment<__half>(const float*, const int64_t*, const double*, __half*,
                                                         float*, const int64_t*, const medcl::cuda::AugPlan&, int64_t,
                                                         int64_t, int64_t, int64_t, int64_t, int64_t, float, float,
                                                         cudaStream_t);
#endif
