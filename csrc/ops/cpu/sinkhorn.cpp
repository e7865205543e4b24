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

#include "ops/cpu/vec_math.h"
#include "ops/sinkhorn.h"

namespace medcl {
namespace {

// ---- loops over one contiguous row of n entries (vectorised; float clones for AVX2) ----------

// log sum_j exp(v[j]); -inf when every entry is -inf.
template <typename T>
inline __attribute__((always_inline)) T row_lse_body(const T* v, int64_t n) {
  T lane[kLanes];
  std::fill(lane, lane + kLanes, kNegInf<T>);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = lane[l] > v[j + l] ? lane[l] : v[j + l];
  for (; j < n; ++j) lane[0] = lane[0] > v[j] ? lane[0] : v[j];
  const T m = *std::max_element(lane, lane + kLanes);
  if (m == kNegInf<T>) return m;
  std::fill(lane, lane + kLanes, T(0));
  j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] += exp_any(v[j + l] - m);
  for (; j < n; ++j) lane[0] += exp_any(v[j] - m);
  T s = T(0);
  for (int64_t l = 0; l < kLanes; ++l) s += lane[l];
  return m + std::log(s);
}

// acc[j] = max(acc[j], v[j]).
template <typename T>
inline __attribute__((always_inline)) void max_into_body(T* acc, const T* v, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] = acc[j] > v[j] ? acc[j] : v[j];
}

// acc[j] += exp(v[j] - m[j]) (0 where m[j] is -inf: the column is all -inf).
template <typename T>
inline __attribute__((always_inline)) void sumexp_into_body(T* acc, const T* v, const T* m, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += m[j] == kNegInf<T> ? T(0) : exp_any(v[j] - m[j]);
}

// v[j] -= a + b[j].
template <typename T>
inline __attribute__((always_inline)) void sub_body(T* v, T a, const T* b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) v[j] -= a + b[j];
}

// Backward, column step for one row i: z = x - R_i - C, y = z + c; g -= exp(z) colsum.
template <typename T>
inline __attribute__((always_inline)) void col_back_body(T* g, T* y, const T* x, T R_i, const T* C,
                                                         const T* c, const T* colsum, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T z = x[j] - R_i - C[j];
    y[j] = z + c[j];
    g[j] -= exp_any(z) * colsum[j];
  }
}

// Backward, row step for one row: g -= exp(y) * sum(g).
template <typename T>
inline __attribute__((always_inline)) void row_back_body(T* g, const T* y, int64_t n) {
  T lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] += g[j + l];
  for (; j < n; ++j) lane[0] += g[j];
  T rowsum = T(0);
  for (int64_t l = 0; l < kLanes; ++l) rowsum += lane[l];
  for (j = 0; j < n; ++j) g[j] -= exp_any(y[j]) * rowsum;
}

// acc[j] += v[j].
template <typename T>
inline __attribute__((always_inline)) void add_into_body(T* acc, const T* v, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += v[j];
}

#define MEDCL_SINKHORN_LOOPS(T, CLONES)                                                             \
  CLONES T row_lse(const T* v, int64_t n) { return row_lse_body(v, n); }                          \
  CLONES void max_into(T* acc, const T* v, int64_t n) { max_into_body(acc, v, n); }               \
  CLONES void sumexp_into(T* acc, const T* v, const T* m, int64_t n) { sumexp_into_body(acc, v, m, n); } \
  CLONES void sub(T* v, T a, const T* b, int64_t n) { sub_body(v, a, b, n); }                     \
  CLONES void col_back(T* g, T* y, const T* x, T R_i, const T* C, const T* c, const T* cs, int64_t n) { \
    col_back_body(g, y, x, R_i, C, c, cs, n);                                                     \
  }                                                                                               \
  CLONES void row_back(T* g, const T* y, int64_t n) { row_back_body(g, y, n); }                   \
  CLONES void add_into(T* acc, const T* v, int64_t n) { add_into_body(acc, v, n); }
MEDCL_SINKHORN_LOOPS(float, MEDCL_CLONES)
MEDCL_SINKHORN_LOOPS(double, )
#undef MEDCL_SINKHORN_LOOPS

// One matrix: x (N, N) in place through T iterations; r, c (T, N) receive the potentials;
// m, s (N) scratch for the column statistics (rows are swept, so every access is contiguous).
template <typename T>
void sinkhorn_one(T* x, T* r, T* c, T* m, T* s, const T* zeros, int64_t N, int64_t T_iters) {
  for (int64_t t = 0; t < T_iters; ++t) {
    T* rt = r + t * N;
    T* ct = c + t * N;
    for (int64_t i = 0; i < N; ++i) {
      rt[i] = row_lse(x + i * N, N);
      sub(x + i * N, rt[i], zeros, N);
    }
    std::fill(m, m + N, kNegInf<T>);
    std::fill(s, s + N, T(0));
    for (int64_t i = 0; i < N; ++i) max_into(m, x + i * N, N);
    for (int64_t i = 0; i < N; ++i) sumexp_into(s, x + i * N, m, N);
    for (int64_t j = 0; j < N; ++j) ct[j] = m[j] == kNegInf<T> ? m[j] : m[j] + std::log(s[j]);
    for (int64_t i = 0; i < N; ++i) sub(x + i * N, T(0), ct, N);
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
      std::vector<scalar_t> m(N), s(N), zeros(N, scalar_t(0));
      for (int64_t b = b0; b < b1; ++b) {
        sinkhorn_one(o + b * N * N, r + b * n_iters * N, c + b * n_iters * N, m.data(), s.data(),
                     zeros.data(), N, n_iters);
      }
    });
  });
  return {out, row_pot, col_pot};
}

// One matrix's backward: g (N, N) holds grad_out and becomes grad_x; y (N, N), R, C, colsum (N)
// are scratch. R, C hold the running sums of the potentials, walked from the totals down.
template <typename T>
void sinkhorn_backward_one(T* g, const T* x, const T* r, const T* c, T* y, T* R, T* C, T* colsum,
                           int64_t N, int64_t T_iters) {
  std::fill(R, R + N, T(0));
  std::fill(C, C + N, T(0));
  for (int64_t t = 0; t < T_iters; ++t) {
    add_into(R, r + t * N, N);
    add_into(C, c + t * N, N);
  }
  for (int64_t t = T_iters - 1; t >= 0; --t) {
    // R = r_0 + .. + r_t, C = c_0 + .. + c_t: z_t = x - R - C, y_t = z_t + c_t.
    std::fill(colsum, colsum + N, T(0));
    for (int64_t i = 0; i < N; ++i) add_into(colsum, g + i * N, N);
    for (int64_t i = 0; i < N; ++i) {  // gy = g - softmax_col(y_t) * column sums of g
      col_back(g + i * N, y + i * N, x + i * N, R[i], C, c + t * N, colsum, N);
    }
    for (int64_t i = 0; i < N; ++i) row_back(g + i * N, y + i * N, N);  // gx = gy - softmax_row(x_t) * row sums
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
      std::vector<scalar_t> y(N * N), R(N), C(N), colsum(N);
      for (int64_t b = b0; b < b1; ++b) {
        sinkhorn_backward_one(g + b * N * N, xp + b * N * N, r + b * T_iters * N, c + b * T_iters * N,
                              y.data(), R.data(), C.data(), colsum.data(), N, T_iters);
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
