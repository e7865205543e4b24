// Argument checks and output allocation of medcl::contrastive_lse{,_backward}, shared by the
// CPU and CUDA kernels (torch side).
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

#include <ATen/ATen.h>

namespace medcl {

// Statistics are float64 for float32 inputs too: a log-sum-exp near the logit scale (CLIP's
// 100) held in float32 loses ~ulp(100)/2 = 4e-6, which is all of a confident pair's loss
// lse - diag and of its gradient exp(s - lse) - 1. Half types keep float32 statistics.
inline at::ScalarType stat_dtype_for(at::ScalarType input) {
  return input == at::kDouble || input == at::kFloat ? at::kDouble : at::kFloat;
}

// Checked, contiguous arguments of one call.
struct ContrastiveCall {
  at::Tensor a, b, keep_a, keep_b;
  int64_t M, N, D;
  at::ScalarType stat_dtype;  // float64 for float32 / float64 inputs, float32 for half types
};

ContrastiveCall prepare_contrastive(const char* op, const at::Tensor& a, const at::Tensor& b,
                                    const at::Tensor& keep_a, const at::Tensor& keep_b,
                                    int64_t offset, bool exclude_self);

// The backward's statistics and upstream gradients, checked and contiguous.
struct ContrastiveGrads {
  at::Tensor row_lse, col_lse, g_row, g_col, g_diag;
};

ContrastiveGrads prepare_contrastive_grads(const ContrastiveCall& c, const at::Tensor& row_lse,
                                           const at::Tensor& col_lse, const at::Tensor& g_row,
                                           const at::Tensor& g_col, const at::Tensor& g_diag);

}  // namespace medcl
