// CUDA glue of medcl::sinkhorn_knopp and its passes (col_lse, col_sums, codes): checks, device
// guard, current stream, float64 workspaces, launch. Kernels: sinkhorn_knopp_kernel.cuh.
// float32 and float64 scores; compiled, never run (see the kernel header).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "ops/cuda/sinkhorn_knopp_kernel.cuh"
#include "ops/sinkhorn_knopp.h"

namespace medcl {
namespace {

// The workspace tensors of one call; kept alive by the caller until the launches are queued
// (the caching allocator orders their reuse on the current stream).
struct Workspace {
  at::Tensor part, rows;
  cuda::SkkWorkspace ws;
};

Workspace make_workspace(const char* op, const at::Tensor& x, bool need_rows) {
  const int64_t B = x.size(0), K = x.size(1);
  int chunks = 1;
  const cudaError_t err = cuda::skk_chunks(B, static_cast<int>(K), &chunks);
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA device query failed: ", cudaGetErrorString(err));
  const auto f64 = x.options().dtype(at::kDouble);
  Workspace w;
  w.part = at::empty({2, chunks, K}, f64);
  w.rows = at::empty({2, need_rows ? B : 0}, f64);
  double* part = w.part.data_ptr<double>();
  double* rows = w.rows.data_ptr<double>();
  w.ws = {part, part + static_cast<int64_t>(chunks) * K, rows, rows + (need_rows ? B : 0), chunks};
  return w;
}

void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
}

at::Tensor sinkhorn_knopp_cuda(const at::Tensor& scores, double eps, int64_t n_iters) {
  constexpr const char* op = "medcl::sinkhorn_knopp";
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  check_skk_iters(op, n_iters);
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor x = scores.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor out = at::empty_like(x);
  if (B == 0) return out;
  const Workspace w = make_workspace(op, x, true);
  at::Tensor v = at::empty({K}, x.options().dtype(at::kDouble));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int k = static_cast<int>(K), it = static_cast<int>(n_iters);
  check_launch(op, x.scalar_type() == at::kFloat
                       ? cuda::launch_sinkhorn_knopp<float>(x.data_ptr<float>(), B, k, eps, it, w.ws,
                                                            v.data_ptr<double>(), out.data_ptr<float>(), stream)
                       : cuda::launch_sinkhorn_knopp<double>(x.data_ptr<double>(), B, k, eps, it, w.ws,
                                                             v.data_ptr<double>(), out.data_ptr<double>(), stream));
  return out;
}

std::tuple<at::Tensor, at::Tensor> sinkhorn_knopp_col_lse_cuda(const at::Tensor& scores, double eps) {
  constexpr const char* op = "medcl::sinkhorn_knopp_col_lse";
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor x = scores.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor m = at::empty({K}, x.options().dtype(at::kDouble));
  at::Tensor s = at::empty({K}, x.options().dtype(at::kDouble));
  const Workspace w = make_workspace(op, x, false);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int k = static_cast<int>(K);
  check_launch(op, x.scalar_type() == at::kFloat
                       ? cuda::launch_skk_col_lse<float>(x.data_ptr<float>(), B, k, eps, w.ws, m.data_ptr<double>(),
                                                         s.data_ptr<double>(), nullptr, stream)
                       : cuda::launch_skk_col_lse<double>(x.data_ptr<double>(), B, k, eps, w.ws,
                                                          m.data_ptr<double>(), s.data_ptr<double>(), nullptr, stream));
  return {m, s};
}

at::Tensor sinkhorn_knopp_col_sums_cuda(const at::Tensor& scores, double eps, const at::Tensor& v_in) {
  constexpr const char* op = "medcl::sinkhorn_knopp_col_sums";
  check_skk_pass(op, scores, eps, v_in);
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor x = scores.contiguous(), v = v_in.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor out = at::empty({K}, x.options().dtype(at::kDouble));
  const Workspace w = make_workspace(op, x, true);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int k = static_cast<int>(K);
  check_launch(op, x.scalar_type() == at::kFloat
                       ? cuda::launch_skk_col_sums<float>(x.data_ptr<float>(), B, k, eps, v.data_ptr<double>(), w.ws,
                                                          out.data_ptr<double>(), nullptr, 0.0, stream)
                       : cuda::launch_skk_col_sums<double>(x.data_ptr<double>(), B, k, eps, v.data_ptr<double>(),
                                                           w.ws, out.data_ptr<double>(), nullptr, 0.0, stream));
  return out;
}

at::Tensor sinkhorn_knopp_codes_cuda(const at::Tensor& scores, double eps, const at::Tensor& v_in) {
  constexpr const char* op = "medcl::sinkhorn_knopp_codes";
  check_skk_pass(op, scores, eps, v_in);
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor x = scores.contiguous(), v = v_in.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor out = at::empty_like(x);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int k = static_cast<int>(K);
  check_launch(op, x.scalar_type() == at::kFloat
                       ? cuda::launch_skk_codes<float>(x.data_ptr<float>(), B, k, eps, v.data_ptr<double>(),
                                                       out.data_ptr<float>(), stream)
                       : cuda::launch_skk_codes<double>(x.data_ptr<double>(), B, k, eps, v.data_ptr<double>(),
                                                        out.data_ptr<double>(), stream));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) {
  m.impl("sinkhorn_knopp", &sinkhorn_knopp_cuda);
  m.impl("sinkhorn_knopp_col_lse", &sinkhorn_knopp_col_lse_cuda);
  m.impl("sinkhorn_knopp_col_sums", &sinkhorn_knopp_col_sums_cuda);
  m.impl("sinkhorn_knopp_codes", &sinkhorn_knopp_codes_cuda);
}

}  // namespace medcl
