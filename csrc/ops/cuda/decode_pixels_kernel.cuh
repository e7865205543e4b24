// CUDA kernels of medcl::decode_pixels — raw pointers, sizes and a stream; no torch headers, so
// `make cuda-check` compiles them with nvcc alone. Glue: decode_pixels.cu.
//
// Launch order on one stream (launch_decode_pixels):
//   1. check      one thread per image: descriptor, byte range and RLE header (check_image of
//                 decode_pixels_math.h, as on the CPU); segment ranges; clears the scratch.
//   2. rle        one block per (image, segment): the segment's compressed bytes are staged in
//                 shared memory kStage at a time; thread 0 walks the run headers of the stage
//                 into a shared run table (output start, source, literal or replicate) with the
//                 CPU's checks in the CPU's order; then all threads expand the table's runs, each
//                 output byte finding its run by binary search. A run never crosses a row (PS3.5
//                 G.3.1; corrupt otherwise), so a run's bytes are one stretch of an output row.
//                 The bytes land in the image's own output slots: byte plane s of pixel (r, c)
//                 is byte (nseg-1-s) of the uint32 at the start of out[b, r, c] (segment 0 also
//                 zeroes the bytes above), so RLE needs no scratch planes; the pixel kernel then
//                 reads each slot and overwrites it in the same thread.
//   3. status     one thread per image: the first failing segment names the image's status.
//   4. minmax     MINMAX images: per-image min/max stored value (blocks over rows, threads along
//                 them; block reduction, then 64-bit atomicMin/atomicMax).
//   5. pixels     blocks over output rows, a thread per element: stored value (native bytes or
//                 the RLE slot) → intensity_value (intensity_math.h, in double as on the CPU) →
//                 out; zeros in the padding and for failed images.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "ops/decode_pixels_math.h"

