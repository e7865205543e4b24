// CUDA kernels of medcl::contrastive_lse and its backward — raw pointers, sizes and a stream; no
// torch headers, so `make cuda-check` compiles them with nvcc alone. Glue: contrastive_lse.cu.
// The op is defined in csrc/ops/contrastive_lse.cpp; the per-element math is ops/contrastive_lse_math.h.
//
// One row-wise kernel family. A CTA owns kBM = 64 rows of X (MX, D) and walks the kBN = 64-row
// tiles of Y (NY, D) of its split, computing S_tile (64, 64) = scale * X_tile Y_tile^T on tensor
// cores (WMMA, fp32 accumulation; half/bf16 m16n16k16, float32 as TF32 m16n16k8) into shared
// memory, then
//   stats mode: a per-row online log-sum-exp over kept entries, and the diag value;
//   grad mode:  dS_tile (64, 64) kept in float, dX (64, W) += dS_tile Y_tile[:, slice] on TF32
//               tensor cores (m16n16k8, Y staged as float: half and bf16 convert to TF32
//               exactly) with the accumulator in registers; blockIdx.y picks the W-column slice.
// kTrans = false: X = a (M, D), Y = b (N, D).  kTrans = true: X = b, Y = a (the column pass).
// Forward: stats(a, b) -> row_lse, diag; stats transposed(b, a) -> col_lse.
// Backward: grad(a, b) -> da; grad transposed(b, a) -> db.  Needs sm_80+ (bf16 and TF32 WMMA).
//
// Split over Y (gridDim.z): when ceil(MX / 64) x slices CTAs would leave SMs idle, the column
// tiles are cut into `splits` fixed contiguous ranges, one per blockIdx.z. Each split writes its
// partial result to a float workspace the caller allocates (contrastive_lse[_backward]_workspace_floats):
//   stats: (max, sum) of each row, (2, splits, MX); lse_combine_kernel merges them in split order;
//   grad:  scale * acc of its dX rows, (splits, MX, D) (every element of [0, MX) x [0, D)
//          written, zeros included); split_sum_kernel sums them in split order and casts to T.
// Fixed boundaries and summation order, no atomics: deterministic. diag has one writer (the
// split holding the positive column). With splits == 1 the kernel writes lse_out / dx directly.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <atomic>
#include <cstdint>

#include "ops/contrastive_lse_math.h"

