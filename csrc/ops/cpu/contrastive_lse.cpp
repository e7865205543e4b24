// CPU kernels of medcl::contrastive_lse and its backward: tiled, with a BLAS GEMM per tile and
// online log-sum-exps, so no (M, N) buffer ever exists (extra memory: one tile per thread plus
// O(M + N) statistics).
//
// Scheduling. The rows of a are cut into P parts and the columns (rows of b) into P parts,
// P = threads. A tile of rows R and columns C updates statistics (forward) or gradients
// (backward) of R and of C. In wave w = 0..P-1, task t takes row part t and column part
// (t + w) mod P: within a wave no two tasks share a row part or a column part, so every task
// owns what it writes and no per-thread copies of dB or of the column statistics are needed.
// Each element of S is computed once in forward and once in backward: 1 GEMM pass forward
// (S), 3 backward (S again, dA = dS B, dB = dS^T A) — the 4-pass floor.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/contrastive_lse.h"
#include "ops/contrastive_lse_math.h"
#include "ops/cpu/vec_math.h"

namespace medcl {
namespace {

constexpr int64_t kRowTile = 128;  // rows of a per GEMM tile
constexpr int64_t kColTile = 512;  // rows of b per GEMM tile

// ---- elementwise tile bodies (T = float or double) -------------------------------------------

// One row of S (n entries): excluded entries (keep_col[c] == 0) become -inf; returns the max.
template <typename T>
inline __attribute__((always_inline)) T mask_row_body(T* row, const T* keep_col, int64_t n) {
  T lane[kLanes];
  std::fill(lane, lane + kLanes, kNegInf<T>);
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      const T s = keep_col[c + l] != T(0) ? row[c + l] : kNegInf<T>;
      row[c + l] = s;
      lane[l] = lane[l] > s ? lane[l] : s;
    }
  }
  for (; c < n; ++c) {
    const T s = keep_col[c] != T(0) ? row[c] : kNegInf<T>;
    row[c] = s;
    lane[0] = lane[0] > s ? lane[0] : s;
  }
  return *std::max_element(lane, lane + kLanes);
}

// sum_c exp(row[c] - m) over finite entries (m finite).
template <typename T>
inline __attribute__((always_inline)) T row_sumexp_body(const T* row, T m, int64_t n) {
  T lane[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      const T e = exp_any(row[c + l] - m);
      lane[l] += row[c + l] != kNegInf<T> ? e : T(0);
    }
  }
  for (; c < n; ++c) lane[0] += row[c] != kNegInf<T> ? exp_any(row[c] - m) : T(0);
  T sum = T(0);
  for (int64_t l = 0; l < kLanes; ++l) sum += lane[l];
  return sum;
}

// col_sum[c] += exp(row[c] - col_max[c]) over finite entries.
template <typename T>
inline __attribute__((always_inline)) void col_sumexp_body(const T* row, const T* col_max, T* col_sum,
                                                           int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    const T e = exp_any(row[c] - col_max[c]);
    col_sum[c] += row[c] != kNegInf<T> ? e : T(0);
  }
}

// dS row: keep_col[c] ? g_row exp(s - row_lse) + g_col[c] exp(s - col_lse[c]) : 0. Each lse
// arrives as hi + lo (float64 statistics split into two T), and s - hi is exact where it
// matters (s near lse), so exp((s - hi) - lo) keeps the float64 statistic's accuracy. An unused
// statistic arrives as (g = 0, hi = +inf, lo = 0): its term is exp(-inf) * 0 = 0.
template <typename T>
inline __attribute__((always_inline)) void grad_row_body(T* row, const T* keep_col, T g_row, T row_hi,
                                                         T row_lo, const T* g_col, const T* col_hi,
                                                         const T* col_lo, int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    const T s = row[c];
    const T v = g_row * exp_any((s - row_hi) - row_lo) + g_col[c] * exp_any((s - col_hi[c]) - col_lo[c]);
    row[c] = keep_col[c] != T(0) ? v : T(0);
  }
}

