// CPU kernels of medcl::sinkhorn_knopp and its passes (SwAV codes through column potentials;
// the math is in csrc/ops/sinkhorn_knopp.cpp). Two passes over the scores, each one sequential
// read of (B, K), exps vectorised (vec_math.h, AVX2 + baseline clones):
//   column pass (round 1): per row block, tiles of kRowTile x kColTile: the tile's column max
//     (raising a column's shift rescales its sum, rarely after the first tiles), then the sum of
//     exp((s - shift) / eps) into float64 column sums;
//   row pass (every round): per row, an approximate max, exp(L - v - max) into a K-long buffer
//     (L1-resident) with a float64 row sum, then the buffer times 1/sum: added into float64
//     column sums (col_sums) or written as the codes (codes).
// Rows are split into P = min(threads, B) contiguous blocks, each with its own column partials,
// added in block order: deterministic for a given thread count. Extra memory: P x K partials,
// one K-long buffer per thread; never a (B, K) temporary besides the output.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops/cpu/vec_math.h"
#include "ops/sinkhorn_knopp.h"

namespace medcl {
namespace {

// The float32 loops are compiled with MEDCL_CLONES_512 (AVX-512F besides AVX2 + baseline): they
// are exp-bound. Nothing here relies on uncontracted products (the exact th + R sum and the
// differences before the exp have no product to fuse). Reductions go through explicit lanes, so
// results do not depend on the vector width.

constexpr int64_t kColTile = 512;  // columns per tile of the column pass
constexpr int64_t kRowTile = 16;   // rows per tile (16 x 512 float32: 32 KB, L1/L2)

// ------------------------------------------------------------------------------ column pass

// tm[j] = max over `rows` rows (stride K) of s[., j], j < n.
template <typename T>
inline __attribute__((always_inline)) void tile_max_body(const T* __restrict__ s, int64_t K, int64_t rows,
                                                         int64_t n, T* __restrict__ tm) {
  for (int64_t j = 0; j < n; ++j) tm[j] = s[j];
  for (int64_t r = 1; r < rows; ++r) {
    const T* row = s + r * K;
    for (int64_t j = 0; j < n; ++j) tm[j] = tm[j] > row[j] ? tm[j] : row[j];
  }
}

// acc[j] += sum over `rows` rows of exp((s[., j] - sh[j]) * ie), j < n. The difference of two
// scores-unit values is exact or rounded relative to itself, so float32 loses nothing here.
template <typename T>
inline __attribute__((always_inline)) void tile_sumexp_body(const T* __restrict__ s, int64_t K, int64_t rows,
                                                            int64_t n, const T* __restrict__ sh, T ie,
                                                            double* __restrict__ acc) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = s + r * K;
    for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(exp_any((row[j] - sh[j]) * ie));
  }
}

MEDCL_CLONES_512 void tile_max(const float* s, int64_t K, int64_t rows, int64_t n, float* tm) {
  tile_max_body(s, K, rows, n, tm);
}
void tile_max(const double* s, int64_t K, int64_t rows, int64_t n, double* tm) { tile_max_body(s, K, rows, n, tm); }
MEDCL_CLONES_512 void tile_sumexp(const float* s, int64_t K, int64_t rows, int64_t n, const float* sh, float ie,
                              double* acc) {
  tile_sumexp_body(s, K, rows, n, sh, ie, acc);
}
void tile_sumexp(const double* s, int64_t K, int64_t rows, int64_t n, const double* sh, double ie, double* acc) {
  tile_sumexp_body(s, K, rows, n, sh, ie, acc);
}

// Column statistics of `rows` rows of s, in scores' units: cm (K) the running max, sh (K) the
// shift (cm if finite, else 0), acc (K) sum_i exp((s_ij - sh_j) / eps). Start: -inf, 0, 0.
template <typename T>
void col_lse_rows(const T* s, int64_t rows, int64_t K, double inv_eps, T* cm, T* sh, double* acc) {
  const T ie = static_cast<T>(inv_eps);
  T tm[kColTile];
  for (int64_t i0 = 0; i0 < rows; i0 += kRowTile) {
    const int64_t nr = std::min(kRowTile, rows - i0);
    for (int64_t j0 = 0; j0 < K; j0 += kColTile) {
      const int64_t n = std::min(kColTile, K - j0);
      const T* tile = s + i0 * K + j0;
      tile_max(tile, K, nr, n, tm);
      for (int64_t j = 0; j < n; ++j) {
        if (tm[j] > cm[j0 + j]) {  // a new column max: move the shift, rescale the sum
          const T nsh = std::isfinite(tm[j]) ? tm[j] : T(0);
          double& a = acc[j0 + j];
          if (a > 0) a *= std::exp((static_cast<double>(sh[j0 + j]) - static_cast<double>(nsh)) * inv_eps);
          cm[j0 + j] = tm[j];
          sh[j0 + j] = nsh;
        }
      }
      tile_sumexp(tile, K, nr, n, sh + j0, ie, acc + j0);
    }
  }
}

