// Argument checks of medcl::sinkhorn_log{,_backward}, shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/ATen.h>

#include <limits>

namespace medcl {

constexpr int64_t kSinkhornMaxN = 128;

inline void check_sinkhorn_x(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == x.size(2), op, ": x must be (B, N, N), got ", x.sizes());
  TORCH_CHECK(x.size(1) >= 1 && x.size(1) <= kSinkhornMaxN, op, ": N must be 1 .. ", kSinkhornMaxN,
              ", got ", x.size(1));
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
}

inline void check_sinkhorn_iters(const char* op, int64_t n_iters) {
  TORCH_CHECK(n_iters >= 1 && n_iters <= std::numeric_limits<int>::max(), op,
              ": n_iters must be >= 1, got ", n_iters);
}

// Checks of the backward's tensors against x; returns n_iters.
inline int64_t check_sinkhorn_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                       const at::Tensor& row_pot, const at::Tensor& col_pot) {
  const char* op = "medcl::sinkhorn_log_backward";
  check_sinkhorn_x(op, x);
  const int64_t B = x.size(0), N = x.size(1);
  TORCH_CHECK(grad_out.sizes() == x.sizes(), op, ": grad_out must be ", x.sizes(), ", got ",
              grad_out.sizes());
  TORCH_CHECK(row_pot.dim() == 3 && row_pot.size(0) == B && row_pot.size(2) == N &&
                  row_pot.size(1) >= 1 && col_pot.sizes() == row_pot.sizes(),
              op, ": row_pot and col_pot must be (B, n_iters, N) = (", B, ", T, ", N, "), got ",
              row_pot.sizes(), " and ", col_pot.sizes());
  for (const at::Tensor* t : {&grad_out, &row_pot, &col_pot}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device() == x.device(), op,
                ": all tensors must be ", x.scalar_type(), " on ", x.device(), ", got ",
                t->scalar_type(), " on ", t->device());
  }
  check_sinkhorn_iters(op, row_pot.size(1));
  return row_pot.size(1);
}

}  // namespace medcl
