// Per-element math of medcl::contrastive_lse and its backward, shared by the CPU and CUDA
// kernels (torch-free). See csrc/ops/contrastive_lse.cpp for the definition of the op.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/hd.h"

namespace medcl {

// A running log-sum-exp: max m and sum s of exp(x - m). Empty: m = -inf, s = 0.
template <typename T>
struct Lse {
  T m, s;
};

template <typename T>
MEDCL_HD Lse<T> lse_empty() {
  return {-INFINITY, T(0)};
}

// Merge two running log-sum-exps (either may be empty).
template <typename T>
MEDCL_HD Lse<T> lse_merge(Lse<T> x, Lse<T> y) {
  if (y.m == -INFINITY) return x;
  if (x.m == -INFINITY) return y;
  if (x.m >= y.m) return {x.m, x.s + y.s * exp(y.m - x.m)};
  return {y.m, y.s + x.s * exp(x.m - y.m)};
}

// log(sum exp): -inf when empty.
template <typename T>
MEDCL_HD T lse_value(Lse<T> x) {
  return x.m == -INFINITY ? x.m : x.m + log(x.s);
}

// Index of the positive column of row i: (i + offset) mod n.
MEDCL_HD int64_t positive_column(int64_t i, int64_t offset, int64_t n) {
  return (i + offset) % n;
}

// dL/dS_ij of a kept entry from the softmax terms: g_row exp(s - row_lse) + g_col exp(s - col_lse);
// a term whose upstream gradient is 0 contributes exactly 0 (its lse may be -inf).
template <typename T>
MEDCL_HD T softmax_grad(T s, T row_lse, T col_lse, T g_row, T g_col) {
  T g = T(0);
  if (g_row != T(0)) g += g_row * exp(s - row_lse);
  if (g_col != T(0)) g += g_col * exp(s - col_lse);
  return g;
}

}  // namespace medcl
