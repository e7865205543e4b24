// CUDA kernels of medcl::sinkhorn_log and medcl::sinkhorn_log_backward — raw pointers, sizes
// and a stream; no torch headers, so `make cuda-check` compiles them with nvcc alone.
// Glue: sinkhorn_log.cu. The op is defined in csrc/ops/sinkhorn_log.cpp.
//
// Two layouts; both run the whole iteration loop, forward or backward, in one launch and walk
// the batch with a grid stride (64-bit matrix indices). Every phase ends with a __syncthreads that
// all threads of the block reach, also those whose matrix index is past B (they skip the work,
// never the barriers, nor the warp shuffles of the grouped kernels).
//
// Line kernels (n <= 16, and the fallback of larger n when the grouped layout does not fit the
// device's shared memory). A group of n threads owns one (n, n) matrix; thread `lane` of the
// group owns row `lane` in the row steps and column `lane` in the column steps (each a sequential
// log-sum-exp / sum over n <= 128 entries). A block packs mpb = min(256 / n, what fits in
// kPackBytes of shared memory) matrices (at least 1), so blockDim = mpb * n <= 256.
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
//
// Grouped kernels (17 <= n <= 128, whenever their all-in-shared-memory layout fits). Each line
// (row or column) belongs to a group of kG = 4 adjacent lanes of one warp: group `line` of a
// matrix owns row `line` in the row steps and column `line` in the column steps, 4 n threads per
// matrix. Lane s of the group holds its entries of the line in registers between the passes:
//   row step:    columns 4 m + s                       (m < Q),
//   column step: rows 8 (m / 2) + 2 s + m % 2          (m < 2 ceil(Q / 2)),
// for the size class Q (n <= 4 Q, Q in 5, 8, 9, 12, 16, 20, 25, 32; register arrays are sized by
// Q, absent entries are -inf or 0). A line's log-sum-exp: each lane takes the max of its entries,
// the group combines the maxima with two __shfl_xor_sync, then each lane sums exp(v - max) and
// the group combines the sums the same way (two passes over registers, one read and one write of
// shared memory per entry and step). Row stride LD = 4 Q (Q odd) or 4 Q + 4 (Q even), a
// compile-time constant that is 4 mod 8: a warp (8 lines x 4 lanes) then touches 32 different
// banks in both steps (4-byte elements; 8-byte ones take the two wavefronts they need in row
// steps, a 2-way conflict in column steps; a warp that straddles two matrices of a block has a
// few conflicts in column steps). A block packs mpb matrices: at most 512 / (4 n), what
// fits in kPackBytes (at least 1), and at most B / (2 SMs) so that small batches spread over the
// SMs; blockDim is 4 n mpb rounded up to a multiple of 32 (the padding threads only shuffle and
// reach the barriers). Shared memory per matrix:
//   forward:  n * LD * sizeof(T)                  (the working matrix)
//   backward: (2 n + 2 n * LD) * sizeof(T)        (R, C, g and x; mpb g's, then mpb x's, R's, C's)
// Float exponentials in the grouped kernels are ex2.approx.ftz(v * log2 e) (one MUFU op, relative
// error ~1e-7 for the arguments that matter, subnormal results flushed to 0); double uses exp().
//
// Examples, n = 128: line layout float32 forward 66,048 B, backward 133,120 B (x and g); float64
// forward 132,096 B, backward 134,144 B (g only; x from global). Grouped layout (LD = 132):
// float32 forward 67,584 B, backward 136,192 B; float64 forward 135,168 B, backward 272,384 B
// (does not fit: float64 n = 128 backward runs the line kernel with x from global). On sm_80
// (163 KB) and sm_90 (227 KB) every float32 case runs grouped; 99 KB parts (sm_86/89) fall back
// to the line kernels for the largest n.
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

// ---- Grouped kernels (layout in the file comment) -------------------------------------------

constexpr int kG = 4;                // lanes per line
constexpr int kGroupedMinN = 17;     // smaller n: the line kernels
constexpr int kGroupThreads = 512;   // most threads per block of a grouped kernel

// Blocks of kGroupThreads per SM the register budget is sized for (__launch_bounds__): float
// kernels at most 64 registers (40 for the forward of Q <= 9; up to 128 for the backward of
// Q = 32, whose 136 KB of shared memory allow one block per SM anyway), float64 up to 128.
// Fewer registers spill: the entries of a line stay in registers between the passes.
constexpr int grouped_min_blocks(size_t bytes, bool forward, int Q) {
  return bytes == 8 ? 1 : forward ? (Q <= 9 ? 3 : 2) : (Q == 32 ? 1 : 2);
}

