// CUDA kernels of medcl::sinkhorn_log and medcl::sinkhorn_log_backward — raw pointers, sizes
// and a stream; no torch headers, so `make cuda-check` compiles them with nvcc alone.
// Glue: sinkhorn.cu. The op is defined in csrc/ops/sinkhorn.cpp.
//
// Layout. A group of n threads owns one (n, n) matrix; thread `lane` of the group owns row
// `lane` in the row steps and column `lane` in the column steps (each a sequential
// log-sum-exp / sum over n <= 128 entries). A block packs mpb = min(256 / n, what fits in
// kPackBytes of shared memory) matrices (at least 1), so blockDim = mpb * n <= 256, and walks
// the batch with a grid stride (64-bit matrix indices). The whole iteration loop, forward or
// backward, is one launch; every phase ends with a __syncthreads that all threads of the block
// reach, also those whose matrix index is past B (they skip the work, never the barriers).
//
// Shared memory per matrix (row stride ld = n | 1, odd, so a warp walking rows is free of bank
// conflicts for 4- and 8-byte elements):
//   forward  kSmem:            n * ld * sizeof(T)            (the working matrix)
//   backward kSmem:            (2 n + n * ld) * sizeof(T)    (R, C running potential sums, g)
// plus, in the backward, x itself when kXSmem (another n * ld * sizeof(T)). The launchers pick
// the first layout that fits the device's opt-in shared memory per block:
//   forward:  the matrix in shared memory, else in the `out` buffer (global, L1/L2 cached);
//   backward: x and g in shared memory, else g in shared memory and x read from global, else
//             both in global (g then lives in the grad_x buffer).
// Examples, n = 128: float32 forward 66,048 B, backward 133,120 B (x and g); float64 forward
// 132,096 B, backward 134,144 B (g only; x from global). On sm_80 (163 KB) and sm_90
// (227 KB) every float32 case keeps everything in shared memory; 99 KB parts (sm_86/89) fall
// back to global memory for the largest n.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace medcl {
namespace cuda {
namespace sinkhorn {

constexpr int kMaxThreads = 256;
constexpr int kMaxN = 128;
constexpr size_t kPackBytes = 64 * 1024;  // shared memory budget when packing several matrices

__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return ::exp(v); }
__device__ __forceinline__ float log_(float v) { return logf(v); }
__device__ __forceinline__ double log_(double v) { return ::log(v); }
template <typename T>
__device__ __forceinline__ T inf_() { return static_cast<T>(INFINITY); }

// log(sum_k exp(v[k * stride])) for k < n, as torch.logsumexp computes it: the max is taken
// out first, and an infinite max is replaced by 0 (an all -inf line gives -inf, a line holding
// +inf gives +inf, NaN propagates).
template <typename T>
__device__ __forceinline__ T line_lse(const T* v, int n, int stride) {
  T mx = -inf_<T>();
  for (int k = 0; k < n; ++k) {
    const T e = v[k * stride];
    mx = (e > mx || e != e) ? e : mx;
  }
  if (mx == inf_<T>() || mx == -inf_<T>()) mx = T(0);
  T s = T(0);
  for (int k = 0; k < n; ++k) s += exp_(v[k * stride] - mx);
  return log_(s) + mx;
}

// Row stride of a matrix held in shared memory.
__host__ __device__ __forceinline__ int smem_ld(int n) { return n | 1; }

// Forward. x, out (B, n, n); row_pot, col_pot (B, iters, n). kSmem: the working matrix lives in
// shared memory (mpb * n * ld elements of dynamic shared memory), else in `out` itself.
template <typename T, bool kSmem>
__global__ void __launch_bounds__(kMaxThreads)
    sinkhorn_forward_kernel(const T* __restrict__ x, T* __restrict__ out, T* __restrict__ row_pot,
                            T* __restrict__ col_pot, int iters, int64_t B, int n, int mpb) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int slot = threadIdx.x / n;  // blockDim.x == mpb * n, so slot < mpb
  const int lane = threadIdx.x - slot * n;
  const int ld = kSmem ? smem_ld(n) : n;
  const int64_t nn = static_cast<int64_t>(n) * n;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * mpb; base < B;
       base += static_cast<int64_t>(gridDim.x) * mpb) {  // block-uniform condition
    const int64_t b = base + slot;
    const bool active = b < B;
    const int64_t bb = active ? b : 0;  // keeps the pointers below in range for idle slots
    const T* src = x + bb * nn;
    T* dst = out + bb * nn;
    T* w = kSmem ? smem + static_cast<size_t>(slot) * n * ld : dst;
    T* rp = row_pot + bb * iters * n;
    T* cp = col_pot + bb * iters * n;
    if (active) {
      for (int i = 0; i < n; ++i) w[i * ld + lane] = src[i * n + lane];  // coalesced per group
    }
    __syncthreads();
    for (int t = 0; t < iters; ++t) {
      if (active) {  // row step: this thread's row `lane`
        T* row = w + lane * ld;
        const T r = line_lse(row, n, 1);
        for (int k = 0; k < n; ++k) row[k] -= r;
        rp[static_cast<int64_t>(t) * n + lane] = r;
      }
      __syncthreads();
      if (active) {  // column step: this thread's column `lane`
        T* col = w + lane;
        const T c = line_lse(col, n, ld);
        for (int k = 0; k < n; ++k) col[k * ld] -= c;
        cp[static_cast<int64_t>(t) * n + lane] = c;
      }
      __syncthreads();
    }
    if (kSmem && active) {
      for (int i = 0; i < n; ++i) dst[i * n + lane] = w[i * ld + lane];
    }
    __syncthreads();  // the next grid-stride round overwrites the shared buffers
  }
}

