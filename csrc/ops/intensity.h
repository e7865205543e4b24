// Argument checks of medcl::intensity shared by its CPU and CUDA kernels (torch side).
#pragma once

#include <ATen/ATen.h>

namespace medcl {

// The per-image VOI parameters of medcl::intensity and medcl::decode_pixels: params (B, 4)
// float64, function (B,) int32, invert (B,) bool on `device`, and a float32/float64 output dtype.
inline void check_voi_params(const char* op, int64_t B, const at::Device& device, const at::Tensor& params,
                             const at::Tensor& function, const at::Tensor& invert, at::ScalarType dtype) {
  TORCH_CHECK(params.dim() == 2 && params.size(0) == B && params.size(1) == 4 &&
                  params.scalar_type() == at::kDouble,
              op, ": params must be float64 (B, 4) = slope, intercept, center, width; got ",
              params.scalar_type(), " ", params.sizes());
  TORCH_CHECK(function.dim() == 1 && function.size(0) == B && function.scalar_type() == at::kInt,
              op, ": function must be int32 (B,), got ", function.scalar_type(), " ", function.sizes());
  TORCH_CHECK(invert.dim() == 1 && invert.size(0) == B && invert.scalar_type() == at::kBool,
              op, ": invert must be bool (B,), got ", invert.scalar_type(), " ", invert.sizes());
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": dtype must be float32 or float64, got ", dtype);
  for (const at::Tensor* t : {&params, &function, &invert}) {
    TORCH_CHECK(t->device() == device, op, ": all tensors must be on ", device, ", got one on ", t->device());
  }
}

inline void check_intensity_args(const at::Tensor& pixels, const at::Tensor& params,
                                 const at::Tensor& function, const at::Tensor& invert,
                                 at::ScalarType dtype) {
  TORCH_CHECK(pixels.dim() >= 1, "medcl::intensity: pixels must be (B, ...), got a 0-d tensor");
  TORCH_CHECK(at::isIntegralType(pixels.scalar_type(), /*includeBool=*/false),
              "medcl::intensity: pixels must hold integers (stored values), got ", pixels.scalar_type());
  check_voi_params("medcl::intensity", pixels.size(0), pixels.device(), params, function, invert, dtype);
}

// Checked, contiguous arguments and the allocated output of one medcl::intensity call.
template <typename In>
struct IntensityPtrs {
  const In* pixels;
  const double* params;
  const int32_t* function;
  const bool* invert;
};

struct IntensityCall {
  at::Tensor pixels, params, function, invert, out;
  int64_t B, N;  // images, pixels per image

  template <typename In>
  IntensityPtrs<In> inputs() const {
    return {pixels.data_ptr<In>(), params.data_ptr<double>(), function.data_ptr<int32_t>(),
            invert.data_ptr<bool>()};
  }
};

inline IntensityCall prepare_intensity(const at::Tensor& pixels, const at::Tensor& params,
                                       const at::Tensor& function, const at::Tensor& invert,
                                       at::ScalarType dtype) {
  check_intensity_args(pixels, params, function, invert, dtype);
  const int64_t B = pixels.size(0);
  return {pixels.contiguous(), params.contiguous(), function.contiguous(), invert.contiguous(),
          at::empty(pixels.sizes(), pixels.options().dtype(dtype)), B,
          B == 0 ? 0 : pixels.numel() / B};
}

}  // namespace medcl

// Every integer pixel type the kernels take (uint16 is what 16-bit DICOM stores).
#define MEDCL_DISPATCH_PIXEL_TYPES(TYPE, NAME, ...)                                    \
  AT_DISPATCH_V2(TYPE, NAME, AT_WRAP(__VA_ARGS__), AT_EXPAND(AT_INTEGRAL_TYPES), at::kUInt16)