MEDCL_CLONES float mask_row(float* row, const float* keep, int64_t n) { return mask_row_body(row, keep, n); }
MEDCL_CLONES float row_sumexp(const float* row, float m, int64_t n) { return row_sumexp_body(row, m, n); }
MEDCL_CLONES void col_sumexp(const float* row, const float* mx, float* sum, int64_t n) {
  col_sumexp_body(row, mx, sum, n);
}
MEDCL_CLONES void grad_row(float* row, const float* keep, float gr, float rh, float rl, const float* gc,
                           const float* ch, const float* cl, int64_t n) {
  grad_row_body(row, keep, gr, rh, rl, gc, ch, cl, n);
}
double mask_row(double* row, const double* keep, int64_t n) { return mask_row_body(row, keep, n); }
double row_sumexp(const double* row, double m, int64_t n) { return row_sumexp_body(row, m, n); }
void col_sumexp(const double* row, const double* mx, double* sum, int64_t n) {
  col_sumexp_body(row, mx, sum, n);
}
void grad_row(double* row, const double* keep, double gr, double rh, double rl, const double* gc,
              const double* ch, const double* cl, int64_t n) {
  grad_row_body(row, keep, gr, rh, rl, gc, ch, cl, n);
}

// ---- scheduling ------------------------------------------------------------------------------

// [begin, end) of part p of n items cut into `parts` near-equal parts.
inline std::pair<int64_t, int64_t> part_range(int64_t n, int64_t parts, int64_t p) {
  return {n * p / parts, n * (p + 1) / parts};
}

// Calls tile(r0, r1, c0, c1, scratch) for every (row tile, column tile) of an M x N grid, in
// P waves of P conflict-free tasks (see the file comment). scratch: one tile of T per task.
template <typename T, typename F>
void for_each_tile(int64_t M, int64_t N, const F& tile) {
  const int64_t P = std::max<int64_t>(
      1, std::min<int64_t>({at::get_num_threads(), (M + 15) / 16, (N + 15) / 16}));
  for (int64_t w = 0; w < P; ++w) {
    at::parallel_for(0, P, 1, [&](int64_t t0, int64_t t1) {
      // Dispatch-key exclusions are thread-local: worker threads need their own.
      const at::AutoDispatchBelowADInplaceOrView below_autograd;
      std::vector<T> scratch(kRowTile * kColTile);
      for (int64_t t = t0; t < t1; ++t) {
        const auto [rb, re] = part_range(M, P, t);
        const auto [cb, ce] = part_range(N, P, (t + w) % P);
        for (int64_t r0 = rb; r0 < re; r0 += kRowTile) {
          for (int64_t c0 = cb; c0 < ce; c0 += kColTile) {
            tile(r0, std::min(r0 + kRowTile, re), c0, std::min(c0 + kColTile, ce), scratch.data());
          }
        }
      }
    });
  }
}

// S tile (r1 - r0, c1 - c0), row-major in `buf`: scale * a[r0:r1] . b[c0:c1]^T by BLAS.
template <typename T>
at::Tensor similarity_tile(const ContrastiveCall& c, double scale, int64_t r0, int64_t r1,
                           int64_t c0, int64_t c1, T* buf) {
  at::Tensor S = at::from_blob(buf, {r1 - r0, c1 - c0}, c.a.options());
  at::addmm_out(S, S, c.a.narrow(0, r0, r1 - r0), c.b.narrow(0, c0, c1 - c0).t(), /*beta=*/0,
                /*alpha=*/scale);
  return S;
}

// keep_a / keep_b as 0/1 in T, the form the vectorised loops select on.
template <typename T>
std::vector<T> keep_as(const at::Tensor& keep) {
  const bool* k = keep.data_ptr<bool>();
  std::vector<T> out(keep.numel());
  for (int64_t i = 0; i < keep.numel(); ++i) out[i] = k[i] ? T(1) : T(0);
  return out;
}

// ---- forward ---------------------------------------------------------------------------------

// A running log-sum-exp of T values as a float64 statistic.
template <typename T>
double lse_double(Lse<T> x) {
  return x.m == kNegInf<T> ? -std::numeric_limits<double>::infinity()
                           : static_cast<double>(x.m) + std::log(static_cast<double>(x.s));
}

