// Argument checks and output allocation of medcl::contrastive_lse{,_backward}, shared by the
// CPU and CUDA kernels (torch side).
#pragma once

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

inline ContrastiveCall prepare_contrastive(const char* op, const at::Tensor& a, const at::Tensor& b,
                                           const at::Tensor& keep_a, const at::Tensor& keep_b,
                                           int64_t offset, bool exclude_self) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), op,
              ": a and b must be (M, D) and (N, D), got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(0) >= 1 && b.size(0) >= 1 && a.size(1) >= 1, op, ": empty inputs ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && at::isFloatingType(a.scalar_type()), op,
              ": a and b must share one floating dtype, got ", a.scalar_type(), " and ",
              b.scalar_type());
  TORCH_CHECK(keep_a.dim() == 1 && keep_a.size(0) == a.size(0) && keep_a.scalar_type() == at::kBool,
              op, ": keep_a must be bool (M,), got ", keep_a.scalar_type(), " ", keep_a.sizes());
  TORCH_CHECK(keep_b.dim() == 1 && keep_b.size(0) == b.size(0) && keep_b.scalar_type() == at::kBool,
              op, ": keep_b must be bool (N,), got ", keep_b.scalar_type(), " ", keep_b.sizes());
  TORCH_CHECK(offset >= 0, op, ": offset must be >= 0, got ", offset);
  TORCH_CHECK(!exclude_self || a.size(0) <= b.size(0), op,
              ": exclude_self needs M <= N, got M = ", a.size(0), ", N = ", b.size(0));
  for (const at::Tensor* t : {&b, &keep_a, &keep_b}) {
    TORCH_CHECK(t->device() == a.device(), op, ": all tensors must be on ", a.device(),
                ", got one on ", t->device());
  }
  return {a.contiguous(), b.contiguous(), keep_a.contiguous(), keep_b.contiguous(),
          a.size(0), b.size(0), a.size(1),
          stat_dtype_for(a.scalar_type())};
}

// The backward's statistics and upstream gradients, checked and contiguous.
struct ContrastiveGrads {
  at::Tensor row_lse, col_lse, g_row, g_col, g_diag;
};

inline ContrastiveGrads prepare_contrastive_grads(const ContrastiveCall& c, const at::Tensor& row_lse,
                                                  const at::Tensor& col_lse, const at::Tensor& g_row,
                                                  const at::Tensor& g_col, const at::Tensor& g_diag) {
  const char* op = "medcl::contrastive_lse_backward";
  const std::pair<const at::Tensor*, int64_t> expect[] = {
      {&row_lse, c.M}, {&col_lse, c.N}, {&g_row, c.M}, {&g_col, c.N}, {&g_diag, c.M}};
  for (const auto& [t, n] : expect) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == n && t->scalar_type() == c.stat_dtype &&
                    t->device() == c.a.device(),
                op, ": statistics and their gradients must be ", c.stat_dtype, " (", n, ",) on ",
                c.a.device(), ", got ", t->scalar_type(), " ", t->sizes(), " on ", t->device());
  }
  return {row_lse.contiguous(), col_lse.contiguous(), g_row.contiguous(), g_col.contiguous(),
          g_diag.contiguous()};
}

}  // namespace medcl