namespace medcl {
namespace cuda {
namespace contrastive {

namespace wmma = nvcuda::wmma;

constexpr int kBM = 64;         // rows of X per CTA (= rows of Y per column tile)
constexpr int kBN = 64;         // rows of Y per column tile
constexpr int kKC = 64;         // D chunk staged in shared memory for the S GEMM
constexpr int kWarps = 8;       // warp w: S rows 16 (w / 2) .. +16, S columns 32 (w % 2) .. +32
constexpr int kThreads = 32 * kWarps;
constexpr int kMaxSlice = 512;  // dX columns one CTA keeps in registers (16 fragments per warp)
constexpr int kMaxD = 1024;
constexpr int kGK = 8;          // k extent of one TF32 mma (the grad-mode dS Y product)

// Input type -> WMMA precision of the S GEMM, k extent of one mma, conversions.
template <typename T> struct Mma;
template <> struct Mma<__half> {
  using Prec = __half;
  static constexpr int kK = 16;
  static constexpr bool kTf32 = false;
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
};
template <> struct Mma<__nv_bfloat16> {
  using Prec = __nv_bfloat16;
  static constexpr int kK = 16;
  static constexpr bool kTf32 = false;
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
};
template <> struct Mma<float> {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using Prec = wmma::precision::tf32;
#else
  using Prec = float;  // mma.h has no TF32 below sm_80; the kernels trap there (see rows_kernel)
#endif
  static constexpr int kK = 8;
  static constexpr bool kTf32 = true;
  static __device__ __forceinline__ float from_float(float v) { return v; }
  static __device__ __forceinline__ float to_float(float v) { return v; }
};
// The grad-mode dS Y product runs in TF32 for every T (its operands are float in shared memory).
static_assert(Mma<float>::kK == kGK, "TF32 mma k extent");

// Dynamic shared memory layout (byte offsets, each 128-aligned). Leading dimensions are padded
// by 16 bytes: WMMA needs ldm * sizeof(elem) % 16 == 0 and 32-byte aligned fragment pointers.
//   xs (64, kLdK) T: X chunk [row][k]      ys (64, kLdK) T: Y chunk [row][k] (S GEMM)
//   ss (64, kLdS) float: S tile [r][c]     ps (64, kLdP) float: dS tile [r][c] (grad mode only)
//   yg (64, kLdG) float: Y chunk [row][k] of the dS Y product (grad mode); it overlays xs and ys,
//      which are dead between the S tile's store to ss and the next tile's first staging
//   column stats of the tile (64 each): pos int64, lse, g, g_diag float, keep uint8
// half/bf16: stats 37,248 bytes, grad 54,656; float: stats 53,632, grad 71,040 (opted in with
// cudaFuncSetAttribute).
template <typename T, bool kGrad> struct Smem {
  static constexpr int kPad = 16 / static_cast<int>(sizeof(T));
  static constexpr int kLdK = kKC + kPad;
  static constexpr int kLdS = kBN + 4;
  static constexpr int kLdP = kBN + 4;   // float
  static constexpr int kLdG = kKC + 4;   // float; the dS Y chunk is at most kKC columns wide
  static constexpr size_t up(size_t n) { return (n + 127) / 128 * 128; }
  static constexpr size_t kX = 0;
  static constexpr size_t kY = kX + up(sizeof(T) * kBM * kLdK);
  static constexpr size_t kS = kY + up(sizeof(T) * kBN * kLdK);
  static constexpr size_t kG = kX;       // yg overlays xs (and ys)
  static constexpr size_t kP = kS + up(sizeof(float) * kBM * kLdS);
  static constexpr size_t kPos = kP + (kGrad ? up(sizeof(float) * kBM * kLdP) : 0);
  static constexpr size_t kLse = kPos + up(sizeof(int64_t) * kBN);
  static constexpr size_t kGr = kLse + up(sizeof(float) * kBN);
  static constexpr size_t kGd = kGr + up(sizeof(float) * kBN);
  static constexpr size_t kKeep = kGd + up(sizeof(float) * kBN);
  static constexpr size_t kBytes = kKeep + up(kBN);
  static_assert(sizeof(float) * kBN * kLdG <= kS - kG, "yg must fit in the space of xs and ys");
};
static_assert(Smem<float, true>::kBytes <= 160 * 1024, "shared memory must fit sm_80");
static_assert(Smem<__half, true>::kBytes <= 160 * 1024, "shared memory must fit sm_80");
static_assert(Smem<__nv_bfloat16, true>::kBytes <= 160 * 1024, "shared memory must fit sm_80");
static_assert(Smem<__half, true>::kBytes == 54656 && Smem<float, true>::kBytes == 71040 &&
                  Smem<__half, false>::kBytes == 37248 && Smem<float, false>::kBytes == 53632,
              "update the layout comment above");
static_assert(kBM * (kBN + 4) >= kWarps * 16 * 16,
              "ss doubles as the per-warp 16x16 fp32 scratch of the dX write-out");

// One pass over X (MX, D) against Y (NY, D). n_pos = N (rows of b) in both orientations.
template <typename T>
struct PassArgs {
  const T* x;                // (MX, D)
  const T* y;                // (NY, D)
  const bool* keep_x;        // (MX,)
  const bool* keep_y;        // (NY,)
  int64_t MX, NY, D, n_pos, offset;
  float scale;
  bool exclude_self;
  bool vec;                  // 16-byte loads allowed: D % (16 / sizeof(T)) == 0, x and y aligned
  // stats mode
  float* lse_out;            // (MX,)
  float* diag_out;           // (MX,), not transposed only
  // grad mode: lse_x, g_x (MX,), lse_y, g_y (NY,), g_diag (M,) indexed by the a-index
  const float *lse_x, *lse_y, *g_x, *g_y, *g_diag;
  T* dx;                     // (MX, D)
  // gridDim.z > 1: the splits' partials (stats (2, splits, MX); grad (splits, MX, D)) go here
  float* ws;
};

// Rows row0 .. row0 + 63 and columns k0 .. k0 + kCols - 1 of src (nrows, D) into dst [64][ld];
// rows >= nrows and columns >= D are zero-filled. dst's element type S is T, or float (converted
// from T while staging).
template <typename T, int kCols, int ld, typename S>
__device__ __forceinline__ void stage_rows(S* dst, const T* __restrict__ src, int64_t row0,
                                           int64_t nrows, int64_t D, int64_t k0, bool vec) {
  if (vec) {
    constexpr int V = 16 / static_cast<int>(sizeof(T));  // whole vectors are in or out of range
    static_assert(kCols % V == 0 && V % 4 == 0, "vector staging");
    for (int e = threadIdx.x; e < kBM * kCols / V; e += kThreads) {
      const int i = e / (kCols / V), kk = (e % (kCols / V)) * V;
      const int64_t row = row0 + i, k = k0 + kk;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (row < nrows && k < D) v = *reinterpret_cast<const uint4*>(src + row * D + k);
      if constexpr (sizeof(S) == sizeof(T)) {
        *reinterpret_cast<uint4*>(dst + i * ld + kk) = v;
      } else {
        static_assert(sizeof(S) == sizeof(float), "S is T or float");
        const T* t = reinterpret_cast<const T*>(&v);
        float* d = dst + i * ld + kk;  // 16-byte aligned: ld * 4 and kk * 4 are multiples of 16
#pragma unroll
        for (int u = 0; u < V; u += 4) {
          *reinterpret_cast<float4*>(d + u) =
              make_float4(Mma<T>::to_float(t[u]), Mma<T>::to_float(t[u + 1]),
                          Mma<T>::to_float(t[u + 2]), Mma<T>::to_float(t[u + 3]));
        }
      }
    }
  } else {
    for (int e = threadIdx.x; e < kBM * kCols; e += kThreads) {
      const int i = e / kCols, kk = e % kCols;
      const int64_t row = row0 + i, k = k0 + kk;
      if constexpr (sizeof(S) == sizeof(T)) {
        dst[i * ld + kk] = (row < nrows && k < D) ? src[row * D + k] : Mma<T>::from_float(0.f);
      } else {
        dst[i * ld + kk] = (row < nrows && k < D) ? Mma<T>::to_float(src[row * D + k]) : 0.f;
      }
    }
  }
}

template <typename T, typename Frag>
__device__ __forceinline__ void load_frag(Frag& f, const T* ptr, int ld) {
  wmma::load_matrix_sync(f, ptr, ld);
  if constexpr (Mma<T>::kTf32) {
#pragma unroll
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
  }
}

// dX columns per CTA: kSlice in grad mode (32 .. 512); stats mode has no dX (placeholder 32).
template <bool kGrad, int kSlice> struct SliceWidth { static constexpr int value = kGrad ? kSlice : 32; };

// The grad pass's slice for D: the smallest register slice that holds D (D <= 512), else 512.
inline int grad_slice(int64_t D) {
  return D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : D <= 256 ? 256 : kMaxSlice;
}

// grid (ceil(MX / 64), grad ? ceil(D / W) : 1, splits), kThreads threads, Smem<T, kGrad>::kBytes
// dynamic smem. Grad mode may use up to 255 registers (the dX accumulator); stats mode is held to
// 85 so that three CTAs fit an SM.
template <typename T, bool kGrad, bool kTrans, int kSlice>
__global__ void __launch_bounds__(kThreads, kGrad ? 1 : 3) rows_kernel(const PassArgs<T> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 / TF32 WMMA need sm_80; the glue refuses older devices
#else
  using L = Smem<T, kGrad>;
  using Prec = typename Mma<T>::Prec;
  constexpr int kK = Mma<T>::kK;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, kK, Prec, wmma::row_major>;
  using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, kK, Prec, wmma::col_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, kK, float>;
  // grad mode, dS Y on TF32 for every T
  using GPrec = typename Mma<float>::Prec;
  using FragGA = wmma::fragment<wmma::matrix_a, 16, 16, kGK, GPrec, wmma::row_major>;
  using FragGB = wmma::fragment<wmma::matrix_b, 16, 16, kGK, GPrec, wmma::row_major>;
  using FragGC = wmma::fragment<wmma::accumulator, 16, 16, kGK, float>;

  extern __shared__ __align__(128) unsigned char smem[];
  T* xs = reinterpret_cast<T*>(smem + L::kX);
  T* ys = reinterpret_cast<T*>(smem + L::kY);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  float* ps = reinterpret_cast<float*>(smem + L::kP);  // grad mode only
  float* yg = reinterpret_cast<float*>(smem + L::kG);  // grad mode only; overlays xs, ys
  int64_t* col_pos = reinterpret_cast<int64_t*>(smem + L::kPos);
  float* col_lse = reinterpret_cast<float*>(smem + L::kLse);
  float* col_g = reinterpret_cast<float*>(smem + L::kGr);
  float* col_gd = reinterpret_cast<float*>(smem + L::kGd);
  unsigned char* col_keep = smem + L::kKeep;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wr = warp >> 1;  // 16-row block of the tile this warp computes (S and dX)
  const int wc = warp & 1;   // S: columns 32 wc .. +32; dX: half wc of each chunk
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kBM;

  // This split's column tiles: [t_lo, t_hi) of the ceil(NY / 64), fixed boundaries.
  int64_t c0 = 0;       // first Y row of the current tile
  int n_my_tiles = 0;   // tiles this split walks (>= 1: splits <= tiles)
  {
    const int64_t n_tiles = (p.NY + kBN - 1) / kBN;
    const int64_t t_lo = static_cast<int64_t>(blockIdx.z) * n_tiles / gridDim.z;
    const int64_t t_hi = (static_cast<int64_t>(blockIdx.z) + 1) * n_tiles / gridDim.z;
    c0 = t_lo * kBN;
    n_my_tiles = static_cast<int>(t_hi - t_lo);
  }

  // Elementwise phase: this thread owns tile row ei, columns esub + 4 t (t = 0 .. 15).
  const int ei = tid >> 2, esub = tid & 3;
  const int64_t r = r0 + ei;  // index into X's rows
  const bool row_ok = r < p.MX;
  const bool keep_r = row_ok && p.keep_x[r];
  const int64_t pos_r = (!kTrans && row_ok) ? positive_column(r, p.offset, p.n_pos) : -1;
  float lse_r = 0.f, g_r = 0.f, gd_r = 0.f;
  if constexpr (kGrad) {
    if (row_ok) {
      lse_r = p.lse_x[r];
      g_r = p.g_x[r];
      if constexpr (!kTrans) gd_r = p.g_diag[r];
    }
  }
  Lse<float> run = lse_empty<float>();  // stats mode: this thread's share of row r

  // Grad mode: dX[r0 .. +64, slice0 .. +W) in registers. The slice is walked in chunks of kCW
  // columns; in each chunk warp (wr, wc) owns rows 16 wr .. +16, columns wc kCW/2 .. +kCW/2.
  constexpr int kW = SliceWidth<kGrad, kSlice>::value;
  constexpr int kCW = kW < kKC ? kW : kKC;
  constexpr int kNQ = kW / kCW;    // chunks per slice
  constexpr int kFPC = kCW / 32;   // 16x16 fragments per warp per chunk (1 or 2)
  constexpr int kNF = kNQ * kFPC;  // = W / 32 fragments per warp (<= 16: 128 fp32 registers)
  static_assert(kW % 32 == 0 && kW <= kMaxSlice, "slice must be 32 .. 512, a multiple of 32");
  const int64_t slice0 = static_cast<int64_t>(blockIdx.y) * kW;
  FragGC acc[kNF];
  if constexpr (kGrad) {
#pragma unroll
    for (int f = 0; f < kNF; ++f) wmma::fill_fragment(acc[f], 0.f);
  }

  for (int tile = 0; tile < n_my_tiles; ++tile, c0 += kBN) {
    // ---- S tile (64, 64) = scale * X[r0 .. +64] Y[c0 .. +64]^T, D streamed in kKC chunks ----
    FragC sacc[2];
    wmma::fill_fragment(sacc[0], 0.f);
    wmma::fill_fragment(sacc[1], 0.f);
    for (int64_t k0 = 0; k0 < p.D; k0 += kKC) {
      __syncthreads();  // all readers of xs, ys, yg, ps and the column stats are done
      if (k0 == 0 && tid < kBN) {
        const int64_t c = c0 + tid;
        const bool ok = c < p.NY;
        col_keep[tid] = ok && p.keep_y[c];
        if constexpr (kTrans) col_pos[tid] = ok ? positive_column(c, p.offset, p.n_pos) : -1;
        if constexpr (kGrad) {
          col_lse[tid] = ok ? p.lse_y[c] : 0.f;
          col_g[tid] = ok ? p.g_y[c] : 0.f;
          if constexpr (kTrans) col_gd[tid] = ok ? p.g_diag[c] : 0.f;
        }
      }
      stage_rows<T, kKC, L::kLdK>(xs, p.x, r0, p.MX, p.D, k0, p.vec);
      stage_rows<T, kKC, L::kLdK>(ys, p.y, c0, p.NY, p.D, k0, p.vec);
      __syncthreads();
      const int64_t left = p.D - k0;
      const int steps = static_cast<int>(((left < kKC ? left : kKC) + kK - 1) / kK);
      for (int s = 0; s < steps; ++s) {
        FragA fa;
        load_frag<T>(fa, xs + wr * 16 * L::kLdK + s * kK, L::kLdK);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          FragBt fb;  // col_major (k, n) at ys[n][k]: Y^T
          load_frag<T>(fb, ys + (wc * 32 + j * 16) * L::kLdK + s * kK, L::kLdK);
          wmma::mma_sync(sacc[j], fa, fb, sacc[j]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int e = 0; e < sacc[j].num_elements; ++e) sacc[j].x[e] *= p.scale;
      wmma::store_matrix_sync(ss + wr * 16 * L::kLdS + wc * 32 + j * 16, sacc[j], L::kLdS,
                              wmma::mem_row_major);
    }
    __syncthreads();  // ss complete; every warp is done reading xs and ys of this tile

    // ---- elementwise: row statistics, or dS (float) into ps ----
#pragma unroll 4
    for (int t = 0; t < kBN / 4; ++t) {
      const int j = esub + 4 * t;
      const int64_t c = c0 + j;  // index into Y's rows
      const float s = ss[ei * L::kLdS + j];
      const bool kept = keep_r && col_keep[j] && !(p.exclude_self && r == c);
      // positive entry: not transposed c == (r + offset) mod N; transposed r == (c + offset) mod N
      const bool positive = kTrans ? (row_ok && col_pos[j] == r) : (c == pos_r);
      if constexpr (!kGrad) {
        if (kept) run = lse_merge(run, Lse<float>{s, 1.f});
        if (!kTrans && positive) p.diag_out[r] = s;  // whatever the masks; one writer per row
      } else {
        float ds = kept ? softmax_grad(s, lse_r, col_lse[j], g_r, col_g[j]) : 0.f;
        if (positive) ds += kTrans ? col_gd[j] : gd_r;
        ps[ei * L::kLdP + j] = ds;  // 0 outside M x N: padded rows add 0
      }
    }

    // ---- grad: dX[:, slice] += dS_tile (64, 64) Y[c0 .. +64, slice] (64, W), TF32 ----
    if constexpr (kGrad) {
#pragma unroll
      for (int q = 0; q < kNQ; ++q) {
        const int64_t k0 = slice0 + static_cast<int64_t>(q) * kCW;
        if (k0 < p.D) {     // CTA-uniform
          __syncthreads();  // ps complete; the previous readers of yg (xs, ys) are done
          stage_rows<T, kCW, L::kLdG>(yg, p.y, c0, p.NY, p.D, k0, p.vec);
          __syncthreads();
#pragma unroll 2
          for (int kk = 0; kk < kBN / kGK; ++kk) {
            FragGA fa;  // dS rows 16 wr .. +16, columns kk kGK .. +kGK
            load_frag<float>(fa, ps + wr * 16 * L::kLdP + kk * kGK, L::kLdP);
#pragma unroll
            for (int jj = 0; jj < kFPC; ++jj) {
              FragGB fb;  // Y rows kk kGK .. +kGK, chunk columns wc kCW/2 + 16 jj .. +16
              load_frag<float>(fb, yg + kk * kGK * L::kLdG + wc * (kCW / 2) + jj * 16, L::kLdG);
              wmma::mma_sync(acc[q * kFPC + jj], fa, fb, acc[q * kFPC + jj]);
            }
          }
        }
      }
    }
  }

  if constexpr (!kGrad) {
    // Merge the four partial log-sum-exps of each row (lanes 4 ei' .. +4 of this warp).
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      const Lse<float> other{__shfl_xor_sync(0xffffffffu, run.m, o),
                             __shfl_xor_sync(0xffffffffu, run.s, o)};
      run = lse_merge(run, other);
    }
    if (esub == 0 && row_ok) {
      if (gridDim.z == 1) {
        p.lse_out[r] = lse_value(run);  // -inf where nothing is kept
      } else {                          // (max, sum) of this split; m = -inf, s = 0 when empty
        p.ws[static_cast<int64_t>(blockIdx.z) * p.MX + r] = run.m;
        p.ws[static_cast<int64_t>(gridDim.z + blockIdx.z) * p.MX + r] = run.s;
      }
    }
  } else {
    // dX = scale * acc, through a per-warp 16x16 fp32 scratch in ss; rows < MX, columns < D.
    __syncthreads();  // everyone is done with ss
    float* scratch = ss + warp * 256;
    const bool direct = gridDim.z == 1;
    float* part = direct ? nullptr : p.ws + static_cast<int64_t>(blockIdx.z) * p.MX * p.D;
#pragma unroll
    for (int q = 0; q < kNQ; ++q) {
#pragma unroll
      for (int jj = 0; jj < kFPC; ++jj) {
        const int64_t k0 = slice0 + static_cast<int64_t>(q) * kCW + wc * (kCW / 2) + jj * 16;
        if (k0 < p.D) {  // warp-uniform
          wmma::store_matrix_sync(scratch, acc[q * kFPC + jj], 16, wmma::mem_row_major);
          __syncwarp();
          for (int e = lane; e < 256; e += 32) {
            const int64_t row = r0 + wr * 16 + e / 16, k = k0 + e % 16;
            if (row < p.MX && k < p.D) {
              const float v = p.scale * scratch[e];
              if (direct) p.dx[row * p.D + k] = Mma<T>::from_float(v);
              else part[row * p.D + k] = v;
            }
          }
          __syncwarp();
        }
      }
    }
  }
#endif
}

constexpr int kFinishThreads = 256;

// Stats mode, splits > 1: lse_out[r] = the split partials (ws: m (splits, MX), s (splits, MX))
// merged in split order; -inf where nothing is kept.
__global__ void __launch_bounds__(kFinishThreads) lse_combine_kernel(const float* __restrict__ ws,
                                                                     int64_t MX, int splits,
                                                                     float* __restrict__ lse_out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kFinishThreads;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kFinishThreads + threadIdx.x; r < MX; r += stride) {
    Lse<float> run = lse_empty<float>();
    for (int z = 0; z < splits; ++z) {
      run = lse_merge(run, Lse<float>{ws[z * MX + r], ws[(splits + z) * MX + r]});
    }
    lse_out[r] = lse_value(run);
  }
}

// Grad mode, splits > 1: dx[i] = sum over z (in order) of ws[z][i], i < n = MX * D, cast to T.
template <typename T>
__global__ void __launch_bounds__(kFinishThreads) split_sum_kernel(const float* __restrict__ ws,
                                                                   int64_t n, int splits,
                                                                   T* __restrict__ dx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kFinishThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kFinishThreads + threadIdx.x; i < n; i += stride) {
    float v = ws[i];
    for (int z = 1; z < splits; ++z) v += ws[z * n + i];
    dx[i] = Mma<T>::from_float(v);
  }
}

inline unsigned finish_blocks(int64_t n) {
  const int64_t b = (n + kFinishThreads - 1) / kFinishThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 8192 ? 8192 : b));
}

