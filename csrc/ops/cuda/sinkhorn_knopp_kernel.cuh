// CUDA kernels of medcl::sinkhorn_knopp and its passes (col_lse, col_sums, codes) — raw
// pointers, sizes and a stream; no torch headers, so `make cuda-check` compiles them with nvcc
// alone. Glue: sinkhorn_knopp.cu. The op and its math are in csrc/ops/sinkhorn_knopp.cpp: codes
// Q = softmax_row(L - v), L = scores / eps, carried by the column potentials v (K,) float64.
//
// Kernels (every reduction in a fixed order: deterministic on a given device):
//   column kernels, grid (ceil(K / 32), chunks), block (32, 8): a block owns 32 columns of one
//     chunk of rows; warp y reads rows y, y + 8, ... 32 consecutive entries at a time
//     (coalesced). col_lse_partial keeps an online (max, shift, sum) per thread;
//     col_sums_partial sums exp(L_ij - v_j - shift_i) / rowsum_i. The 8 per-thread partials
//     are combined by warp 0 and written to (chunks, K) float64 workspaces; a finish kernel (one
//     thread per column) combines the chunks in order and writes the op's (K,) outputs or
//     updates v. chunks ~ 4 blocks per SM, at least 64 rows each.
//   row kernels, one warp per row, 8 rows per block: the row's shift (max of L - v) and 1/sum
//     of exp(L - v - shift) by warp shuffles (row_stats), then the codes (codes).
// Precision: differences of L are formed in float64 (fma(s, 1/eps, -v_j) - shift_i) before a
// float expf for float32 scores, so codes keep ~1e-7 relative accuracy at eps = 0.01 where
// L ~ 100; column-pass exponents (s - max_s) / eps are differences of two scores, exact or
// rounded relative to themselves. Sums are float64.
// Launches per fused call: 2 (round 1) + 3 per later round + 1 (codes); per col_sums call 3.
//
// Status: compiled by `make cuda-check` (sm_80, sm_90a) and the build; never run (no GPU was
// available where they were written). tests/ops/test_sinkhorn_knopp.py covers them under the
// `gpu` marker.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace medcl {
namespace cuda {
namespace skk {

constexpr int kColTile = 32;          // columns per block of the column kernels (one warp wide)
constexpr int kColRows = 8;           // warps per block of the column kernels (row stride)
constexpr int kRowWarps = 8;          // rows (one warp each) per block of the row kernels
constexpr int kFinishThreads = 256;   // threads per block of the finish kernels
constexpr int64_t kMinChunkRows = 64;
constexpr int kMaxChunks = 65535;     // gridDim.y

template <typename T>
__device__ __forceinline__ bool finite_(T x) { return x - x == T(0); }  // false for inf and NaN
__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return ::exp(v); }

// exp(y) of a float64 exponent, evaluated in the scores' precision.
template <typename T>
__device__ __forceinline__ double exp_row(double y);
template <>
__device__ __forceinline__ double exp_row<float>(double y) { return static_cast<double>(expf(static_cast<float>(y))); }
template <>
__device__ __forceinline__ double exp_row<double>(double y) { return ::exp(y); }

// Online column statistic in scores' units: max m, shift sh (m if finite, else 0) and
// acc = sum exp((x - sh) / eps) over the values pushed.
template <typename T>
struct ColStat {
  T m, sh;
  double acc;
};

template <typename T>
__device__ __forceinline__ void col_push(ColStat<T>& st, T x, T ie, double inv_eps) {
  if (x > st.m) {  // a new max: move the shift (rare after the first rows)
    const T nsh = finite_(x) ? x : T(0);
    if (st.acc > 0) st.acc *= ::exp((static_cast<double>(st.sh) - static_cast<double>(nsh)) * inv_eps);
    st.m = x;
    st.sh = nsh;
  }
  st.acc += static_cast<double>(exp_((x - st.sh) * ie));  // NaN x: acc becomes NaN
}

template <typename T>
__device__ __forceinline__ void col_merge(ColStat<T>& a, const ColStat<T>& b, double inv_eps) {
  const T M = b.m > a.m ? b.m : a.m;
  const T SH = finite_(M) ? M : T(0);
  double x = a.acc, y = b.acc;
  if (x > 0) x *= ::exp((static_cast<double>(a.sh) - static_cast<double>(SH)) * inv_eps);
  if (y > 0) y *= ::exp((static_cast<double>(b.sh) - static_cast<double>(SH)) * inv_eps);
  a.m = M;
  a.sh = SH;
  a.acc = x + y;
}

// part_m, part_s (chunks, K): column max of the chunk's scores (float64 of the scores' value) and
// sum exp((s - shift) / eps), shift = max if finite else 0.
template <typename T>
__global__ void __launch_bounds__(kColTile * kColRows)
    col_lse_partial_kernel(const T* __restrict__ s, int64_t B, int K, int64_t chunk_rows, double inv_eps,
                           double* __restrict__ part_m, double* __restrict__ part_s) {
  __shared__ ColStat<T> sm[kColRows][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int j = blockIdx.x * kColTile + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < B ? r0 + chunk_rows : B;
  const T ie = static_cast<T>(inv_eps);
  ColStat<T> st{-static_cast<T>(INFINITY), T(0), 0.0};
  if (j < K) {
    for (int64_t i = r0 + ty; i < r1; i += kColRows) col_push(st, s[i * K + j], ie, inv_eps);
  }
  sm[ty][tx] = st;
  __syncthreads();
  if (ty == 0 && j < K) {
    for (int k = 1; k < kColRows; ++k) col_merge(st, sm[k][tx], inv_eps);
    part_m[static_cast<int64_t>(blockIdx.y) * K + j] = static_cast<double>(st.m);
    part_s[static_cast<int64_t>(blockIdx.y) * K + j] = st.acc;
  }
}

// Chunks in order -> m = max / eps (-inf when no rows), s = sum relative to c = m if finite else
// 0; or, when v_out is set, v = c + log s + log K (round 1 of the fused loop).
__global__ void __launch_bounds__(kFinishThreads)
    col_lse_finish_kernel(const double* __restrict__ part_m, const double* __restrict__ part_s, int chunks,
                          int K, double eps, double log_K, double* __restrict__ m_out,
                          double* __restrict__ s_out, double* __restrict__ v_out) {
  const int j = blockIdx.x * kFinishThreads + threadIdx.x;
  if (j >= K) return;
  const double inv_eps = 1.0 / eps;
  double M = -INFINITY;
  for (int c = 0; c < chunks; ++c) {
    const double x = part_m[static_cast<int64_t>(c) * K + j];
    M = x > M ? x : M;
  }
  const double SH = finite_(M) ? M : 0.0;
  double sum = 0;
  for (int c = 0; c < chunks; ++c) {
    const double pm = part_m[static_cast<int64_t>(c) * K + j];
    double a = part_s[static_cast<int64_t>(c) * K + j];
    if (a > 0) a *= ::exp(((finite_(pm) ? pm : 0.0) - SH) * inv_eps);
    sum += a;
  }
  const double m = M / eps;
  if (v_out != nullptr) {
    v_out[j] = (finite_(m) ? m : 0.0) + ::log(sum) + log_K;
  } else {
    m_out[j] = m;
    s_out[j] = sum;
  }
}

// One warp's row: shift = max_j (L_j - v_j), rinv = 1 / sum_j exp(L_j - v_j - shift).
template <typename T>
__device__ __forceinline__ void row_stats_warp(const T* __restrict__ row, int K, const double* __restrict__ v,
                                               double inv_eps, int lane, double* shift, double* rinv) {
  double mx = -INFINITY;
  for (int j = lane; j < K; j += 32) {
    const double x = fma(static_cast<double>(row[j]), inv_eps, -v[j]);
    mx = x > mx ? x : mx;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const double y = __shfl_xor_sync(0xffffffffu, mx, o);
    mx = y > mx ? y : mx;
  }
  double sum = 0;
  for (int j = lane; j < K; j += 32) sum += exp_row<T>(fma(static_cast<double>(row[j]), inv_eps, -v[j]) - mx);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  *shift = mx;
  *rinv = 1.0 / sum;
}

template <typename T>
__global__ void __launch_bounds__(32 * kRowWarps)
    row_stats_kernel(const T* __restrict__ s, int64_t B, int K, double inv_eps, const double* __restrict__ v,
                     double* __restrict__ shift, double* __restrict__ rinv) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (i >= B) return;  // whole warps leave together
  double sh, ri;
  row_stats_warp(s + i * K, K, v, inv_eps, threadIdx.x % 32, &sh, &ri);
  if (threadIdx.x % 32 == 0) {
    shift[i] = sh;
    rinv[i] = ri;
  }
}

// part (chunks, K): sum over the chunk's rows of the codes exp(L_ij - v_j - shift_i) * rinv_i.
template <typename T>
__global__ void __launch_bounds__(kColTile * kColRows)
    col_sums_partial_kernel(const T* __restrict__ s, int64_t B, int K, int64_t chunk_rows, double inv_eps,
                            const double* __restrict__ v, const double* __restrict__ shift,
                            const double* __restrict__ rinv, double* __restrict__ part) {
  __shared__ double sm[kColRows][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int j = blockIdx.x * kColTile + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < B ? r0 + chunk_rows : B;
  double acc = 0;
  if (j < K) {
    const double vj = v[j];
    for (int64_t i = r0 + ty; i < r1; i += kColRows)
      acc += exp_row<T>(fma(static_cast<double>(s[i * K + j]), inv_eps, -vj) - shift[i]) * rinv[i];
  }
  sm[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && j < K) {
    for (int k = 1; k < kColRows; ++k) acc += sm[k][tx];
    part[static_cast<int64_t>(blockIdx.y) * K + j] = acc;
  }
}

// Chunks in order -> out = column sums; or, when v_update is set, v += log(sums) + log_ratio.
__global__ void __launch_bounds__(kFinishThreads)
    col_sums_finish_kernel(const double* __restrict__ part, int chunks, int K, double log_ratio,
                           double* __restrict__ out, double* __restrict__ v_update) {
  const int j = blockIdx.x * kFinishThreads + threadIdx.x;
  if (j >= K) return;
  double sum = 0;
  for (int c = 0; c < chunks; ++c) sum += part[static_cast<int64_t>(c) * K + j];
  if (v_update != nullptr) {
    v_update[j] = v_update[j] + ::log(sum) + log_ratio;
  } else {
    out[j] = sum;
  }
}

template <typename T>
__global__ void __launch_bounds__(32 * kRowWarps)
    codes_kernel(const T* __restrict__ s, int64_t B, int K, double inv_eps, const double* __restrict__ v,
                 T* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (i >= B) return;
  const int lane = threadIdx.x % 32;
  const T* row = s + i * K;
  double sh, ri;
  row_stats_warp(row, K, v, inv_eps, lane, &sh, &ri);
  T* o = out + i * K;
  for (int j = lane; j < K; j += 32)
    o[j] = static_cast<T>(exp_row<T>(fma(static_cast<double>(row[j]), inv_eps, -v[j]) - sh) * ri);
}

inline unsigned blocks_for(int64_t n, int64_t per) { return static_cast<unsigned>((n + per - 1) / per); }

}  // namespace skk

// Float64 scratch of one call, allocated by the caller (sizes from skk_workspace):
// part_a, part_b (chunks * K), row_shift, row_rinv (B).
struct SkkWorkspace {
  double* part_a;
  double* part_b;
  double* row_shift;
  double* row_rinv;
  int chunks;
};

// The number of row chunks of the column kernels for (B, K) on the current device.
inline cudaError_t skk_chunks(int64_t B, int K, int* chunks) {
  using namespace skk;
  int dev = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  const int64_t tiles = (K + kColTile - 1) / kColTile;
  int64_t want = (4 * static_cast<int64_t>(sms) + tiles - 1) / tiles;
  int64_t most = (B + kMinChunkRows - 1) / kMinChunkRows;
  most = most < 1 ? 1 : (most > kMaxChunks ? kMaxChunks : most);
  want = want < 1 ? 1 : (want > most ? most : want);
  *chunks = static_cast<int>(want);
  return cudaSuccess;
}

namespace skk {
inline int64_t chunk_rows(int64_t B, int chunks) {
  const int64_t r = (B + chunks - 1) / chunks;
  return r < 1 ? 1 : r;
}
}  // namespace skk

// col_lse: m_out, s_out (K) as in the schema, or (v_out set) v = c + log s + log K.
template <typename T>
inline cudaError_t launch_skk_col_lse(const T* s, int64_t B, int K, double eps, const SkkWorkspace& ws,
                                      double* m_out, double* s_out, double* v_out, cudaStream_t stream) {
  using namespace skk;
  if (K < 1 || ws.chunks < 1 || ws.chunks > kMaxChunks) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(K, kColTile), static_cast<unsigned>(ws.chunks));
  col_lse_partial_kernel<T><<<grid, dim3(kColTile, kColRows), 0, stream>>>(
      s, B, K, chunk_rows(B, ws.chunks), 1.0 / eps, ws.part_a, ws.part_b);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  col_lse_finish_kernel<<<blocks_for(K, kFinishThreads), kFinishThreads, 0, stream>>>(
      ws.part_a, ws.part_b, ws.chunks, K, eps, std::log(static_cast<double>(K)), m_out, s_out, v_out);
  return cudaGetLastError();
}

