// CPU kernels of medcl::sinkhorn_log and its backward: the whole iteration loop per chunk of
// kL matrices, interleaved so that the SIMD lanes run across matrices (see kL), in parallel over
// chunks; only the potentials are written besides the output.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/vec_math.h"
#include "ops/sinkhorn_log.h"

namespace medcl {
namespace {

// Layout: kL matrices at a time, interleaved: buf[(i * N + j) * kL + l] is entry (i, j) of
// matrix l of the chunk. Every loop's innermost index is the lane l, so it vectorises whatever N
// is (N = 4 and N = 128 alike); a chunk of kL float matrices of N = 128 is 1 MB (L2-sized).
constexpr int64_t kL = 16;

// The lane loops carry no dependence between lanes: tell the vectoriser (OpenMP simd; the
// build links OpenMP, and without it the pragma is ignored).
#define MEDCL_SIMD _Pragma("omp simd")

// Row step of a chunk: subtracts the pending column potentials pc (N, kL) when given (fused into
// the max pass), then writes the row log-sum-exps to out (N, kL).
template <typename T, bool kSub>
inline __attribute__((always_inline)) void chunk_row_lse(T* __restrict__ buf, const T* __restrict__ pc, int64_t N,
                                                         T* __restrict__ out) {
  for (int64_t i = 0; i < N; ++i) {
    T m[kL], s[kL] = {};
    MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) m[l] = kNegInf<T>;
    T* row = buf + i * N * kL;
    for (int64_t j = 0; j < N; ++j)
      MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) {
        T v = row[j * kL + l];
        if constexpr (kSub) row[j * kL + l] = v = v - pc[j * kL + l];
        m[l] = m[l] > v ? m[l] : v;
      }
    for (int64_t j = 0; j < N; ++j)
      MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) s[l] += exp_any(row[j * kL + l] - m[l]);
    MEDCL_SIMD for (int64_t l = 0; l < kL; ++l)
      out[i * kL + l] = m[l] == kNegInf<T> ? m[l] : m[l] + log_ge1(s[l] > T(1) ? s[l] : T(1));
  }
}

// Column step of a chunk: subtracts the row potentials r (N, kL) (fused into the max pass), then
// writes the column log-sum-exps to out (N, kL). Rows are swept in order (never a column walk,
// whose stride of N kL entries lands every access in one L1 set); sum (N, kL) scratch.
template <typename T>
inline __attribute__((always_inline)) void chunk_col_lse(T* __restrict__ buf, const T* __restrict__ r, int64_t N,
                                                         T* __restrict__ out, T* __restrict__ sum) {
  const int64_t NL = N * kL;
  MEDCL_SIMD for (int64_t k = 0; k < NL; ++k) {
    out[k] = kNegInf<T>;
    sum[k] = T(0);
  }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) {
        const int64_t k = j * kL + l;
        const T v = buf[i * NL + k] - r[i * kL + l];
        buf[i * NL + k] = v;
        out[k] = out[k] > v ? out[k] : v;
      }
  for (int64_t i = 0; i < N; ++i)
    MEDCL_SIMD for (int64_t k = 0; k < NL; ++k) sum[k] += exp_any(buf[i * NL + k] - out[k]);
  MEDCL_SIMD for (int64_t k = 0; k < NL; ++k)
    out[k] = out[k] == kNegInf<T> ? out[k] : out[k] + log_ge1(sum[k] > T(1) ? sum[k] : T(1));
}