// Rows split into P contiguous blocks, P = min(threads, B).
inline int64_t row_blocks(int64_t B) { return std::min<int64_t>(B, std::max(1, at::get_num_threads())); }
inline int64_t block_start(int64_t p, int64_t P, int64_t B) { return P == 0 ? 0 : p * B / P; }

// m (K): max_i L_ij (-inf when B = 0); sm (K): sum_i exp(L_ij - c_j), c_j = m_j if finite else 0.
template <typename T>
void col_lse_impl(const T* s, int64_t B, int64_t K, double eps, double* m, double* sm) {
  const double inv_eps = 1.0 / eps;
  const int64_t P = row_blocks(B);
  std::vector<T> cm(P * K, kNegInf<T>), sh(P * K, T(0));
  std::vector<double> acc(P * K, 0.0);
  at::parallel_for(0, P, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = block_start(p, P, B), r1 = block_start(p + 1, P, B);
      col_lse_rows(s + r0 * K, r1 - r0, K, inv_eps, cm.data() + p * K, sh.data() + p * K, acc.data() + p * K);
    }
  });
  for (int64_t j = 0; j < K; ++j) {  // blocks in order: rescale each to the common shift
    T M = kNegInf<T>;
    for (int64_t p = 0; p < P; ++p) M = cm[p * K + j] > M ? cm[p * K + j] : M;
    const T SH = std::isfinite(M) ? M : T(0);
    double sum = 0;
    for (int64_t p = 0; p < P; ++p) {
      double a = acc[p * K + j];
      if (a > 0) a *= std::exp((static_cast<double>(sh[p * K + j]) - static_cast<double>(SH)) * inv_eps);
      sum += a;
    }
    m[j] = static_cast<double>(M) / eps;
    sm[j] = sum;
  }
}

// --------------------------------------------------------------------------------- row pass

// The column data of one row pass. float32: v in scores' units, t_j = eps v_j, as float pairs
// th_j + tl_j with th_j on the grid g = E 2^-21 (E a power of two >= max(|t_j|, 1)). A row shift
// R on the same grid with |R| <= 4E makes th_j + R exact in float, so
//   y_ij = ((s_ij - (th_j + R)) - tl_j) / eps = L_ij - v_j - R / eps
// is rounded relative to y itself; float32 L_ij - v_j would lose ulp(100)/2 = 4e-6 at eps = 0.01.
// A row whose shift is off the grid (huge or non-finite scores) takes the float64 path.
template <typename T>
struct RowPrep {
  const double* v;
  double eps, inv_eps;
  std::vector<float> th, tl;
  double g = 0, r_max = 0;

  RowPrep(const double* v_, int64_t K, double eps_) : v(v_), eps(eps_), inv_eps(1.0 / eps_) {
    if constexpr (std::is_same_v<T, float>) {
      double big = 1.0;
      for (int64_t j = 0; j < K; ++j) {
        const double t = eps * v[j];
        if (std::isfinite(t)) big = std::max(big, std::fabs(t));
      }
      int e = 0;
      std::frexp(big, &e);  // big < 2^e
      g = std::ldexp(1.0, e - 21);
      r_max = std::ldexp(4.0, e);
      th.resize(K);
      tl.resize(K);
      for (int64_t j = 0; j < K; ++j) {
        const double t = eps * v[j];
        const double h = std::isfinite(t) ? std::nearbyint(t / g) * g : t;
        th[j] = static_cast<float>(h);
        tl[j] = std::isfinite(t) ? static_cast<float>(t - h) : 0.0f;
      }
    }
  }
};

