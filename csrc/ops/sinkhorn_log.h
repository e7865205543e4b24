// Argument checks of medcl::sinkhorn_log{,_backward}, shared by the CPU and CUDA kernels.
#pragma once
// The checks below are defined in csrc/ops/checks.cpp, compiled by the host C++ compiler only
// (see there why they must not be compiled into the CUDA glue's translation units).

#include <ATen/ATen.h>

#include <limits>

namespace medcl {

constexpr int64_t kSinkhornMaxN = 128;

void check_sinkhorn_x(const char* op, const at::Tensor& x);

void check_sinkhorn_iters(const char* op, int64_t n_iters);

// Checks of the backward's tensors against x; returns n_iters.
int64_t check_sinkhorn_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                const at::Tensor& row_pot, const at::Tensor& col_pot);

}  // namespace medcl