// Multiprocessors of `device`, read once per device and cached; 0 when the query fails.
inline int multiprocessors(int device) {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached];  // zero-initialised: 0 = not read yet
  if (device >= 0 && device < kCached) {
    const int n = cache[device].load(std::memory_order_relaxed);
    if (n > 0) return n;
  }
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: no split is a valid fallback
    return 0;
  }
  if (device >= 0 && device < kCached) cache[device].store(n, std::memory_order_relaxed);
  return n;
}

// CTAs of one pass without splitting.
inline int64_t pass_ctas(bool grad, int64_t MX, int64_t D) {
  const int64_t gx = (MX + kBM - 1) / kBM;
  const int64_t W = grad_slice(D);
  return gx * (grad ? (D + W - 1) / W : 1);
}

// Splits of Y's column tiles for one pass: ctas * splits ~ 2 x SMs, at most ceil(NY / 64),
// 1 when the grid is already large enough (or sms is unknown).
inline int64_t pass_splits(bool grad, int64_t MX, int64_t NY, int64_t D, int sms) {
  const int64_t ctas = pass_ctas(grad, MX, D);
  const int64_t tiles = (NY + kBN - 1) / kBN;
  const int64_t target = 2 * static_cast<int64_t>(sms);
  int64_t s = ctas > 0 ? (target + ctas / 2) / ctas : 1;  // nearest
  if (s > tiles) s = tiles;
  if (s > 65535) s = 65535;
  return s < 1 ? 1 : s;
}