namespace medcl {
namespace cuda {

constexpr int kDpThreads = 256;
constexpr int kDpStage = 4096;  // compressed bytes staged per step (a run needs at most 129)
constexpr int kDpRuns = 1024;   // run table entries per step

// Per-image scratch (device memory, B entries each; the glue allocates it).
struct DecodeScratch {
  int64_t* seg_begin;   // (B, kMaxRleSegments) absolute data offsets
  int64_t* seg_end;     // (B, kMaxRleSegments)
  int32_t* seg_status;  // (B, kMaxRleSegments)
  long long* smin;      // (B,) MINMAX: smallest stored value
  long long* smax;      // (B,) MINMAX: largest stored value
};

struct DecodeArgs {
  const uint8_t* data;
  int64_t n_data;
  const int64_t* offsets;   // (B+1,)
  const int64_t* desc;      // (B, 7)
  const double* params;     // (B, 4)
  const int32_t* function;  // (B,)
  const bool* invert;       // (B,)
  int64_t B, H, W;
  int32_t* status;          // (B,)
};

// The uint32 slot at the start of output element e (float: the element; double: its low half).
template <typename Out>
__device__ __forceinline__ uint32_t* slot(Out* out, int64_t e) {
  return reinterpret_cast<uint32_t*>(out + e);
}

// --- 1. checks -----------------------------------------------------------------------------------
__global__ void dp_check_kernel(DecodeArgs a, DecodeScratch s) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (b >= a.B) return;
  const PixelDesc d = load_desc(a.desc + 7 * b);
  a.status[b] = check_image(d, a.function[b], a.H, a.W, a.data, a.n_data, a.offsets[b], a.offsets[b + 1],
                            s.seg_begin + kMaxRleSegments * b, s.seg_end + kMaxRleSegments * b);
  for (int k = 0; k < kMaxRleSegments; ++k) s.seg_status[kMaxRleSegments * b + k] = kDecodeOk;
  s.smin[b] = LLONG_MAX;
  s.smax[b] = LLONG_MIN;
}

// --- 2. RLE segments -------------------------------------------------------------------------------
template <typename Out>
__global__ void __launch_bounds__(kDpThreads) dp_rle_kernel(DecodeArgs a, DecodeScratch s, Out* out) {
  const int64_t b = blockIdx.x / kMaxRleSegments;
  const int seg = static_cast<int>(blockIdx.x % kMaxRleSegments);
  if (b >= a.B || a.status[b] != kDecodeOk) return;
  const PixelDesc d = load_desc(a.desc + 7 * b);
  const int nseg = static_cast<int>(d.bits_allocated / 8);
  if (d.encoding != kRle || seg >= nseg) return;

  __shared__ uint8_t stage[kDpStage];
  __shared__ int32_t run_out[kDpRuns + 1];  // output start of each run, relative to this step's
  __shared__ int64_t run_dst[kDpRuns];      // output element of each run's first byte (r * W + c)
  __shared__ uint16_t run_src[kDpRuns];     // stage position of its byte(s); bit 15: literal
  __shared__ int s_runs, s_advance, s_err;
  __shared__ int64_t s_out, s_col, s_row;

  const int64_t cols = d.cols, N = d.rows * d.cols;
  const int64_t seg_end = s.seg_end[kMaxRleSegments * b + seg];
  int64_t pos = s.seg_begin[kMaxRleSegments * b + seg];
  int64_t done = 0, col = 0, row = 0;  // output bytes so far; the next run's column and row
  Out* img = out + b * a.H * a.W;
  const int shift_bytes = nseg - 1 - seg;  // byte of the uint32 slot this plane fills

  while (true) {
    const int64_t avail = seg_end - pos;
    const int stage_len = avail < kDpStage ? static_cast<int>(avail) : kDpStage;
    for (int i = threadIdx.x; i < stage_len; i += blockDim.x) stage[i] = a.data[pos + i];
    __syncthreads();
    if (threadIdx.x == 0) {
      // Walk: the CPU's checks in its order (cpu/decode_pixels.cpp: walk_rle_segment). A run
      // not wholly in the stage ends the step, or the segment when the stage is its end.
      const bool at_end = stage_len == avail;
      int p = 0, n = 0, err = kDecodeOk;
      int64_t o = done, c = col, r = row;
      while (o < N && n < kDpRuns) {
        if (p >= stage_len) {
          if (at_end) err = kRleShort;
          break;
        }
        const uint32_t h = stage[p];
        if (h == 128) {
          ++p;
          continue;
        }
        const bool lit = h < 128;
        const int L = lit ? static_cast<int>(h) + 1 : 257 - static_cast<int>(h);
        if (c + L > cols) {
          err = kRleOverflow;
          break;
        }
        const int need = lit ? L : 1;
        if (p + 1 + need > stage_len) {
          if (at_end) err = kRlePastEnd;
          break;
        }
        run_out[n] = static_cast<int32_t>(o - done);
        run_dst[n] = r * a.W + c;
        run_src[n] = static_cast<uint16_t>((p + 1) | (lit ? 0x8000 : 0));
        ++n;
        p += 1 + need;
        o += L;
        c += L;
        if (c == cols) c = 0, ++r;
      }
      if (n == 0 && p == 0 && err == kDecodeOk) err = kRleShort;  // no progress: unreachable, never hang
      run_out[n] = static_cast<int32_t>(o - done);
      s_runs = n, s_advance = p, s_err = err, s_out = o, s_col = c, s_row = r;
    }
    __syncthreads();
    // Expand: output byte j of this step belongs to the last run starting at or before it.
    const int n = s_runs;
    const int total = n > 0 ? run_out[n] : 0;
    for (int j = threadIdx.x; j < total; j += blockDim.x) {
      int lo = 0, hi = n - 1;
      while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (run_out[mid] <= j) lo = mid; else hi = mid - 1;
      }
      const uint32_t src = run_src[lo];
      const int within = j - run_out[lo];
      const uint8_t v = stage[(src & 0x7fff) + ((src & 0x8000) ? within : 0)];
      uint8_t* bytes = reinterpret_cast<uint8_t*>(slot(img, run_dst[lo] + within));
      if (seg == 0) {  // the top plane also clears the bytes above it
        if (nseg == 1) *reinterpret_cast<uint32_t*>(bytes) = v;
        else if (nseg == 2) bytes[1] = v, *reinterpret_cast<uint16_t*>(bytes + 2) = 0;
        else bytes[3] = v;
      } else {
        bytes[shift_bytes] = v;
      }
    }
    const int err = s_err, advance = s_advance;
    const int64_t next_out = s_out, next_col = s_col, next_row = s_row;
    __syncthreads();  // the stage and the table are read; the next step may overwrite them
    if (err != kDecodeOk) {
      if (threadIdx.x == 0) s.seg_status[kMaxRleSegments * b + seg] = err;
      return;
    }
    pos += advance;
    done = next_out, col = next_col, row = next_row;
    if (done >= N) return;
  }
}

