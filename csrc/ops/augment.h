// Argument checks of medcl::augment shared by its CPU and CUDA kernels (torch side).
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

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

AugmentCall prepare_augment(const at::Tensor& images, const at::Tensor& sizes,
                            const at::Tensor& params, int64_t out_h, int64_t out_w,
                            double mean, double std, at::ScalarType dtype);

}  // namespace medcl