// Workspace floats of one pass with `splits` (0 when splits == 1).
inline int64_t split_floats(bool grad, int64_t MX, int64_t D, int64_t splits) {
  return splits > 1 ? splits * MX * (grad ? D : 2) : 0;
}

template <typename T, bool kGrad, bool kTrans, int kSlice>
inline cudaError_t launch_rows(PassArgs<T> p, float* ws, int64_t ws_floats, int sms,
                               cudaStream_t stream) {
  constexpr int kW = SliceWidth<kGrad, kSlice>::value;
  const auto kernel = rows_kernel<T, kGrad, kTrans, kSlice>;
  constexpr int smem = static_cast<int>(Smem<T, kGrad>::kBytes);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const int64_t gx = (p.MX + kBM - 1) / kBM;
  const int64_t gy = kGrad ? (p.D + kW - 1) / kW : 1;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidConfiguration;
  int64_t splits = pass_splits(kGrad, p.MX, p.NY, p.D, sms);
  const int64_t per_split = p.MX * (kGrad ? p.D : 2);
  if (ws == nullptr || ws_floats < 0) ws_floats = 0;
  if (split_floats(kGrad, p.MX, p.D, splits) > ws_floats) splits = ws_floats / per_split;  // fit
  if (splits < 2) splits = 1;
  p.ws = splits > 1 ? ws : nullptr;
  kernel<<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(splits)),
           kThreads, smem, stream>>>(p);
  err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  const int nz = static_cast<int>(splits);
  if constexpr (kGrad) {
    const int64_t n = p.MX * p.D;
    split_sum_kernel<T><<<finish_blocks(n), kFinishThreads, 0, stream>>>(ws, n, nz, p.dx);
  } else {
    lse_combine_kernel<<<finish_blocks(p.MX), kFinishThreads, 0, stream>>>(ws, p.MX, nz, p.lse_out);
  }
  return cudaGetLastError();
}

