// Argument checks of medcl::decode_pixels shared by its CPU and CUDA kernels (torch side).
// Only shapes, dtypes and devices are checked here: the descriptors and bytes are checked per
// image by the kernels (decode_pixels_math.h), which report a status instead of raising.
#pragma once

#include <ATen/ATen.h>

#include "ops/intensity.h"

namespace medcl {

inline void check_decode_pixels_args(const at::Tensor& data, const at::Tensor& offsets,
                                     const at::Tensor& desc, const at::Tensor& params,
                                     const at::Tensor& function, const at::Tensor& invert,
                                     int64_t height, int64_t width, at::ScalarType dtype) {
  TORCH_CHECK(data.dim() == 1 && data.scalar_type() == at::kByte,
              "medcl::decode_pixels: data must be uint8 (N,), got ", data.scalar_type(), " ", data.sizes());
  TORCH_CHECK(desc.dim() == 2 && desc.size(1) == 7 && desc.scalar_type() == at::kLong,
              "medcl::decode_pixels: desc must be int64 (B, 7) = rows, columns, bits_allocated, "
              "bits_stored, high_bit, signed, encoding; got ", desc.scalar_type(), " ", desc.sizes());
  const int64_t B = desc.size(0);
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) == B + 1 && offsets.scalar_type() == at::kLong,
              "medcl::decode_pixels: offsets must be int64 (B+1,), got ", offsets.scalar_type(), " ",
              offsets.sizes());
  TORCH_CHECK(height >= 0 && width >= 0, "medcl::decode_pixels: height and width must be >= 0, got ",
              height, ", ", width);
  TORCH_CHECK(offsets.device() == data.device() && desc.device() == data.device(),
              "medcl::decode_pixels: all tensors must be on ", data.device());
  check_voi_params("medcl::decode_pixels", B, data.device(), params, function, invert, dtype);
}

// Checked, contiguous arguments and the allocated outputs of one medcl::decode_pixels call.
struct DecodePixelsCall {
  at::Tensor data, offsets, desc, params, function, invert, out, status;
  int64_t B, H, W;
};

inline DecodePixelsCall prepare_decode_pixels(const at::Tensor& data, const at::Tensor& offsets,
                                              const at::Tensor& desc, const at::Tensor& params,
                                              const at::Tensor& function, const at::Tensor& invert,
                                              int64_t height, int64_t width, at::ScalarType dtype) {
  check_decode_pixels_args(data, offsets, desc, params, function, invert, height, width, dtype);
  const int64_t B = desc.size(0);
  return {data.contiguous(),
          offsets.contiguous(),
          desc.contiguous(),
          params.contiguous(),
          function.contiguous(),
          invert.contiguous(),
          at::empty({B, height, width}, data.options().dtype(dtype)),
          at::empty({B}, data.options().dtype(at::kInt)),
          B,
          height,
          width};
}

}  // namespace medcl
