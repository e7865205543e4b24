// Argument checks of medcl::sinkhorn_knopp{,_col_lse,_col_sums,_codes}, shared by the CPU and
// CUDA kernels (torch side).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace medcl {

// scores (B, K): float32 or float64, K >= 1 (B may be 0: a rank without samples).
inline void check_skk_scores(const char* op, const at::Tensor& scores) {
  TORCH_CHECK(scores.dim() == 2 && scores.size(1) >= 1, op, ": scores must be (B, K) with K >= 1, got ",
              scores.sizes());
  TORCH_CHECK(scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble, op,
              ": scores must be float32 or float64, got ", scores.scalar_type());
  TORCH_CHECK(scores.size(0) <= std::numeric_limits<int>::max() &&
                  scores.size(1) <= std::numeric_limits<int>::max(),
              op, ": B and K must be < 2^31, got ", scores.sizes());
}

inline void check_skk_eps(const char* op, double eps) {
  TORCH_CHECK(eps > 0 && std::isfinite(eps), op, ": eps must be finite and > 0, got ", eps);
}

inline void check_skk_iters(const char* op, int64_t n_iters) {
  TORCH_CHECK(n_iters >= 1 && n_iters <= std::numeric_limits<int>::max(), op,
              ": n_iters must be >= 1, got ", n_iters);
}

// The arguments of a pass over column potentials (col_sums, codes): scores and eps as above, and
// v (K,) float64 on the scores' device.
inline void check_skk_pass(const char* op, const at::Tensor& scores, double eps, const at::Tensor& v) {
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  TORCH_CHECK(v.dim() == 1 && v.size(0) == scores.size(1) && v.scalar_type() == at::kDouble, op,
              ": v must be float64 (K,) = (", scores.size(1), ",), got ", v.scalar_type(), " ",
              v.sizes());
  TORCH_CHECK(v.device() == scores.device(), op, ": v must be on ", scores.device(), ", got ",
              v.device());
}

}  // namespace medcl