// Grad pass: slice width grad_slice(D).
template <typename T, bool kTrans>
inline cudaError_t launch_grad_rows(const PassArgs<T>& p, float* ws, int64_t ws_floats, int sms,
                                    cudaStream_t stream) {
  switch (grad_slice(p.D)) {
    case 32: return launch_rows<T, true, kTrans, 32>(p, ws, ws_floats, sms, stream);
    case 64: return launch_rows<T, true, kTrans, 64>(p, ws, ws_floats, sms, stream);
    case 128: return launch_rows<T, true, kTrans, 128>(p, ws, ws_floats, sms, stream);
    case 256: return launch_rows<T, true, kTrans, 256>(p, ws, ws_floats, sms, stream);
    default: return launch_rows<T, true, kTrans, kMaxSlice>(p, ws, ws_floats, sms, stream);
  }
}

template <typename T>
inline PassArgs<T> pass_args(const T* x, const T* y, const bool* keep_x, const bool* keep_y,
                             int64_t MX, int64_t NY, int64_t D, int64_t N, int64_t offset,
                             float scale, bool exclude_self) {
  PassArgs<T> p{};
  p.x = x, p.y = y, p.keep_x = keep_x, p.keep_y = keep_y;
  p.MX = MX, p.NY = NY, p.D = D, p.n_pos = N, p.offset = offset;
  p.scale = scale, p.exclude_self = exclude_self;
  constexpr int64_t V = 16 / static_cast<int64_t>(sizeof(T));
  p.vec = D % V == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
          reinterpret_cast<uintptr_t>(y) % 16 == 0;
  return p;
}