// float32 row: e (K) <- exp(L_j - v_j - shift), shift ~ the row max; returns sum_j e_j. The exp
// loop prefetches the next row one cache line per 16 entries (the max loop is the row's one
// read from memory; without the prefetch it waits on it: ~6% of a pass).
inline __attribute__((always_inline)) double row_exp_f32_body(const float* __restrict__ s, int64_t K,
                                                              const float* __restrict__ th,
                                                              const float* __restrict__ tl,
                                                              const double* __restrict__ v, double inv_eps,
                                                              double g, double r_max, float* __restrict__ e,
                                                              const float* next) {
  float lane[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lane[l] = kNegInf<float>;
  int64_t j = 0;
  for (; j + kLanes <= K; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const float x = s[j + l] - th[j + l];
      lane[l] = lane[l] > x ? lane[l] : x;
    }
  for (; j < K; ++j) {
    const float x = s[j] - th[j];
    lane[0] = lane[0] > x ? lane[0] : x;
  }
  float mx = lane[0];
  for (int64_t l = 1; l < kLanes; ++l) mx = mx > lane[l] ? mx : lane[l];
  const double R = std::nearbyint(static_cast<double>(mx) / g) * g;
  if (std::isfinite(R) && std::fabs(R) <= r_max) {
    const float Rf = static_cast<float>(R), ie = static_cast<float>(inv_eps);
    for (int64_t j0 = 0; j0 < K; j0 += 16) {
      __builtin_prefetch(next + j0);
      const int64_t j1 = std::min(K, j0 + 16);
      for (j = j0; j < j1; ++j) e[j] = exp_f32(((s[j] - (th[j] + Rf)) - tl[j]) * ie);  // th + R: exact
    }
  } else {
    const double shift = static_cast<double>(mx) * inv_eps;
    for (j = 0; j < K; ++j) e[j] = exp_f32(static_cast<float>((static_cast<double>(s[j]) * inv_eps - v[j]) - shift));
  }
  double acc[kLanes] = {};  // a loop of its own: fused into the exp loop it runs ~30% slower
  for (j = 0; j + kLanes <= K; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(e[j + l]);
  for (; j < K; ++j) acc[0] += static_cast<double>(e[j]);
  double sum = 0;
  for (int64_t l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

MEDCL_CLONES_512 double row_exp_f32(const float* s, int64_t K, const float* th, const float* tl, const double* v,
                                double inv_eps, double g, double r_max, float* e, const float* next) {
  return row_exp_f32_body(s, K, th, tl, v, inv_eps, g, r_max, e, next);
}

// float64 row: the same in float64 throughout.
double row_exp_f64(const double* __restrict__ s, int64_t K, const double* __restrict__ v, double inv_eps,
                   double* __restrict__ e) {
  double lane[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lane[l] = kNegInf<double>;
  int64_t j = 0;
  for (; j + kLanes <= K; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const double x = s[j + l] * inv_eps - v[j + l];
      e[j + l] = x;
      lane[l] = lane[l] > x ? lane[l] : x;
    }
  for (; j < K; ++j) {
    const double x = s[j] * inv_eps - v[j];
    e[j] = x;
    lane[0] = lane[0] > x ? lane[0] : x;
  }
  double mx = lane[0];
  for (int64_t l = 1; l < kLanes; ++l) mx = mx > lane[l] ? mx : lane[l];
  double sum = 0;
  for (j = 0; j < K; ++j) {
    e[j] = std::exp(e[j] - mx);
    sum += e[j];
  }
  return sum;
}

// `next`: the row processed after this one (prefetched during the exp loop; the row itself if none).
template <typename T>
inline double row_exp(const T* s, int64_t K, const RowPrep<T>& prep, T* e, const T* next) {
  if constexpr (std::is_same_v<T, float>) {
    return row_exp_f32(s, K, prep.th.data(), prep.tl.data(), prep.v, prep.inv_eps, prep.g, prep.r_max, e, next);
  } else {
    return row_exp_f64(s, K, prep.v, prep.inv_eps, e);
  }
}

// e (K) *= r (the codes of a row, in place).
template <typename T>
inline __attribute__((always_inline)) void scale_body(T* __restrict__ e, int64_t K, T r) {
  for (int64_t j = 0; j < K; ++j) e[j] *= r;
}
MEDCL_CLONES_512 void scale(float* e, int64_t K, float r) { scale_body(e, K, r); }
void scale(double* e, int64_t K, double r) { scale_body(e, K, r); }

// S (K) += e * r in float64 (a row's codes added into the column sums).
template <typename T>
inline __attribute__((always_inline)) void accumulate_body(const T* __restrict__ e, int64_t K, double r,
                                                           double* __restrict__ S) {
  for (int64_t j = 0; j < K; ++j) S[j] += static_cast<double>(e[j]) * r;
}
MEDCL_CLONES_512 void accumulate(const float* e, int64_t K, double r, double* S) { accumulate_body(e, K, r, S); }
void accumulate(const double* e, int64_t K, double r, double* S) { accumulate_body(e, K, r, S); }

// out (K) <- sum_i softmax_j(L_ij - v_j).
template <typename T>
void col_sums_impl(const T* s, int64_t B, int64_t K, double eps, const double* v, double* out) {
  const RowPrep<T> prep(v, K, eps);
  const int64_t P = row_blocks(B);
  std::vector<double> part(P * K, 0.0);
  at::parallel_for(0, P, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> e(K);
    for (int64_t p = p0; p < p1; ++p) {
      double* S = part.data() + p * K;
      const int64_t i1 = block_start(p + 1, P, B);
      for (int64_t i = block_start(p, P, B); i < i1; ++i) {
        const double sum = row_exp(s + i * K, K, prep, e.data(), s + (i + 1 < i1 ? i + 1 : i) * K);
        accumulate(e.data(), K, 1.0 / sum, S);
      }
    }
  });
  std::fill(out, out + K, 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t j = 0; j < K; ++j) out[j] += part[p * K + j];
}

// out (B, K) <- softmax_j(L_ij - v_j).
template <typename T>
void codes_impl(const T* s, int64_t B, int64_t K, double eps, const double* v, T* out) {
  const RowPrep<T> prep(v, K, eps);
  const int64_t grain = std::max<int64_t>(1, 16384 / K);
  at::parallel_for(0, B, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* o = out + i * K;
      const double sum = row_exp(s + i * K, K, prep, o, s + (i + 1 < i1 ? i + 1 : i) * K);
      scale(o, K, static_cast<T>(1.0 / sum));
    }
  });
}

// The whole loop for one process (B >= 1): see csrc/ops/sinkhorn_knopp.cpp. The potential updates
// are the ones medcl/ops/sinkhorn_knopp.py makes in its distributed loop, in the same order.
template <typename T>
void sinkhorn_knopp_impl(const T* s, int64_t B, int64_t K, double eps, int64_t n_iters, T* out) {
  std::vector<double> m(K), sm(K), v(K), S(K);
  col_lse_impl(s, B, K, eps, m.data(), sm.data());
  const double log_K = std::log(static_cast<double>(K)), log_B = std::log(static_cast<double>(B));
  for (int64_t j = 0; j < K; ++j) v[j] = (std::isfinite(m[j]) ? m[j] : 0.0) + std::log(sm[j]) + log_K;
  for (int64_t t = 1; t < n_iters; ++t) {
    col_sums_impl(s, B, K, eps, v.data(), S.data());
    for (int64_t j = 0; j < K; ++j) v[j] = v[j] + std::log(S[j]) + (log_K - log_B);
  }
  codes_impl(s, B, K, eps, v.data(), out);
}

// ------------------------------------------------------------------------------------- ops

at::Tensor sinkhorn_knopp_cpu(const at::Tensor& scores, double eps, int64_t n_iters) {
  constexpr const char* op = "medcl::sinkhorn_knopp";
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  check_skk_iters(op, n_iters);
  const at::Tensor x = scores.contiguous();
  at::Tensor out = at::empty_like(x);
  const int64_t B = x.size(0), K = x.size(1);
  if (B == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    sinkhorn_knopp_impl(x.data_ptr<scalar_t>(), B, K, eps, n_iters, out.data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sinkhorn_knopp_col_lse_cpu(const at::Tensor& scores, double eps) {
  constexpr const char* op = "medcl::sinkhorn_knopp_col_lse";
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  const at::Tensor x = scores.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor m = at::empty({K}, x.options().dtype(at::kDouble));
  at::Tensor s = at::empty({K}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    col_lse_impl(x.data_ptr<scalar_t>(), B, K, eps, m.data_ptr<double>(), s.data_ptr<double>());
  });
  return {m, s};
}

at::Tensor sinkhorn_knopp_col_sums_cpu(const at::Tensor& scores, double eps, const at::Tensor& v_in) {
  constexpr const char* op = "medcl::sinkhorn_knopp_col_sums";
  check_skk_pass(op, scores, eps, v_in);
  const at::Tensor x = scores.contiguous(), v = v_in.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor out = at::empty({K}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    col_sums_impl(x.data_ptr<scalar_t>(), B, K, eps, v.data_ptr<double>(), out.data_ptr<double>());
  });
  return out;
}

at::Tensor sinkhorn_knopp_codes_cpu(const at::Tensor& scores, double eps, const at::Tensor& v_in) {
  constexpr const char* op = "medcl::sinkhorn_knopp_codes";
  check_skk_pass(op, scores, eps, v_in);
  const at::Tensor x = scores.contiguous(), v = v_in.contiguous();
  const int64_t B = x.size(0), K = x.size(1);
  at::Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    codes_impl(x.data_ptr<scalar_t>(), B, K, eps, v.data_ptr<double>(), out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) {
  m.impl("sinkhorn_knopp", &sinkhorn_knopp_cpu);
  m.impl("sinkhorn_knopp_col_lse", &sinkhorn_knopp_col_lse_cpu);
  m.impl("sinkhorn_knopp_col_sums", &sinkhorn_knopp_col_sums_cpu);
  m.impl("sinkhorn_knopp_codes", &sinkhorn_knopp_codes_cpu);
}

}  // namespace medcl
