// CUDA glue of medcl::decode_pixels: checks, device guard, current stream, per-image scratch, launch.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/cuda/decode_pixels_kernel.cuh"
#include "ops/cuda/device_check.h"
#include "ops/decode_pixels.h"

namespace medcl {
namespace {

std::tuple<at::Tensor, at::Tensor> decode_pixels_cuda(const at::Tensor& data, const at::Tensor& offsets,
                                                      const at::Tensor& desc, const at::Tensor& params,
                                                      const at::Tensor& function, const at::Tensor& invert,
                                                      int64_t height, int64_t width, at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(check_cuda_device(
      "medcl::decode_pixels", {{"data", &data}, {"offsets", &offsets}, {"desc", &desc}, {"params", &params},
                               {"function", &function}, {"invert", &invert}}));
  auto c = prepare_decode_pixels(data, offsets, desc, params, function, invert, height, width, dtype);
  if (c.B == 0) return {c.out, c.status};
  // Per image: segment begin/end (4 + 4 int64), min/max stored value (2 int64), segment status (4 int32).
  at::Tensor ranges = at::empty({c.B, 2 * kMaxRleSegments + 2}, c.desc.options());
  at::Tensor seg_status = at::empty({c.B, kMaxRleSegments}, c.status.options());
  int64_t* r = ranges.data_ptr<int64_t>();
  const cuda::DecodeScratch scratch{r, r + c.B * kMaxRleSegments, seg_status.data_ptr<int32_t>(),
                                    reinterpret_cast<long long*>(r + 2 * c.B * kMaxRleSegments),
                                    reinterpret_cast<long long*>(r + 2 * c.B * kMaxRleSegments + c.B)};
  const cuda::DecodeArgs args{c.data.data_ptr<uint8_t>(), c.data.numel(), c.offsets.data_ptr<int64_t>(),
                              c.desc.data_ptr<int64_t>(), c.params.data_ptr<double>(),
                              c.function.data_ptr<int32_t>(), c.invert.data_ptr<bool>(), c.B, c.H, c.W,
                              c.status.data_ptr<int32_t>()};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err = dtype == at::kFloat
                              ? cuda::launch_decode_pixels<float>(args, scratch, c.out.data_ptr<float>(), stream)
                              : cuda::launch_decode_pixels<double>(args, scratch, c.out.data_ptr<double>(), stream);
  TORCH_CHECK(err == cudaSuccess, "medcl::decode_pixels: CUDA launch failed: ", cudaGetErrorString(err));
  return {c.out, c.status};
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) { m.impl("decode_pixels", &decode_pixels_cuda); }

}  // namespace medcl