template <typename T>
void lse_forward(const ContrastiveCall& c, double scale, int64_t offset, bool exclude_self,
                 double* row_lse, double* col_lse, double* diag) {
  const std::vector<T> keep_a = keep_as<T>(c.keep_a), keep_b = keep_as<T>(c.keep_b);
  std::vector<Lse<T>> rows(c.M, lse_empty<T>()), cols(c.N, lse_empty<T>());
  for_each_tile<T>(c.M, c.N, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, T* buf) {
    const int64_t n = c1 - c0;
    similarity_tile<T>(c, scale, r0, r1, c0, c1, buf);
    std::vector<T> keep_col(keep_b.begin() + c0, keep_b.begin() + c1);
    std::vector<T> col_max(n, kNegInf<T>), col_sum(n, T(0));
    for (int64_t i = r0; i < r1; ++i) {
      T* row = buf + (i - r0) * n;
      const int64_t p = positive_column(i, offset, c.N);
      if (p >= c0 && p < c1) diag[i] = row[p - c0];  // raw S, whatever the masks
      const bool self = exclude_self && i >= c0 && i < c1;
      if (self) keep_col[i - c0] = T(0);
      const T m = keep_a[i] != T(0) ? mask_row(row, keep_col.data(), n) : kNegInf<T>;
      if (self) keep_col[i - c0] = keep_b[i];
      if (m == kNegInf<T>) {  // nothing kept in this row of the tile
        std::fill(row, row + n, kNegInf<T>);
        continue;
      }
      rows[i] = lse_merge(rows[i], Lse<T>{m, row_sumexp(row, m, n)});
      for (int64_t j = 0; j < n; ++j) col_max[j] = std::max(col_max[j], row[j]);
    }
    for (int64_t i = r0; i < r1; ++i) col_sumexp(buf + (i - r0) * n, col_max.data(), col_sum.data(), n);
    for (int64_t j = 0; j < n; ++j) cols[c0 + j] = lse_merge(cols[c0 + j], Lse<T>{col_max[j], col_sum[j]});
  });
  for (int64_t i = 0; i < c.M; ++i) row_lse[i] = lse_double(rows[i]);
  for (int64_t j = 0; j < c.N; ++j) col_lse[j] = lse_double(cols[j]);
}