// Workspace floats of the two passes (row, then column) on `device`; one buffer serves both
// (they run one after the other on one stream).
inline int64_t workspace_floats(bool grad, int64_t M, int64_t N, int64_t D, int device) {
  const int sms = multiprocessors(device);
  const int64_t rows = split_floats(grad, M, D, pass_splits(grad, M, N, D, sms));
  const int64_t cols = split_floats(grad, N, D, pass_splits(grad, N, M, D, sms));
  return rows > cols ? rows : cols;
}

inline int current_multiprocessors() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return multiprocessors(dev);
}

}  // namespace contrastive

// Float workspace (in floats) launch_contrastive_lse wants for (M, N, D) on `device`, so that
// small grids can split their column tiles over more CTAs; 0 when no pass splits. At most
// ~2 x SMs x 64 x 2 floats.
inline int64_t contrastive_lse_workspace_floats(int64_t M, int64_t N, int64_t D, int device) {
  return contrastive::workspace_floats(false, M, N, D, device);
}

// The same for launch_contrastive_lse_backward: at most ~2 x SMs x 64 x min(D, 512) floats
// (rounding aside), whatever M and N.
inline int64_t contrastive_lse_backward_workspace_floats(int64_t M, int64_t N, int64_t D, int device) {
  return contrastive::workspace_floats(true, M, N, D, device);
}