// Backward: the exact gradient of the unrolled iterations. With R_t = r_0 + .. + r_t and
// C_t = c_0 + .. + c_t (per row i / column j),
//   y_t = x - R_t[i] - C_{t-1}[j]  (after the row step of iteration t),  z_t = y_t - c_t[j];
//   g = grad_out; for t = iters-1 .. 0:
//     gy_ij = g_ij - exp(z_t,ij) * sum_k g_kj;  g_ij = gy_ij - exp(y_t,ij) * sum_k gy_ik.
// R and C start as the totals and lose r_t, c_t as t walks down; no iterate is stored.
// Shared memory per slot: R (n), C (n), then g (n * ld) if kGSmem, then x (n * ld) if kXSmem.
// Without kGSmem, g lives in grad_x (global, stride n); without kXSmem, x is read from global.
template <typename T, bool kGSmem, bool kXSmem>
__global__ void __launch_bounds__(kMaxThreads)
    sinkhorn_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ x,
                             const T* __restrict__ row_pot, const T* __restrict__ col_pot,
                             T* __restrict__ grad_x, int iters, int64_t B, int n, int mpb) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int slot = threadIdx.x / n;
  const int lane = threadIdx.x - slot * n;
  const int lds = smem_ld(n);
  const int ldg = kGSmem ? lds : n;
  const int ldx = kXSmem ? lds : n;
  const size_t per_slot =
      static_cast<size_t>(2 * n) + (kGSmem ? static_cast<size_t>(n) * lds : 0) +
      (kXSmem ? static_cast<size_t>(n) * lds : 0);
  T* R = smem + slot * per_slot;
  T* C = R + n;
  T* gs = C + n;                                  // used when kGSmem
  T* xs = gs + (kGSmem ? static_cast<size_t>(n) * lds : 0);  // used when kXSmem
  const int64_t nn = static_cast<int64_t>(n) * n;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * mpb; base < B;
       base += static_cast<int64_t>(gridDim.x) * mpb) {  // block-uniform condition
    const int64_t b = base + slot;
    const bool active = b < B;
    const int64_t bb = active ? b : 0;
    const T* go = grad_out + bb * nn;
    const T* xg = x + bb * nn;
    T* gx = grad_x + bb * nn;
    const T* rp = row_pot + bb * iters * n;
    const T* cp = col_pot + bb * iters * n;
    T* g = kGSmem ? gs : gx;
    const T* xw = kXSmem ? xs : xg;
    if (active) {
      T rs = T(0), cs = T(0);  // totals, summed in the forward's order t = 0, 1, ..
      for (int t = 0; t < iters; ++t) {
        rs += rp[static_cast<int64_t>(t) * n + lane];
        cs += cp[static_cast<int64_t>(t) * n + lane];
      }
      R[lane] = rs;
      C[lane] = cs;
      for (int i = 0; i < n; ++i) {
        g[i * ldg + lane] = go[i * n + lane];
        if (kXSmem) xs[i * lds + lane] = xg[i * n + lane];
      }
    }
    __syncthreads();
    for (int t = iters - 1; t >= 0; --t) {
      if (active) {  // column-softmax backward, column j = lane; R = R_t, C = C_t
        const int j = lane;
        const T cj = C[j];
        T s = T(0);
        for (int k = 0; k < n; ++k) s += g[k * ldg + j];
        for (int k = 0; k < n; ++k) {
          const T z = xw[k * ldx + j] - R[k] - cj;
          g[k * ldg + j] -= exp_(z) * s;
        }
        C[j] = cj - cp[static_cast<int64_t>(t) * n + j];  // C_{t-1}
      }
      __syncthreads();
      if (active) {  // row-softmax backward, row i = lane; R = R_t, C = C_{t-1}
        const int i = lane;
        const T ri = R[i];
        T* gr = g + i * ldg;
        const T* xr = xw + i * ldx;
        T s = T(0);
        for (int k = 0; k < n; ++k) s += gr[k];
        for (int k = 0; k < n; ++k) {
          const T y = xr[k] - ri - C[k];
          gr[k] -= exp_(y) * s;
        }
        R[i] = ri - rp[static_cast<int64_t>(t) * n + i];  // R_{t-1}
      }
      __syncthreads();
    }
    if (kGSmem && active) {
      for (int i = 0; i < n; ++i) gx[i * n + lane] = gs[i * lds + lane];
    }
    __syncthreads();  // the next grid-stride round overwrites the shared buffers
  }
}

