// Argument checks of medcl::sinkhorn_knopp{,_col_lse,_col_sums,_codes}, shared by the CPU and
// CUDA kernels (torch side).
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace medcl {

// scores (B, K): float32 or float64, K >= 1 (B may be 0: a rank without samples).
void check_skk_scores(const char* op, const at::Tensor& scores);

void check_skk_eps(const char* op, double eps);

void check_skk_iters(const char* op, int64_t n_iters);

// The arguments of a pass over column potentials (col_sums, codes): scores and eps as above, and
// v (K,) float64 on the scores' device.
void check_skk_pass(const char* op, const at::Tensor& scores, double eps, const at::Tensor& v);

}  // namespace medcl
