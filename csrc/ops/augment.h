// Argument checks of medcl::augment shared by its CPU and CUDA kernels (torch side).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "ops/augment_math.h"

namespace medcl {

struct AugmentCall {
  at::Tensor images, sizes, params, out;
  int64_t B, V, H, W;
  int64_t out_h, out_w;
  float mean, inv_std;
};

inline AugmentCall prepare_augment(const at::Tensor& images, const at::Tensor& sizes,
                                   const at::Tensor& params, int64_t out_h, int64_t out_w,
                                   double mean, double std, at::ScalarType dtype) {
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == at::kFloat,
              "medcl::augment: images must be float32 (B, H, W), got ", images.scalar_type(), " ",
              images.sizes());
  const int64_t B = images.size(0), H = images.size(1), W = images.size(2);
  TORCH_CHECK(sizes.dim() == 2 && sizes.size(0) == B && sizes.size(1) == 2 &&
                  sizes.scalar_type() == at::kLong,
              "medcl::augment: sizes must be int64 (B, 2) = valid rows, cols; got ",
              sizes.scalar_type(), " ", sizes.sizes());
  TORCH_CHECK(params.dim() == 3 && params.size(0) == B && params.size(2) == kAugParams &&
                  params.scalar_type() == at::kDouble,
              "medcl::augment: params must be float64 (B, V, 13), got ", params.scalar_type(), " ",
              params.sizes());
  TORCH_CHECK(out_h >= 1 && out_w >= 1 && out_h * out_w < (int64_t(1) << 31),
              "medcl::augment: out_h, out_w must be >= 1 with fewer than 2^31 pixels, got ", out_h,
              " x ", out_w);
  TORCH_CHECK(H * W < (int64_t(1) << 31), "medcl::augment: images of ", H, " x ", W,
              " pixels are too large (at most 2^31 - 1 pixels per image)");
  TORCH_CHECK(dtype == at::kHalf || dtype == at::kFloat,
              "medcl::augment: dtype must be float16 or float32, got ", dtype);
  TORCH_CHECK(std::isfinite(mean) && std::isfinite(std) && std != 0.0,
              "medcl::augment: mean and std must be finite and std non-zero, got ", mean, ", ", std);
  for (const at::Tensor* t : {&sizes, &params}) {
    TORCH_CHECK(t->device() == images.device(), "medcl::augment: all tensors must be on ",
                images.device(), ", got one on ", t->device());
  }
  const int64_t V = params.size(1);
  return {images.contiguous(), sizes.contiguous(), params.contiguous(),
          at::empty({B, V, out_h, out_w}, images.options().dtype(dtype)),
          B, V, H, W, out_h, out_w, static_cast<float>(mean), static_cast<float>(1.0 / std)};
}

}  // namespace medcl