// Forward of one chunk: buf (N, N, kL) in place; r, c (T, N, kL) receive the potentials. Each
// potential is subtracted in the max pass of the next step (4 passes over the chunk per round).
template <typename T>
inline __attribute__((always_inline)) void chunk_forward_body(T* __restrict__ buf, T* __restrict__ r,
                                                              T* __restrict__ c, T* __restrict__ sum,
                                                              int64_t N, int64_t T_iters) {
  const int64_t NL = N * kL;
  for (int64_t t = 0; t < T_iters; ++t) {
    T* rt = r + t * NL;
    T* ct = c + t * NL;
    if (t == 0)
      chunk_row_lse<T, false>(buf, nullptr, N, rt);
    else
      chunk_row_lse<T, true>(buf, ct - NL, N, rt);
    chunk_col_lse(buf, rt, N, ct, sum);
  }
  const T* last = c + (T_iters - 1) * NL;
  for (int64_t i = 0; i < N; ++i)
    MEDCL_SIMD for (int64_t k = 0; k < NL; ++k) buf[i * NL + k] -= last[k];
}

// Backward of one chunk: g (N, N, kL) holds grad_out and becomes grad_x; x (N, N, kL); r, c
// (T, N, kL); y (N, N, kL), R, C, sum (N, kL) scratch. R, C: running sums of the potentials,
// walked from the totals down; z_t = x - R - C, y_t = z_t + c_t.
template <typename T>
inline __attribute__((always_inline)) void chunk_backward_body(T* __restrict__ g, const T* __restrict__ x,
                                                               const T* __restrict__ r, const T* __restrict__ c,
                                                               T* __restrict__ y, T* __restrict__ R,
                                                               T* __restrict__ C, T* __restrict__ sum,
                                                               int64_t N, int64_t T_iters) {
  const int64_t NL = N * kL;
  std::fill(R, R + NL, T(0));
  std::fill(C, C + NL, T(0));
  for (int64_t t = 0; t < T_iters; ++t)
    MEDCL_SIMD for (int64_t k = 0; k < NL; ++k) {
      R[k] += r[t * NL + k];
      C[k] += c[t * NL + k];
    }
  for (int64_t t = T_iters - 1; t >= 0; --t) {
    const T* ct = c + t * NL;
    std::fill(sum, sum + NL, T(0));                        // column sums of g
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) sum[j * kL + l] += g[(i * N + j) * kL + l];
    for (int64_t i = 0; i < N; ++i)                        // gy = g - softmax_col(y_t) * column sums
      for (int64_t j = 0; j < N; ++j)
        MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) {
          const int64_t e = (i * N + j) * kL + l;
          const T z = x[e] - R[i * kL + l] - C[j * kL + l];
          y[e] = z + ct[j * kL + l];
          g[e] -= exp_any(z) * sum[j * kL + l];
        }
    std::fill(sum, sum + NL, T(0));                        // row sums of gy
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) sum[i * kL + l] += g[(i * N + j) * kL + l];
    for (int64_t i = 0; i < N; ++i)                        // gx = gy - softmax_row(x_t) * row sums
      for (int64_t j = 0; j < N; ++j)
        MEDCL_SIMD for (int64_t l = 0; l < kL; ++l) {
          const int64_t e = (i * N + j) * kL + l;
          g[e] -= exp_any(y[e]) * sum[i * kL + l];
        }
    MEDCL_SIMD for (int64_t k = 0; k < NL; ++k) {
      R[k] -= r[t * NL + k];
      C[k] -= ct[k];
    }
  }
}

MEDCL_CLONES_512 void chunk_forward(float* buf, float* r, float* c, float* sum, int64_t N, int64_t T_iters) {
  chunk_forward_body(buf, r, c, sum, N, T_iters);
}
void chunk_forward(double* buf, double* r, double* c, double* sum, int64_t N, int64_t T_iters) {
  chunk_forward_body(buf, r, c, sum, N, T_iters);
}
MEDCL_CLONES_512 void chunk_backward(float* g, const float* x, const float* r, const float* c, float* y, float* R,
                                 float* C, float* sum, int64_t N, int64_t T_iters) {
  chunk_backward_body(g, x, r, c, y, R, C, sum, N, T_iters);
}
void chunk_backward(double* g, const double* x, const double* r, const double* c, double* y, double* R,
                    double* C, double* sum, int64_t N, int64_t T_iters) {
  chunk_backward_body(g, x, r, c, y, R, C, sum, N, T_iters);
}

