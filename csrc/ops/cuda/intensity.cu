// CUDA glue of medcl::intensity: checks, device guard, current stream, launch.
#include <ATen/Dispatch_v2.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/cuda/device_check.h"
#include "ops/cuda/intensity_kernel.cuh"
#include "ops/intensity.h"

namespace medcl {
namespace {

at::Tensor intensity_cuda(const at::Tensor& pixels, const at::Tensor& params,
                          const at::Tensor& function, const at::Tensor& invert,
                          at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(check_cuda_device(
      "medcl::intensity", {{"pixels", &pixels}, {"params", &params}, {"function", &function}, {"invert", &invert}}));
  auto c = prepare_intensity(pixels, params, function, invert, dtype);
  if (c.out.numel() == 0) return c.out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  MEDCL_DISPATCH_PIXEL_TYPES(c.pixels.scalar_type(), "medcl::intensity", [&] {
    using In = scalar_t;
    const auto in = c.inputs<In>();
    const cudaError_t err =
        dtype == at::kFloat
            ? cuda::launch_intensity<In, float>(in.pixels, in.params, in.function, in.invert,
                                                c.out.data_ptr<float>(), c.B, c.N, stream)
            : cuda::launch_intensity<In, double>(in.pixels, in.params, in.function, in.invert,
                                                 c.out.data_ptr<double>(), c.B, c.N, stream);
    TORCH_CHECK(err == cudaSuccess, "medcl::intensity: CUDA launch failed: ", cudaGetErrorString(err));
  });
  return c.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) { m.impl("intensity", &intensity_cuda); }

}  // namespace medcl