// Bytes of dynamic shared memory one matrix needs in each layout.
template <typename T>
inline size_t forward_slot_bytes(int n, bool smem) {
  return smem ? sizeof(T) * static_cast<size_t>(n) * smem_ld(n) : 0;
}
template <typename T>
inline size_t backward_slot_bytes(int n, bool g_smem, bool x_smem) {
  const size_t mat = static_cast<size_t>(n) * smem_ld(n);
  return sizeof(T) * (2 * static_cast<size_t>(n) + (g_smem ? mat : 0) + (x_smem ? mat : 0));
}

// Matrices per block: at most kMaxThreads / n threads' worth, and (beyond the first) what fits
// in min(kPackBytes, the device's opt-in limit).
inline int matrices_per_block(int n, size_t slot_bytes, size_t optin) {
  int mpb = kMaxThreads / n;
  if (slot_bytes > 0) {
    const size_t fit = (kPackBytes < optin ? kPackBytes : optin) / slot_bytes;
    if (fit < static_cast<size_t>(mpb)) mpb = static_cast<int>(fit);
  }
  return mpb < 1 ? 1 : mpb;
}

// The opt-in dynamic shared memory limit of the current device.
inline cudaError_t max_smem_optin(size_t* bytes) {
  int dev = 0, v = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return err;
  *bytes = static_cast<size_t>(v);
  return cudaSuccess;
}

template <typename Kernel, typename... Args>
inline cudaError_t launch_batched(Kernel kernel, int64_t B, int n, int mpb, size_t smem,
                                  cudaStream_t stream, Args... args) {
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int64_t blocks_needed = (B + mpb - 1) / mpb;
  constexpr int64_t kMaxBlocks = int64_t(1) << 30;  // the grid stride covers the rest
  const unsigned grid = static_cast<unsigned>(blocks_needed < kMaxBlocks ? blocks_needed : kMaxBlocks);
  kernel<<<grid, static_cast<unsigned>(mpb * n), smem, stream>>>(args..., B, n, mpb);
  return cudaGetLastError();
}

