// Argument checks of medcl::decode_pixels shared by its CPU and CUDA kernels (torch side).
// Only shapes, dtypes and devices are checked here: the descriptors and bytes are checked per
// image by the kernels (decode_pixels_math.h), which report a status instead of raising.
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

#include <ATen/ATen.h>

#include "ops/intensity.h"

namespace medcl {

void check_decode_pixels_args(const at::Tensor& data, const at::Tensor& offsets,
                              const at::Tensor& desc, const at::Tensor& params,
                              const at::Tensor& function, const at::Tensor& invert,
                              int64_t height, int64_t width, at::ScalarType dtype);

// Checked, contiguous arguments and the allocated outputs of one medcl::decode_pixels call.
struct DecodePixelsCall {
  at::Tensor data, offsets, desc, params, function, invert, out, status;
  int64_t B, H, W;
};

DecodePixelsCall prepare_decode_pixels(const at::Tensor& data, const at::Tensor& offsets,
                                       const at::Tensor& desc, const at::Tensor& params,
                                       const at::Tensor& function, const at::Tensor& invert,
                                       int64_t height, int64_t width, at::ScalarType dtype);

}  // namespace medcl