// --- 3. the first failing segment names the status ------------------------------------------------
__global__ void dp_status_kernel(DecodeArgs a, DecodeScratch s) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (b >= a.B || a.status[b] != kDecodeOk) return;
  for (int k = 0; k < kMaxRleSegments; ++k) {
    const int32_t st = s.seg_status[kMaxRleSegments * b + k];
    if (st != kDecodeOk) {
      a.status[b] = st;
      return;
    }
  }
}

// --- stored values ---------------------------------------------------------------------------------
// Pixel (r, c) of image b: native bytes from data, or the RLE slot in the output.
template <typename Out>
__device__ __forceinline__ int64_t dp_stored(const DecodeArgs& a, const PixelDesc& d, const StoredBits& bits,
                                             const Out* img, int64_t r, int64_t c, int64_t begin) {
  uint32_t raw = 0;
  const int nb = static_cast<int>(d.bits_allocated / 8);
  if (d.encoding == kRle) {
    raw = *slot(const_cast<Out*>(img), r * a.W + c);
  } else {
    const uint8_t* p = a.data + begin + (r * d.cols + c) * nb;
    if (d.encoding == kNativeBE) {
      for (int k = 0; k < nb; ++k) raw = raw << 8 | p[k];
    } else {
      for (int k = nb - 1; k >= 0; --k) raw = raw << 8 | p[k];
    }
  }
  return stored_value(raw, bits);
}

// --- 4. MINMAX: per-image min/max stored value ------------------------------------------------------
template <typename Out>
__global__ void __launch_bounds__(kDpThreads) dp_minmax_kernel(DecodeArgs a, DecodeScratch s, const Out* out,
                                                               int64_t image0) {
  const int64_t b = image0 + blockIdx.y;
  if (a.status[b] != kDecodeOk || a.function[b] != kVoiMinMax) return;
  const PixelDesc d = load_desc(a.desc + 7 * b);
  const StoredBits bits = stored_bits(d);
  const Out* img = out + b * a.H * a.W;
  const int64_t begin = a.offsets[b];
  long long lo = LLONG_MAX, hi = LLONG_MIN;
  for (int64_t r = blockIdx.x; r < d.rows; r += gridDim.x) {
    for (int64_t c = threadIdx.x; c < d.cols; c += blockDim.x) {
      const long long v = dp_stored(a, d, bits, img, r, c, begin);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const long long ol = __shfl_down_sync(0xffffffffu, lo, off), oh = __shfl_down_sync(0xffffffffu, hi, off);
    lo = ol < lo ? ol : lo;
    hi = oh > hi ? oh : hi;
  }
  __shared__ long long w_lo[kDpThreads / 32], w_hi[kDpThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) w_lo[warp] = lo, w_hi[warp] = hi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) {
      lo = w_lo[w] < lo ? w_lo[w] : lo;
      hi = w_hi[w] > hi ? w_hi[w] : hi;
    }
    atomicMin(s.smin + b, lo);
    atomicMax(s.smax + b, hi);
  }
}

