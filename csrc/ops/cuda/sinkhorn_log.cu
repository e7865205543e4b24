// CUDA glue of medcl::sinkhorn_log and medcl::sinkhorn_log_backward: checks, device guard,
// current stream, launch. Kernels: sinkhorn_log_kernel.cuh. float32 and float64, 1 <= N <= 128.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "ops/cuda/sinkhorn_log_kernel.cuh"
#include "ops/sinkhorn_log.h"

namespace medcl {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> sinkhorn_log_cuda(const at::Tensor& x_in,
                                                                 int64_t n_iters) {
  const char* op = "medcl::sinkhorn_log";
  check_sinkhorn_x(op, x_in);
  check_sinkhorn_iters(op, n_iters);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor out = at::empty({B, N, N}, x.options());
  at::Tensor row_pot = at::empty({B, n_iters, N}, x.options());
  at::Tensor col_pot = at::empty({B, n_iters, N}, x.options());
  if (B == 0) return {out, row_pot, col_pot};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err =
      x.scalar_type() == at::kFloat
          ? cuda::launch_sinkhorn_log<float>(x.data_ptr<float>(), out.data_ptr<float>(),
                                             row_pot.data_ptr<float>(), col_pot.data_ptr<float>(),
                                             B, static_cast<int>(N), static_cast<int>(n_iters),
                                             stream)
          : cuda::launch_sinkhorn_log<double>(x.data_ptr<double>(), out.data_ptr<double>(),
                                              row_pot.data_ptr<double>(),
                                              col_pot.data_ptr<double>(), B, static_cast<int>(N),
                                              static_cast<int>(n_iters), stream);
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
  return {out, row_pot, col_pot};
}

at::Tensor sinkhorn_log_backward_cuda(const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                      const at::Tensor& row_pot_in, const at::Tensor& col_pot_in) {
  const char* op = "medcl::sinkhorn_log_backward";
  const int64_t n_iters = check_sinkhorn_backward(grad_out_in, x_in, row_pot_in, col_pot_in);
  const int64_t B = x_in.size(0), N = x_in.size(1);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), grad_out = grad_out_in.contiguous();
  const at::Tensor row_pot = row_pot_in.contiguous(), col_pot = col_pot_in.contiguous();
  at::Tensor grad_x = at::empty({B, N, N}, x.options());
  if (B == 0) return grad_x;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cudaError_t err =
      x.scalar_type() == at::kFloat
          ? cuda::launch_sinkhorn_log_backward<float>(
                grad_out.data_ptr<float>(), x.data_ptr<float>(), row_pot.data_ptr<float>(),
                col_pot.data_ptr<float>(), grad_x.data_ptr<float>(), B, static_cast<int>(N),
                static_cast<int>(n_iters), stream)
          : cuda::launch_sinkhorn_log_backward<double>(
                grad_out.data_ptr<double>(), x.data_ptr<double>(), row_pot.data_ptr<double>(),
                col_pot.data_ptr<double>(), grad_x.data_ptr<double>(), B, static_cast<int>(N),
                static_cast<int>(n_iters), stream);
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) {
  m.impl("sinkhorn_log", &sinkhorn_log_cuda);
  m.impl("sinkhorn_log_backward", &sinkhorn_log_backward_cuda);
}

}  // namespace medcl
