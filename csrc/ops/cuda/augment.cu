// CUDA glue of medcl::augment: checks, device guard, current stream, the levels the views read
// (mask kernel, one synchronising copy, host layout), compact scratch, launch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <string>

#include "ops/augment.h"
#include "ops/cuda/augment_kernel.cuh"
#include "ops/cuda/device_check.h"

namespace medcl {
namespace {

at::Tensor augment_cuda(const at::Tensor& images, const at::Tensor& sizes, const at::Tensor& params,
                        int64_t out_h, int64_t out_w, double mean, double std, at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(
      check_cuda_device("medcl::augment", {{"images", &images}, {"sizes", &sizes}, {"params", &params}}));
  auto c = prepare_augment(images, sizes, params, out_h, out_w, mean, std, dtype);
  // Strings only in this file's messages (csrc/ops/checks.cpp says why).
  TORCH_CHECK(c.V <= 65535, "medcl::augment: at most 65535 views per image on CUDA, got ", std::to_string(c.V));
  if (c.out.numel() == 0) return c.out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* img = c.images.data_ptr<float>();
  const int64_t* sz = c.sizes.data_ptr<int64_t>();
  const double* prm = c.params.data_ptr<double>();
  // Per image: the mask of pyramid levels its views read and its valid size.
  at::Tensor info = at::empty({c.B, cuda::kAugInfoCols}, c.images.options().dtype(at::kInt));
  cudaError_t err = cuda::launch_augment_mask(sz, prm, info.data_ptr<int>(), c.B, c.V, c.H, c.W, stream);
  TORCH_CHECK(err == cudaSuccess, "medcl::augment: CUDA launch failed: ", cudaGetErrorString(err));
  // The op's one synchronisation (B x 3 ints to the host): the price of sizing the scratch
  // exactly, i.e. only the levels the views read (a 224^2 view of a 3000 x 2500 image reads
  // one level of 1/16 to 1/64 of its pixels; the whole pyramid would be a third).
  const at::Tensor info_host = info.cpu();
  at::Tensor table_host =
      at::empty({cuda::augment_table_size(c.B)}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  const cuda::AugPlan plan = cuda::augment_plan(c.B, info_host.data_ptr<int>(), table_host.data_ptr<int64_t>());
  // Pinned and non-blocking: the caching host allocator keeps the buffer until the copy is done.
  const at::Tensor table = table_host.to(c.images.device(), /*non_blocking=*/true);
  at::Tensor scratch = at::empty({plan.scratch_floats}, c.images.options());
  float* scr = plan.scratch_floats > 0 ? scratch.data_ptr<float>() : nullptr;
  const int64_t* tab = table.data_ptr<int64_t>();
  err = dtype == at::kFloat
            ? cuda::launch_augment<float>(img, sz, prm, c.out.data_ptr<float>(), scr, tab, plan, c.B, c.V, c.H, c.W,
                                          c.out_h, c.out_w, c.mean, c.inv_std, stream)
            : cuda::launch_augment<__half>(img, sz, prm, reinterpret_cast<__half*>(c.out.data_ptr<at::Half>()), scr,
                                           tab, plan, c.B, c.V, c.H, c.W, c.out_h, c.out_w, c.mean, c.inv_std,
                                           stream);
  TORCH_CHECK(err == cudaSuccess, "medcl::augment: CUDA launch failed: ", cudaGetErrorString(err));
  return c.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) { m.impl("augment", &augment_cuda); }

}  // namespace medcl