// --- 5. output elements -------------------------------------------------------------------------------
template <typename Out>
__global__ void __launch_bounds__(kDpThreads) dp_pixel_kernel(DecodeArgs a, DecodeScratch s, Out* out,
                                                              int64_t image0) {
  const int64_t b = image0 + blockIdx.y;
  Out* img = out + b * a.H * a.W;
  const bool ok = a.status[b] == kDecodeOk;
  const PixelDesc d = load_desc(a.desc + 7 * b);
  const int64_t begin = a.offsets[b];
  StoredBits bits{0, 0, 0};
  double slope = 0, intercept = 0, center = 0, width = 1;
  int32_t fn = kVoiNone;
  bool inv = false;
  if (ok) {
    bits = stored_bits(d);
    const double* p = a.params + 4 * b;
    slope = p[0], intercept = p[1], center = p[2], width = p[3];
    fn = a.function[b];
    inv = a.invert[b];
    if (fn == kVoiMinMax) {
      minmax_window(static_cast<double>(s.smin[b]), static_cast<double>(s.smax[b]), slope, intercept, &center, &width);
      fn = kVoiLinearExact;
    }
  }
  for (int64_t r = blockIdx.x; r < a.H; r += gridDim.x) {  // a block per row, threads along it
    for (int64_t c = threadIdx.x; c < a.W; c += blockDim.x) {
      Out y = Out(0);
      if (ok && r < d.rows && c < d.cols) {
        const double v = static_cast<double>(dp_stored(a, d, bits, img, r, c, begin));
        y = static_cast<Out>(intensity_value<double>(v, slope, intercept, center, width, fn, inv));
      }
      img[r * a.W + c] = y;  // the RLE slot was read above by this same thread
    }
  }
}

// Launches every step on `stream` (scratch: B entries of each DecodeScratch array); returns the
// first launch error, if any.
template <typename Out>
inline cudaError_t launch_decode_pixels(const DecodeArgs& a, const DecodeScratch& s, Out* out, cudaStream_t stream) {
  if (a.B == 0) return cudaSuccess;
  cudaError_t err;
  const unsigned per_image_blocks = static_cast<unsigned>((a.B + kDpThreads - 1) / kDpThreads);
  dp_check_kernel<<<per_image_blocks, kDpThreads, 0, stream>>>(a, s);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  // One block per (image, segment); the grid's x dimension allows 2^31 - 1 blocks.
  dp_rle_kernel<Out><<<static_cast<unsigned>(a.B * kMaxRleSegments), kDpThreads, 0, stream>>>(a, s, out);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  dp_status_kernel<<<per_image_blocks, kDpThreads, 0, stream>>>(a, s);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  if (a.H * a.W == 0) return cudaSuccess;
  const unsigned gx = static_cast<unsigned>(a.H < 1024 ? a.H : 1024);  // blocks over rows
  constexpr int64_t kMaxGridY = 65535;
  for (int64_t b0 = 0; b0 < a.B; b0 += kMaxGridY) {
    const unsigned gy = static_cast<unsigned>(a.B - b0 < kMaxGridY ? a.B - b0 : kMaxGridY);
    dp_minmax_kernel<Out><<<dim3(gx, gy), kDpThreads, 0, stream>>>(a, s, out, b0);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  for (int64_t b0 = 0; b0 < a.B; b0 += kMaxGridY) {
    const unsigned gy = static_cast<unsigned>(a.B - b0 < kMaxGridY ? a.B - b0 : kMaxGridY);
    dp_pixel_kernel<Out><<<dim3(gx, gy), kDpThreads, 0, stream>>>(a, s, out, b0);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace medcl

#ifdef MEDCL_CUDA_CHECK
// make cuda-check: instantiate every kernel so nvcc compiles each for the target archs.
template cudaError_t medcl::cuda::launch_decode_pixels<float>(const medcl::cuda::DecodeArgs&,
                                                              const medcl::cuda::DecodeScratch&, float*, cudaStream_t);
template cudaError_t medcl::cuda::launch_decode_pixels<double>(const medcl::cuda::DecodeArgs&,
                                                               const medcl::cuda::DecodeScratch&, double*, cudaStream_t);
#endif
