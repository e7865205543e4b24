// Argument checks of medcl::intensity shared by its CPU and CUDA kernels (torch side).
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

#include <ATen/ATen.h>

namespace medcl {

// The per-image VOI parameters of medcl::intensity and medcl::decode_pixels: params (B, 4)
// float64, function (B,) int32, invert (B,) bool on `device`, and a float32/float64 output dtype.
void check_voi_params(const char* op, int64_t B, const at::Device& device, const at::Tensor& params,
                      const at::Tensor& function, const at::Tensor& invert, at::ScalarType dtype);

void check_intensity_args(const at::Tensor& pixels, const at::Tensor& params,
                          const at::Tensor& function, const at::Tensor& invert,
                          at::ScalarType dtype);

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

IntensityCall prepare_intensity(const at::Tensor& pixels, const at::Tensor& params,
                                const at::Tensor& function, const at::Tensor& invert,
                                at::ScalarType dtype);

}  // namespace medcl

// Every integer pixel type the kernels take (uint16 is what 16-bit DICOM stores).
#define MEDCL_DISPATCH_PIXEL_TYPES(TYPE, NAME, ...)                                    \
  AT_DISPATCH_V2(TYPE, NAME, AT_WRAP(__VA_ARGS__), AT_EXPAND(AT_INTEGRAL_TYPES), at::kUInt16)