// Forward: a (M, D), b (N, D), keep_a (M,), keep_b (N,) -> row_lse (M), col_lse (N), diag (M).
// 1 <= D <= 1024. Two passes (rows, then columns) on `stream`, each followed by a combine kernel
// when it splits; returns the first launch error. workspace: ws_floats floats on the device
// (contrastive_lse_workspace_floats; fewer, even 0 with nullptr, just means fewer splits).
template <typename T>
inline cudaError_t launch_contrastive_lse(const T* a, const T* b, const bool* keep_a,
                                          const bool* keep_b, int64_t M, int64_t N, int64_t D,
                                          float scale, int64_t offset, bool exclude_self,
                                          float* row_lse, float* col_lse, float* diag,
                                          float* workspace, int64_t ws_floats,
                                          cudaStream_t stream) {
  namespace k = contrastive;
  if (M < 1 || N < 1 || D < 1 || D > k::kMaxD) return cudaErrorInvalidValue;
  const int sms = k::current_multiprocessors();
  auto rows = k::pass_args(a, b, keep_a, keep_b, M, N, D, N, offset, scale, exclude_self);
  rows.lse_out = row_lse, rows.diag_out = diag;
  cudaError_t err = k::launch_rows<T, false, false, 0>(rows, workspace, ws_floats, sms, stream);
  if (err != cudaSuccess) return err;
  auto cols = k::pass_args(b, a, keep_b, keep_a, N, M, D, N, offset, scale, exclude_self);
  cols.lse_out = col_lse;
  return k::launch_rows<T, false, true, 0>(cols, workspace, ws_floats, sms, stream);
}