// Row stride of size class Q: >= 4 Q and 4 mod 8.
__host__ __device__ constexpr int grouped_ld_of(int Q) { return (Q & 1) ? 4 * Q : 4 * Q + 4; }
// Size class of n (n <= 4 Q), 17 <= n <= 128.
inline int grouped_class(int n) {
  return n <= 20 ? 5 : n <= 32 ? 8 : n <= 36 ? 9 : n <= 48 ? 12 : n <= 64 ? 16 : n <= 80 ? 20
       : n <= 100 ? 25 : 32;
}

// e^v: float by ex2.approx.ftz of v * log2(e) (one MUFU op; results below 2^-126 flush to 0,
// +-inf and NaN map as exp does); double by exp().
__device__ __forceinline__ float exp_fast(float v) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(v * 1.4426950408889634f));
  return y;
}
__device__ __forceinline__ double exp_fast(double v) { return ::exp(v); }
__device__ __forceinline__ float max_(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_(double a, double b) { return fmax(a, b); }

// Max and sum over the kG = 4 lanes of a group (xor 1, 2 stay inside aligned groups of 4). All
// 32 lanes of the warp execute them: blockDim is a multiple of 32 and no call sits in a branch.
// The result is bitwise the same in the 4 lanes (fmax and + are commutative).
template <typename T>
__device__ __forceinline__ T group_max(T v) {
  v = max_(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return max_(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
template <typename T>
__device__ __forceinline__ T group_sum(T v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// line_lse of a line spread over a group: v holds this lane's entries, -inf where absent. Same
// semantics as line_lse: the max (fmax ignores NaN) is replaced by 0 when infinite, so an all
// -inf line gives log(0) + 0 = -inf, a +inf entry gives log(inf) + 0 = +inf, and a NaN entry
// makes its exp, so the sum and the result, NaN. Two accumulators per pass for ILP.
template <typename T, int L>
__device__ __forceinline__ T group_lse(const T (&v)[L]) {
  T m0 = -inf_<T>(), m1 = -inf_<T>();
#pragma unroll
  for (int m = 0; m < L; ++m) {
    if (m & 1) m1 = max_(m1, v[m]);
    else m0 = max_(m0, v[m]);
  }
  const T mx = group_max(max_(m0, m1));
  const T sh = (mx == inf_<T>() || mx == -inf_<T>()) ? T(0) : mx;
  T s0 = T(0), s1 = T(0);
#pragma unroll
  for (int m = 0; m < L; ++m) {
    if (m & 1) s1 += exp_fast(v[m] - sh);
    else s0 += exp_fast(v[m] - sh);
  }
  return log_(group_sum(s0 + s1)) + sh;
}

// Column-step entry m of lane s: row 2 s + col_off(m), col_off(m) = 8 (m / 2) + m % 2.
__host__ __device__ constexpr int col_off(int m) { return 8 * (m >> 1) + (m & 1); }

// Forward, grouped. x, out (B, n, n); row_pot, col_pot (B, iters, n); shared memory
// mpb * n * LD elements. Entry m of a row step exists iff kG m < n - s (column kG m + s), of a
// column step iff col_off(m) < n - 2 s (row 2 s + col_off(m)); inactive lanes see none.
template <typename T, int Q>
__global__ void __launch_bounds__(kGroupThreads, grouped_min_blocks(sizeof(T), true, Q))
    sinkhorn_forward_grouped_kernel(const T* __restrict__ x, T* __restrict__ out,
                                    T* __restrict__ row_pot, T* __restrict__ col_pot, int iters,
                                    int64_t B, int n, int mpb) {
  constexpr int LD = grouped_ld_of(Q);
  constexpr int LR = Q;                  // entries per lane, row step
  constexpr int LC = 2 * ((Q + 1) / 2);  // entries per lane, column step
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tpm = kG * n;                      // threads per matrix, a multiple of kG
  const int tslot = threadIdx.x / tpm;
  const bool in_block = tslot < mpb;           // else a padding thread (fewer than 32)
  const int slot = in_block ? tslot : 0;
  const int within = threadIdx.x - tslot * tpm;
  const int line = within / kG;                // < n
  const int s = within % kG;                   // == lane % kG
  const int ci = within / n, cc = within - ci * n;  // copies: rows ci, ci + kG, ..; column cc
  const int64_t nn = static_cast<int64_t>(n) * n;
  T* const w = smem + static_cast<size_t>(slot) * n * LD;
  T* const wr = w + line * LD + s;             // row step, entry m: wr[kG * m]
  T* const wc = w + 2 * s * LD + line;         // column step, entry m: wc[col_off(m) * LD]
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * mpb; base < B;
       base += static_cast<int64_t>(gridDim.x) * mpb) {  // block-uniform condition
    const int64_t b = base + slot;
    const bool active = in_block && b < B;
    const int64_t bb = active ? b : 0;  // keeps the pointers below in range for idle lanes
    const T* src = x + bb * nn;
    T* dst = out + bb * nn;
    T* rp = row_pot + bb * iters * n + line;
    T* cp = col_pot + bb * iters * n + line;
    if (active) {
      for (int i = ci; i < n; i += kG) w[i * LD + cc] = src[static_cast<int64_t>(i) * n + cc];
    }
    __syncthreads();
    const int nr = active ? n - s : 0;
    const int nc = active ? n - 2 * s : 0;
    for (int t = 0; t < iters; ++t) {
      {  // row step: row `line`
        T v[LR];
#pragma unroll
        for (int m = 0; m < LR; ++m) v[m] = kG * m < nr ? wr[kG * m] : -inf_<T>();
        const T r = group_lse(v);
#pragma unroll
        for (int m = 0; m < LR; ++m) {
          if (kG * m < nr) wr[kG * m] = v[m] - r;
        }
        if (active && s == 0) rp[static_cast<int64_t>(t) * n] = r;
      }
      __syncthreads();
      {  // column step: column `line`
        T v[LC];
#pragma unroll
        for (int m = 0; m < LC; ++m) v[m] = col_off(m) < nc ? wc[col_off(m) * LD] : -inf_<T>();
        const T c = group_lse(v);
#pragma unroll
        for (int m = 0; m < LC; ++m) {
          if (col_off(m) < nc) wc[col_off(m) * LD] = v[m] - c;
        }
        if (active && s == 0) cp[static_cast<int64_t>(t) * n] = c;
      }
      __syncthreads();
    }
    if (active) {
      for (int i = ci; i < n; i += kG) dst[static_cast<int64_t>(i) * n + cc] = w[i * LD + cc];
    }
    __syncthreads();  // the next grid-stride round overwrites the shared buffers
  }
}

// Backward, grouped: the line kernel's recurrence (see sinkhorn_backward_kernel). Shared memory:
// mpb g's (n * LD each), mpb x's, mpb R's (n), mpb C's (n). Each group keeps its own R[line] and
// C[line] in registers (Rl, Cl) and publishes them for the other groups; a step reads only the
// other vector (column steps R, row steps C), so no step reads what it writes.
template <typename T, int Q>
__global__ void __launch_bounds__(kGroupThreads, grouped_min_blocks(sizeof(T), false, Q))
    sinkhorn_backward_grouped_kernel(const T* __restrict__ grad_out, const T* __restrict__ x,
                                     const T* __restrict__ row_pot, const T* __restrict__ col_pot,
                                     T* __restrict__ grad_x, int iters, int64_t B, int n, int mpb) {
  constexpr int LD = grouped_ld_of(Q);
  constexpr int LR = Q;
  constexpr int LC = 2 * ((Q + 1) / 2);
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tpm = kG * n;
  const int tslot = threadIdx.x / tpm;
  const bool in_block = tslot < mpb;
  const int slot = in_block ? tslot : 0;
  const int within = threadIdx.x - tslot * tpm;
  const int line = within / kG;
  const int s = within % kG;
  const int ci = within / n, cc = within - ci * n;
  const int64_t nn = static_cast<int64_t>(n) * n;
  const size_t mat = static_cast<size_t>(n) * LD;
  T* const g = smem + slot * mat;
  T* const xs = smem + (mpb + slot) * mat;
  T* const R = smem + 2 * mpb * mat + static_cast<size_t>(slot) * n;
  T* const C = R + static_cast<size_t>(mpb) * n;
  T* const gr = g + line * LD + s;             // row step, entry m: [kG * m] (column kG m + s)
  const T* const xr = xs + line * LD + s;
  const T* const Cr = C + s;
  T* const gc = g + 2 * s * LD + line;         // column step, entry m: [col_off(m) * LD]
  const T* const xc = xs + 2 * s * LD + line;  //   (row 2 s + col_off(m))
  const T* const Rc = R + 2 * s;               //   R of that row: Rc[col_off(m)]
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * mpb; base < B;
       base += static_cast<int64_t>(gridDim.x) * mpb) {  // block-uniform condition
    const int64_t b = base + slot;
    const bool active = in_block && b < B;
    const int64_t bb = active ? b : 0;
    const T* go = grad_out + bb * nn;
    const T* xg = x + bb * nn;
    T* gx = grad_x + bb * nn;
    const T* rp = row_pot + bb * iters * n + line;
    const T* cp = col_pot + bb * iters * n + line;
    T Rl = T(0), Cl = T(0);  // R[line], C[line]: totals, summed in the forward's order t = 0, 1, ..
    if (active) {
      for (int t = 0; t < iters; ++t) {
        Rl += rp[static_cast<int64_t>(t) * n];
        Cl += cp[static_cast<int64_t>(t) * n];
      }
      if (s == 0) {
        R[line] = Rl;
        C[line] = Cl;
      }
      for (int i = ci; i < n; i += kG) {
        g[i * LD + cc] = go[static_cast<int64_t>(i) * n + cc];
        xs[i * LD + cc] = xg[static_cast<int64_t>(i) * n + cc];
      }
    }
    __syncthreads();
    const int nr = active ? n - s : 0;
    const int nc = active ? n - 2 * s : 0;
    for (int t = iters - 1; t >= 0; --t) {
      {  // column-softmax backward, column `line`; R = R_t, C = C_t
        const T cpt = active ? cp[static_cast<int64_t>(t) * n] : T(0);
        T gv[LC];
        T s0 = T(0), s1 = T(0);
#pragma unroll
        for (int m = 0; m < LC; ++m) {
          gv[m] = col_off(m) < nc ? gc[col_off(m) * LD] : T(0);
          if (m & 1) s1 += gv[m];
          else s0 += gv[m];
        }
        const T sum = group_sum(s0 + s1);
#pragma unroll
        for (int m = 0; m < LC; ++m) {
          if (col_off(m) < nc) {
            const T z = xc[col_off(m) * LD] - Rc[col_off(m)] - Cl;
            gc[col_off(m) * LD] = gv[m] - exp_fast(z) * sum;
          }
        }
        Cl -= cpt;  // C_{t-1}
        if (active && s == 0) C[line] = Cl;
      }
      __syncthreads();
      {  // row-softmax backward, row `line`; R = R_t, C = C_{t-1}
        const T rpt = active ? rp[static_cast<int64_t>(t) * n] : T(0);
        T gv[LR];
        T s0 = T(0), s1 = T(0);
#pragma unroll
        for (int m = 0; m < LR; ++m) {
          gv[m] = kG * m < nr ? gr[kG * m] : T(0);
          if (m & 1) s1 += gv[m];
          else s0 += gv[m];
        }
        const T sum = group_sum(s0 + s1);
#pragma unroll
        for (int m = 0; m < LR; ++m) {
          if (kG * m < nr) {
            const T y = xr[kG * m] - Rl - Cr[kG * m];
            gr[kG * m] = gv[m] - exp_fast(y) * sum;
          }
        }
        Rl -= rpt;  // R_{t-1}
        if (active && s == 0) R[line] = Rl;
      }
      __syncthreads();
    }
    if (active) {
      for (int i = ci; i < n; i += kG) gx[static_cast<int64_t>(i) * n + cc] = g[i * LD + cc];
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

// Grouped layout: bytes of dynamic shared memory per matrix, matrices per block, launch.
template <typename T>
inline size_t grouped_forward_slot_bytes(int n) {
  return sizeof(T) * static_cast<size_t>(n) * grouped_ld_of(grouped_class(n));
}
template <typename T>
inline size_t grouped_backward_slot_bytes(int n) {
  return sizeof(T) * (2 * static_cast<size_t>(n) +
                      2 * static_cast<size_t>(n) * grouped_ld_of(grouped_class(n)));
}

// At most kGroupThreads / (kG n) matrices, what fits in min(kPackBytes, optin) (slot_bytes <=
// optin), and B / (2 SMs): a batch of a few hundred matrices still fills every SM.
inline int grouped_matrices_per_block(int64_t B, int n, size_t slot_bytes, size_t optin) {
  int mpb = kGroupThreads / (kG * n);
  const size_t fit = (kPackBytes < optin ? kPackBytes : optin) / slot_bytes;
  if (fit < static_cast<size_t>(mpb)) mpb = static_cast<int>(fit);
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && sms > 0) {
    const int64_t spread = B / (2 * static_cast<int64_t>(sms));
    if (spread < mpb) mpb = static_cast<int>(spread);
  }
  return mpb < 1 ? 1 : mpb;
}

template <typename Kernel, typename... Args>
inline cudaError_t launch_grouped(Kernel kernel, int64_t B, int n, int mpb, size_t smem,
                                  cudaStream_t stream, Args... args) {
  // Shared memory limits the blocks per SM (the backward's above all): prefer the largest
  // carveout. Only a hint: a refusal is cleared, not reported.
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                           static_cast<int>(cudaSharedmemCarveoutMaxShared)) != cudaSuccess) {
    (void)cudaGetLastError();
  }
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int threads = (mpb * kG * n + 31) / 32 * 32;  // <= kGroupThreads
  const int64_t blocks_needed = (B + mpb - 1) / mpb;
  constexpr int64_t kMaxBlocks = int64_t(1) << 30;  // the grid stride covers the rest
  const unsigned grid = static_cast<unsigned>(blocks_needed < kMaxBlocks ? blocks_needed : kMaxBlocks);
  kernel<<<grid, static_cast<unsigned>(threads), smem, stream>>>(args..., B, n, mpb);
  return cudaGetLastError();
}

template <typename T>
using ForwardKernel = void (*)(const T*, T*, T*, T*, int, int64_t, int, int);
template <typename T>
using BackwardKernel = void (*)(const T*, const T*, const T*, const T*, T*, int, int64_t, int, int);

template <typename T>
inline ForwardKernel<T> forward_grouped_kernel(int q) {
  switch (q) {
    case 5: return sinkhorn_forward_grouped_kernel<T, 5>;
    case 8: return sinkhorn_forward_grouped_kernel<T, 8>;
    case 9: return sinkhorn_forward_grouped_kernel<T, 9>;
    case 12: return sinkhorn_forward_grouped_kernel<T, 12>;
    case 16: return sinkhorn_forward_grouped_kernel<T, 16>;
    case 20: return sinkhorn_forward_grouped_kernel<T, 20>;
    case 25: return sinkhorn_forward_grouped_kernel<T, 25>;
    default: return sinkhorn_forward_grouped_kernel<T, 32>;
  }
}
template <typename T>
inline BackwardKernel<T> backward_grouped_kernel(int q) {
  switch (q) {
    case 5: return sinkhorn_backward_grouped_kernel<T, 5>;
    case 8: return sinkhorn_backward_grouped_kernel<T, 8>;
    case 9: return sinkhorn_backward_grouped_kernel<T, 9>;
    case 12: return sinkhorn_backward_grouped_kernel<T, 12>;
    case 16: return sinkhorn_backward_grouped_kernel<T, 16>;
    case 20: return sinkhorn_backward_grouped_kernel<T, 20>;
    case 25: return sinkhorn_backward_grouped_kernel<T, 25>;
    default: return sinkhorn_backward_grouped_kernel<T, 32>;
  }
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
  if (n >= kGroupedMinN) {
    const size_t gslot = grouped_forward_slot_bytes<T>(n);
    if (gslot <= optin) {
      const int mpb = grouped_matrices_per_block(B, n, gslot, optin);
      return launch_grouped(forward_grouped_kernel<T>(grouped_class(n)), B, n, mpb, gslot * mpb,
                            stream, x, out, row_pot, col_pot, iters);
    }
  }
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
  if (n >= kGroupedMinN) {
    const size_t gslot = grouped_backward_slot_bytes<T>(n);
    if (gslot <= optin) {
      const int mpb = grouped_matrices_per_block(B, n, gslot, optin);
      return launch_grouped(backward_grouped_kernel<T>(grouped_class(n)), B, n, mpb, gslot * mpb,
                            stream, grad_out, x, row_pot, col_pot, grad_x, iters);
    }
  }
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