// col_sums: out (K) = sum_i softmax_j(L_ij - v_j), or (v_update set, out ignored)
// v += log(sums) + log_ratio.
template <typename T>
inline cudaError_t launch_skk_col_sums(const T* s, int64_t B, int K, double eps, const double* v,
                                       const SkkWorkspace& ws, double* out, double* v_update, double log_ratio,
                                       cudaStream_t stream) {
  using namespace skk;
  if (K < 1 || ws.chunks < 1 || ws.chunks > kMaxChunks) return cudaErrorInvalidValue;
  const double inv_eps = 1.0 / eps;
  if (B > 0) {
    row_stats_kernel<T><<<blocks_for(B, kRowWarps), 32 * kRowWarps, 0, stream>>>(s, B, K, inv_eps, v, ws.row_shift,
                                                                                  ws.row_rinv);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(blocks_for(K, kColTile), static_cast<unsigned>(ws.chunks));
  col_sums_partial_kernel<T><<<grid, dim3(kColTile, kColRows), 0, stream>>>(
      s, B, K, chunk_rows(B, ws.chunks), inv_eps, v, ws.row_shift, ws.row_rinv, ws.part_a);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  col_sums_finish_kernel<<<blocks_for(K, kFinishThreads), kFinishThreads, 0, stream>>>(ws.part_a, ws.chunks, K,
                                                                                        log_ratio, out, v_update);
  return cudaGetLastError();
}

// codes: out (B, K) = softmax_j(L_ij - v_j).
template <typename T>
inline cudaError_t launch_skk_codes(const T* s, int64_t B, int K, double eps, const double* v, T* out,
                                    cudaStream_t stream) {
  using namespace skk;
  if (B == 0) return cudaSuccess;
  codes_kernel<T><<<blocks_for(B, kRowWarps), 32 * kRowWarps, 0, stream>>>(s, B, K, 1.0 / eps, v, out);
  return cudaGetLastError();
}

// The whole loop for one process (B >= 1); v (K) float64 scratch for the potentials.
template <typename T>
inline cudaError_t launch_sinkhorn_knopp(const T* s, int64_t B, int K, double eps, int n_iters,
                                         const SkkWorkspace& ws, double* v, T* out, cudaStream_t stream) {
  if (B < 1 || n_iters < 1) return cudaErrorInvalidValue;
  cudaError_t err = launch_skk_col_lse<T>(s, B, K, eps, ws, nullptr, nullptr, v, stream);
  const double log_ratio = std::log(static_cast<double>(K)) - std::log(static_cast<double>(B));
  for (int t = 1; t < n_iters && err == cudaSuccess; ++t)
    err = launch_skk_col_sums<T>(s, B, K, eps, v, ws, nullptr, v, log_ratio, stream);
  if (err != cudaSuccess) return err;
  return launch_skk_codes<T>(s, B, K, eps, v, out, stream);
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate every launch template (and so every kernel) for each dtype.
#define MEDCL_SKK_INSTANTIATE(T)                                                                        \
  template cudaError_t medcl::cuda::launch_sinkhorn_knopp<T>(const T*, int64_t, int, double, int,       \
                                                             const medcl::cuda::SkkWorkspace&, double*, \
                                                             T*, cudaStream_t);                         \
  template cudaError_t medcl::cuda::launch_skk_col_lse<T>(const T*, int64_t, int, double,               \
                                                          const medcl::cuda::SkkWorkspace&, double*,    \
                                                          double*, double*, cudaStream_t);              \
  template cudaError_t medcl::cuda::launch_skk_col_sums<T>(const T*, int64_t, int, double, const double*, \
                                                           const medcl::cuda::SkkWorkspace&, double*,   \
                                                           double*, double, cudaStream_t);              \
  template cudaError_t medcl::cuda::launch_skk_codes<T>(const T*, int64_t, int, double, const double*, T*, \
                                                        cudaStream_t);
MEDCL_SKK_INSTANTIATE(float)
MEDCL_SKK_INSTANTIATE(double)
#endif