// Backward: the forward's inputs, row_lse, g_row, g_diag (M,), col_lse, g_col (N,)
// -> da (M, D), db (N, D). Two passes (da, then db) on `stream`, each followed by a reduce kernel
// when it splits. workspace as above (contrastive_lse_backward_workspace_floats).
template <typename T>
inline cudaError_t launch_contrastive_lse_backward(
    const T* a, const T* b, const bool* keep_a, const bool* keep_b, int64_t M, int64_t N,
    int64_t D, float scale, int64_t offset, bool exclude_self, const float* row_lse,
    const float* col_lse, const float* g_row, const float* g_col, const float* g_diag, T* da,
    T* db, float* workspace, int64_t ws_floats, cudaStream_t stream) {
  namespace k = contrastive;
  if (M < 1 || N < 1 || D < 1 || D > k::kMaxD) return cudaErrorInvalidValue;
  const int sms = k::current_multiprocessors();
  auto rows = k::pass_args(a, b, keep_a, keep_b, M, N, D, N, offset, scale, exclude_self);
  rows.lse_x = row_lse, rows.g_x = g_row, rows.lse_y = col_lse, rows.g_y = g_col;
  rows.g_diag = g_diag, rows.dx = da;
  cudaError_t err = k::launch_grad_rows<T, false>(rows, workspace, ws_floats, sms, stream);
  if (err != cudaSuccess) return err;
  auto cols = k::pass_args(b, a, keep_b, keep_a, N, M, D, N, offset, scale, exclude_self);
  cols.lse_x = col_lse, cols.g_x = g_col, cols.lse_y = row_lse, cols.g_y = g_row;  // roles swap
  cols.g_diag = g_diag, cols.dx = db;
  return k::launch_grad_rows<T, true>(cols, workspace, ws_floats, sms, stream);
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate both launch templates (and so every kernel) for each input type.
#define MEDCL_CONTRASTIVE_INSTANTIATE(T)                                                         \
  template cudaError_t medcl::cuda::launch_contrastive_lse<T>(                                   \
      const T*, const T*, const bool*, const bool*, int64_t, int64_t, int64_t, float, int64_t,   \
      bool, float*, float*, float*, float*, int64_t, cudaStream_t);                              \
  template cudaError_t medcl::cuda::launch_contrastive_lse_backward<T>(                          \
      const T*, const T*, const bool*, const bool*, int64_t, int64_t, int64_t, float, int64_t,   \
      bool, const float*, const float*, const float*, const float*, const float*, T*, T*,        \
      float*, int64_t, cudaStream_t);
MEDCL_CONTRASTIVE_INSTANTIATE(__half)
MEDCL_CONTRASTIVE_INSTANTIATE(__nv_bfloat16)
MEDCL_CONTRASTIVE_INSTANTIATE(float)
#endif