// The CPU kernels compute in float32 or float64: half-type inputs are converted once.
void compute_in_float32_if_half(ContrastiveCall& c) {
  if (c.a.scalar_type() != at::kFloat && c.a.scalar_type() != at::kDouble) {
    c.a = c.a.to(at::kFloat);
    c.b = c.b.to(at::kFloat);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> contrastive_lse_cpu(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& keep_a, const at::Tensor& keep_b,
    double scale, int64_t offset, bool exclude_self) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // our ATen calls are internal
  auto c = prepare_contrastive("medcl::contrastive_lse", a, b, keep_a, keep_b, offset, exclude_self);
  compute_in_float32_if_half(c);
  const auto opts = c.a.options().dtype(at::kDouble);  // computed in float64, returned in stat_dtype
  at::Tensor row_lse = at::empty({c.M}, opts), col_lse = at::empty({c.N}, opts);
  at::Tensor diag = at::zeros({c.M}, opts);
  AT_DISPATCH_FLOATING_TYPES(c.a.scalar_type(), "medcl::contrastive_lse", [&] {
    lse_forward<scalar_t>(c, scale, offset, exclude_self, row_lse.data_ptr<double>(),
                          col_lse.data_ptr<double>(), diag.data_ptr<double>());
  });
  return {row_lse.to(c.stat_dtype), col_lse.to(c.stat_dtype), diag.to(c.stat_dtype)};
}

// ---- backward --------------------------------------------------------------------------------

// Per-row (or per-column) gradient and statistic as the loops use them: g, and lse = hi + lo in
// T; (0, +inf, 0) when unused.
template <typename T>
struct Effective {
  std::vector<T> g, hi, lo;
};

template <typename T>
Effective<T> effective(const at::Tensor& g, const at::Tensor& lse) {
  const at::Tensor g64 = g.to(at::kDouble).contiguous(), l64 = lse.to(at::kDouble).contiguous();
  const double* gp = g64.data_ptr<double>();
  const double* lp = l64.data_ptr<double>();
  const int64_t n = g.numel();
  Effective<T> e{std::vector<T>(n), std::vector<T>(n), std::vector<T>(n)};
  for (int64_t i = 0; i < n; ++i) {
    const bool used = gp[i] != 0.0 && std::isfinite(lp[i]);
    e.g[i] = used ? static_cast<T>(gp[i]) : T(0);
    e.hi[i] = used ? static_cast<T>(lp[i]) : std::numeric_limits<T>::infinity();
    e.lo[i] = used ? static_cast<T>(lp[i] - static_cast<double>(e.hi[i])) : T(0);
  }
  return e;
}

template <typename T>
void lse_backward(const ContrastiveCall& c, const ContrastiveGrads& g, double scale, int64_t offset,
                  bool exclude_self, at::Tensor& da, at::Tensor& db) {
  const std::vector<T> keep_a = keep_as<T>(c.keep_a), keep_b = keep_as<T>(c.keep_b);
  const Effective<T> row = effective<T>(g.g_row, g.row_lse), col = effective<T>(g.g_col, g.col_lse);
  const at::Tensor g_diag64 = g.g_diag.to(at::kDouble).contiguous();
  const double* g_diag = g_diag64.data_ptr<double>();
  for_each_tile<T>(c.M, c.N, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, T* buf) {
    const int64_t n = c1 - c0;
    at::Tensor S = similarity_tile<T>(c, scale, r0, r1, c0, c1, buf);  // becomes dS in place
    bool any = false;
    for (int64_t i = r0; i < r1; ++i) {
      T* ds = buf + (i - r0) * n;
      const int64_t p = positive_column(i, offset, c.N);
      const bool pos_here = p >= c0 && p < c1;
      const T s_pos = pos_here ? ds[p - c0] : T(0);
      const bool pos_kept = pos_here && keep_a[i] != T(0) && keep_b[p] != T(0) && !(exclude_self && i == p);
      if (keep_a[i] == T(0)) {
        std::fill(ds, ds + n, T(0));
      } else {
        grad_row(ds, keep_b.data() + c0, row.g[i], row.hi[i], row.lo[i], col.g.data() + c0,
                 col.hi.data() + c0, col.lo.data() + c0, n);
        if (exclude_self && i >= c0 && i < c1) ds[i - c0] = T(0);
        any = true;
      }
      if (pos_kept) {
        // g_r p_r + g_c p_c + g_d as g_r (p_r - 1) + g_c (p_c - 1) + (g_d + g_r + g_c), in
        // float64 with expm1: a loss's positive has g_d = -(g_r + g_c) and p near 1, where the
        // first form cancels in T and p - 1 needs p to better than the vectorised exp's 1.4 ulp.
        const double gr = row.g[i], gc = col.g[p], s64 = s_pos;
        const double lr = static_cast<double>(row.hi[i]) + row.lo[i];
        const double lc = static_cast<double>(col.hi[p]) + col.lo[p];
        const double v = (gr != 0.0 ? gr * std::expm1(s64 - lr) : 0.0) +
                         (gc != 0.0 ? gc * std::expm1(s64 - lc) : 0.0) + (g_diag[i] + gr + gc);
        ds[p - c0] = static_cast<T>(v);
        any = true;
      } else if (pos_here && g_diag[i] != 0.0) {
        ds[p - c0] += static_cast<T>(g_diag[i]);
        any = true;
      }
    }
    if (!any) return;
    at::Tensor da_rows = da.narrow(0, r0, r1 - r0), db_rows = db.narrow(0, c0, n);
    at::addmm_out(da_rows, da_rows, S, c.b.narrow(0, c0, n), /*beta=*/1, /*alpha=*/scale);
    at::addmm_out(db_rows, db_rows, S.t(), c.a.narrow(0, r0, r1 - r0), /*beta=*/1, /*alpha=*/scale);
  });
}

std::tuple<at::Tensor, at::Tensor> contrastive_lse_backward_cpu(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& keep_a, const at::Tensor& keep_b,
    double scale, int64_t offset, bool exclude_self, const at::Tensor& row_lse,
    const at::Tensor& col_lse, const at::Tensor& g_row, const at::Tensor& g_col,
    const at::Tensor& g_diag) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  auto c = prepare_contrastive("medcl::contrastive_lse_backward", a, b, keep_a, keep_b, offset,
                               exclude_self);
  const auto g = prepare_contrastive_grads(c, row_lse, col_lse, g_row, g_col, g_diag);
  const at::ScalarType input = c.a.scalar_type();
  compute_in_float32_if_half(c);
  at::Tensor da = at::zeros_like(c.a), db = at::zeros_like(c.b);
  AT_DISPATCH_FLOATING_TYPES(c.a.scalar_type(), "medcl::contrastive_lse_backward", [&] {
    lse_backward<scalar_t>(c, g, scale, offset, exclude_self, da, db);
  });
  return {da.to(input), db.to(input)};
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) {
  m.impl("contrastive_lse", &contrastive_lse_cpu);
  m.impl("contrastive_lse_backward", &contrastive_lse_backward_cpu);
}

}  // namespace medcl
