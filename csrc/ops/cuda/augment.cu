// CUDA glue of medcl::augment: checks, device guard, current stream, pyramid scratch, launch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/augment.h"
#include "ops/cuda/augment_kernel.cuh"

namespace medcl {
namespace {

at::Tensor augment_cuda(const at::Tensor& images, const at::Tensor& sizes, const at::Tensor& params,
                        int64_t out_h, int64_t out_w, double mean, double std, at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(images.device());
  auto c = prepare_augment(images, sizes, params, out_h, out_w, mean, std, dtype);
  TORCH_CHECK(c.V <= 65535, "medcl::augment: at most 65535 views per image on CUDA, got ", c.V);
  if (c.out.numel() == 0) return c.out;
  // Scratch for every pyramid level the batch may need (the images that need none skip it):
  // sizing it from the views' levels would need them on the host, i.e. a synchronisation.
  at::Tensor scratch = at::empty({cuda::augment_scratch_floats(c.B, c.H, c.W)}, c.images.options());
  at::Tensor depth = at::empty({c.B}, c.images.options().dtype(at::kInt));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* img = c.images.data_ptr<float>();
  const int64_t* sz = c.sizes.data_ptr<int64_t>();
  const double* prm = c.params.data_ptr<double>();
  const cudaError_t err =
      dtype == at::kFloat
          ? cuda::launch_augment<float>(img, sz, prm, c.out.data_ptr<float>(), scratch.data_ptr<float>(),
                                        depth.data_ptr<int>(), c.B, c.V, c.H, c.W, c.out_h, c.out_w, c.mean,
                                        c.inv_std, stream)
          : cuda::launch_augment<__half>(img, sz, prm, reinterpret_cast<__half*>(c.out.data_ptr<at::Half>()),
                                         scratch.data_ptr<float>(), depth.data_ptr<int>(), c.B, c.V, c.H, c.W,
                                         c.out_h, c.out_w, c.mean, c.inv_std, stream);
  TORCH_CHECK(err == cudaSuccess, "medcl::augment: CUDA launch failed: ", cudaGetErrorString(err));
  return c.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) { m.impl("augment", &augment_cuda); }

}  // namespace medcl
