// CUDA glue of medcl::intensity: checks, device guard, current stream, launch.
#include <ATen/Dispatch_v2.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/cuda/intensity_kernel.cuh"
#include "ops/intensity.h"

namespace medcl {
namespace {

at::Tensor intensity_cuda(const at::Tensor& pixels, const at::Tensor& params,
                          const at::Tensor& function, const at::Tensor& invert,
                          at::ScalarType dtype) {
  check_intensity_args(pixels, params, function, invert, dtype);
  const c10::cuda::CUDAGuard guard(pixels.device());
  const auto px = pixels.contiguous();
  const auto pr = params.contiguous();
  const auto fn = function.contiguous();
  const auto inv = invert.contiguous();
  auto out = at::empty(pixels.sizes(), pixels.options().dtype(dtype));
  const int64_t B = pixels.size(0);
  const int64_t N = B == 0 ? 0 : pixels.numel() / B;
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  MEDCL_DISPATCH_PIXEL_TYPES(px.scalar_type(), "medcl::intensity", [&] {
    using In = scalar_t;
    cudaError_t err;
    if (dtype == at::kFloat) {
      err = cuda::launch_intensity<In, float>(px.data_ptr<In>(), pr.data_ptr<double>(),
                                              fn.data_ptr<int32_t>(), inv.data_ptr<bool>(),
                                              out.data_ptr<float>(), B, N, stream);
    } else {
      err = cuda::launch_intensity<In, double>(px.data_ptr<In>(), pr.data_ptr<double>(),
                                               fn.data_ptr<int32_t>(), inv.data_ptr<bool>(),
                                               out.data_ptr<double>(), B, N, stream);
    }
    TORCH_CHECK(err == cudaSuccess, "medcl::intensity: CUDA launch failed: ", cudaGetErrorString(err));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) { m.impl("intensity", &intensity_cuda); }

}  // namespace medcl
