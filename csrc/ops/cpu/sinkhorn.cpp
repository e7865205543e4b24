// CPU kernels of medcl::sinkhorn_log and its backward: parallel over the batch, each matrix
// (N <= 128, at most 128 KB) iterated in place in a thread-local buffer that stays in cache.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/sinkhorn.h"

namespace medcl {
namespace {

// log sum_k exp(v[k * stride]) over n entries; -inf when all are -inf.
template <typename T>
T logsumexp(const T* v, int64_t n, int64_t stride) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < n; ++k) m = std::max(m, v[k * stride]);
  if (m == -std::numeric_limits<T>::infinity()) return m;
  T s = T(0);
  for (int64_t k = 0; k < n; ++k) s += std::exp(v[k * stride] - m);
  return m + std::log(s);
}

// One matrix: x (N, N) in place through T iterations; r, c (T, N) receive the potentials.
template <typename T>
void sinkhorn_one(T* x, T* r, T* c, int64_t N, int64_t T_iters) {
  for (int64_t t = 0; t < T_iters; ++t) {
    for (int64_t i = 0; i < N; ++i) {
      T* row = x + i * N;
      const T ri = logsumexp(row, N, 1);
      r[t * N + i] = ri;
      for (int64_t j = 0; j < N; ++j) row[j] -= ri;
    }
    for (int64_t j = 0; j < N; ++j) {
      const T cj = logsumexp(x + j, N, N);
      c[t * N + j] = cj;
      for (int64_t i = 0; i < N; ++i) x[i * N + j] -= cj;
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sinkhorn_log_cpu(const at::Tensor& x_in, int64_t n_iters) {
  check_sinkhorn_x("medcl::sinkhorn_log", x_in);
  TORCH_CHECK(n_iters >= 1, "medcl::sinkhorn_log: n_iters must be >= 1, got ", n_iters);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor out = x.clone();
  at::Tensor row_pot = at::empty({B, n_iters, N}, x.options());
  at::Tensor col_pot = at::empty({B, n_iters, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "medcl::sinkhorn_log", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* r = row_pot.data_ptr<scalar_t>();
    scalar_t* c = col_pot.data_ptr<scalar_t>();
    at::parallel_for(0, B, std::max<int64_t>(1, 4096 / (N * N)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        sinkhorn_one(o + b * N * N, r + b * n_iters * N, c + b * n_iters * N, N, n_iters);
      }
    });
  });
  return {out, row_pot, col_pot};
}

// One matrix's backward: g (N, N) holds grad_out and becomes grad_x; y is scratch (N, N);
// R, C (N) scratch for the running potential sums.
template <typename T>
void sinkhorn_backward_one(T* g, const T* x, const T* r, const T* c, T* y, T* R, T* C, int64_t N,
                           int64_t T_iters) {
  // Totals: R = r_0 + ... + r_{T-1}, C = c_0 + ... + c_{T-1}.
  std::fill(R, R + N, T(0));
  std::fill(C, C + N, T(0));
  for (int64_t t = 0; t < T_iters; ++t) {
    for (int64_t i = 0; i < N; ++i) R[i] += r[t * N + i];
    for (int64_t j = 0; j < N; ++j) C[j] += c[t * N + j];
  }
  for (int64_t t = T_iters - 1; t >= 0; --t) {
    // Here R = r_0 + .. + r_t and C = c_0 + .. + c_t: z_t = x - R - C, y_t = z_t + c_t.
    for (int64_t j = 0; j < N; ++j) {
      T colsum = T(0);
      for (int64_t i = 0; i < N; ++i) colsum += g[i * N + j];
      for (int64_t i = 0; i < N; ++i) {
        const T z = x[i * N + j] - R[i] - C[j];
        y[i * N + j] = z + c[t * N + j];
        g[i * N + j] -= std::exp(z) * colsum;  // gy = g - softmax_col(y_t) * column sums of g
      }
    }
    for (int64_t i = 0; i < N; ++i) {
      T* gi = g + i * N;
      const T* yi = y + i * N;
      T rowsum = T(0);
      for (int64_t j = 0; j < N; ++j) rowsum += gi[j];
      for (int64_t j = 0; j < N; ++j) gi[j] -= std::exp(yi[j]) * rowsum;  // gx = gy - softmax_row(x_t) * row sums
    }
    for (int64_t i = 0; i < N; ++i) R[i] -= r[t * N + i];
    for (int64_t j = 0; j < N; ++j) C[j] -= c[t * N + j];
  }
}

at::Tensor sinkhorn_log_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x_in,
                                     const at::Tensor& row_pot_in, const at::Tensor& col_pot_in) {
  const int64_t T_iters = check_sinkhorn_backward(grad_out, x_in, row_pot_in, col_pot_in);
  const at::Tensor x = x_in.contiguous(), row_pot = row_pot_in.contiguous(), col_pot = col_pot_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor grad = grad_out.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "medcl::sinkhorn_log_backward", [&] {
    scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* r = row_pot.data_ptr<scalar_t>();
    const scalar_t* c = col_pot.data_ptr<scalar_t>();
    at::parallel_for(0, B, std::max<int64_t>(1, 4096 / (N * N)), [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> y(N * N), R(N), C(N);
      for (int64_t b = b0; b < b1; ++b) {
        sinkhorn_backward_one(g + b * N * N, xp + b * N * N, r + b * T_iters * N, c + b * T_iters * N,
                              y.data(), R.data(), C.data(), N, T_iters);
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) {
  m.impl("sinkhorn_log", &sinkhorn_log_cpu);
  m.impl("sinkhorn_log_backward", &sinkhorn_log_backward_cpu);
}

}  // namespace medcl