// Validates the sizes and reads the device's opt-in shared-memory limit into *optin.
inline cudaError_t check_and_query(int n, int iters, size_t* optin) {
  if (n < 1 || n > kMaxN || iters < 0) return cudaErrorInvalidValue;
  return max_smem_optin(optin);
}

}  // namespace sinkhorn

// x (B, n, n) -> out (B, n, n), row_pot, col_pot (B, iters, n); all contiguous, 1 <= n <= 128,
// iters >= 1. Returns the first CUDA error, if any.
template <typename T>
inline cudaError_t launch_sinkhorn_log(const T* x, T* out, T* row_pot, T* col_pot, int64_t B,
                                       int n, int iters, cudaStream_t stream) {
  using namespace sinkhorn;
  if (B == 0) return cudaSuccess;
  size_t optin = 0;
  const cudaError_t err = check_and_query(n, iters, &optin);
  if (err != cudaSuccess) return err;
  const size_t slot = forward_slot_bytes<T>(n, true);
  if (slot <= optin) {
    const int mpb = matrices_per_block(n, slot, optin);
    return launch_batched(sinkhorn_forward_kernel<T, true>, B, n, mpb, slot * mpb, stream, x, out,
                          row_pot, col_pot, iters);
  }
  const int mpb = matrices_per_block(n, 0, optin);
  return launch_batched(sinkhorn_forward_kernel<T, false>, B, n, mpb, 0, stream, x, out, row_pot,
                        col_pot, iters);
}

// grad_out, x (B, n, n), row_pot, col_pot (B, iters, n) -> grad_x (B, n, n); all contiguous.
template <typename T>
inline cudaError_t launch_sinkhorn_log_backward(const T* grad_out, const T* x, const T* row_pot,
                                                const T* col_pot, T* grad_x, int64_t B, int n,
                                                int iters, cudaStream_t stream) {
  using namespace sinkhorn;
  if (B == 0) return cudaSuccess;
  size_t optin = 0;
  const cudaError_t err = check_and_query(n, iters, &optin);
  if (err != cudaSuccess) return err;
  size_t slot = backward_slot_bytes<T>(n, true, true);
  if (slot <= optin) {
    const int mpb = matrices_per_block(n, slot, optin);
    return launch_batched(sinkhorn_backward_kernel<T, true, true>, B, n, mpb, slot * mpb, stream,
                          grad_out, x, row_pot, col_pot, grad_x, iters);
  }
  slot = backward_slot_bytes<T>(n, true, false);
  if (slot <= optin) {
    const int mpb = matrices_per_block(n, slot, optin);
    return launch_batched(sinkhorn_backward_kernel<T, true, false>, B, n, mpb, slot * mpb, stream,
                          grad_out, x, row_pot, col_pot, grad_x, iters);
  }
  slot = backward_slot_bytes<T>(n, false, false);
  const int mpb = matrices_per_block(n, slot, optin);
  return launch_batched(sinkhorn_backward_kernel<T, false, false>, B, n, mpb, slot * mpb, stream,
                        grad_out, x, row_pot, col_pot, grad_x, iters);
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate both launch templates (and so every kernel) for each dtype.
#define MEDCL_SINKHORN_INSTANTIATE(T)                                                           \
  template cudaError_t medcl::cuda::launch_sinkhorn_log<T>(const T*, T*, T*, T*, int64_t, int,  \
                                                           int, cudaStream_t);                  \
  template cudaError_t medcl::cuda::launch_sinkhorn_log_backward<T>(                            \
      const T*, const T*, const T*, const T*, T*, int64_t, int, int, cudaStream_t);
MEDCL_SINKHORN_INSTANTIATE(float)
MEDCL_SINKHORN_INSTANTIATE(double)
#endif