// Matrices [b0, b0 + n) of src (B, rows, N) into the interleaved dst (rows, N, kL); lanes past
// n are zero (their results are never read).
template <typename T>
void gather_chunk(const T* src, int64_t b0, int64_t n, int64_t per, T* dst) {
  std::fill(dst, dst + per * kL, T(0));
  for (int64_t l = 0; l < n; ++l) {
    const T* m = src + (b0 + l) * per;
    for (int64_t e = 0; e < per; ++e) dst[e * kL + l] = m[e];
  }
}

template <typename T>
void scatter_chunk(const T* src, int64_t b0, int64_t n, int64_t per, T* dst) {
  for (int64_t l = 0; l < n; ++l) {
    T* m = dst + (b0 + l) * per;
    for (int64_t e = 0; e < per; ++e) m[e] = src[e * kL + l];
  }
}

// Chunks of kL matrices, in parallel over chunks.
template <typename F>
void for_each_chunk(int64_t B, const F& f) {
  const int64_t chunks = (B + kL - 1) / kL;
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) f(k * kL, std::min(kL, B - k * kL));
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sinkhorn_log_cpu(const at::Tensor& x_in, int64_t n_iters) {
  check_sinkhorn_x("medcl::sinkhorn_log", x_in);
  check_sinkhorn_iters("medcl::sinkhorn_log", n_iters);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor out = at::empty_like(x);
  at::Tensor row_pot = at::empty({B, n_iters, N}, x.options());
  at::Tensor col_pot = at::empty({B, n_iters, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "medcl::sinkhorn_log", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    T *o = out.data_ptr<T>(), *r = row_pot.data_ptr<T>(), *c = col_pot.data_ptr<T>();
    for_each_chunk(B, [&](int64_t b0, int64_t n) {
      std::vector<T> buf(N * N * kL), rc(n_iters * N * kL), cc(n_iters * N * kL), sum(N * kL);
      gather_chunk(xp, b0, n, N * N, buf.data());
      chunk_forward(buf.data(), rc.data(), cc.data(), sum.data(), N, n_iters);
      scatter_chunk(buf.data(), b0, n, N * N, o);
      scatter_chunk(rc.data(), b0, n, n_iters * N, r);
      scatter_chunk(cc.data(), b0, n, n_iters * N, c);
    });
  });
  return {out, row_pot, col_pot};
}

at::Tensor sinkhorn_log_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x_in,
                                     const at::Tensor& row_pot_in, const at::Tensor& col_pot_in) {
  const int64_t T_iters = check_sinkhorn_backward(grad_out, x_in, row_pot_in, col_pot_in);
  const at::Tensor x = x_in.contiguous(), row_pot = row_pot_in.contiguous(), col_pot = col_pot_in.contiguous();
  const at::Tensor go = grad_out.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor grad = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "medcl::sinkhorn_log_backward", [&] {
    using T = scalar_t;
    const T *gp = go.data_ptr<T>(), *xp = x.data_ptr<T>(), *rp = row_pot.data_ptr<T>(), *cp = col_pot.data_ptr<T>();
    T* out = grad.data_ptr<T>();
    for_each_chunk(B, [&](int64_t b0, int64_t n) {
      std::vector<T> g(N * N * kL), xb(N * N * kL), y(N * N * kL), r(T_iters * N * kL), c(T_iters * N * kL);
      std::vector<T> R(N * kL), C(N * kL), sum(N * kL);
      gather_chunk(gp, b0, n, N * N, g.data());
      gather_chunk(xp, b0, n, N * N, xb.data());
      gather_chunk(rp, b0, n, T_iters * N, r.data());
      gather_chunk(cp, b0, n, T_iters * N, c.data());
      chunk_backward(g.data(), xb.data(), r.data(), c.data(), y.data(), R.data(), C.data(), sum.data(), N, T_iters);
      scatter_chunk(g.data(), b0, n, N * N, out);
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
