// CUDA kernels of medcl::decode_pixels — raw pointers, sizes and a stream; no torch headers, so
// `make cuda-check` compiles them with nvcc alone. Glue: decode_pixels.cu.
//
// Launch order on one stream (launch_decode_pixels):
//   1. check      one thread per image: descriptor, byte range and RLE header (check_image of
//                 decode_pixels_math.h, as on the CPU); segment ranges; clears the scratch.
//   2. rle        one block per (image, segment): the PackBits header chain is found in parallel
//                 window by window and the runs are expanded by whole warps (see "2. RLE segments"
//                 below), with the CPU's checks and statuses. A run never crosses a row (PS3.5
//                 G.3.1; corrupt otherwise), so a run's bytes are one stretch of an output row.
//                 The bytes land in the image's own output slots: byte plane s of pixel (r, c)
//                 is byte (nseg-1-s) of the uint32 at the start of out[b, r, c], so RLE needs no
//                 scratch planes; the other bytes of the slot are left as they are (the stored
//                 value keeps bits below bits_allocated only); the pixel kernel then reads each
//                 slot and overwrites it in the same thread.
//   3. status     one thread per image: the first failing segment names the image's status.
//   4. minmax     MINMAX images: per-image min/max stored value (blocks over rows, threads along
//                 them; block reduction, then 64-bit atomicMin/atomicMax).
//   5. pixels     blocks over output rows, a thread per element: stored value (native bytes or
//                 the RLE slot) → intensity_value (intensity_math.h, in double as on the CPU) →
//                 out; zeros in the padding and for failed images.
// Not changed with the RLE rework, noted for 2048² 16-bit RLE: MINMAX reads every output slot
// once more in its own pass (the RLE block could fold its plane's values into a per-row min/max
// instead), and both per-pixel kernels do 64-bit index arithmetic and the intensity math in
// double per element; each is a pass over the output at memory speed, not the bottleneck.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "ops/decode_pixels_math.h"

// Host emulation (a test harness compiles the RLE step functions for the host and checks every
// shared-memory index and global read with these asserts); nothing on the device.
#if defined(MEDCL_DP_EMULATE) && !defined(__CUDA_ARCH__)
#include <cassert>
#define MEDCL_DP_ASSERT(x) assert(x)
#else
#define MEDCL_DP_ASSERT(x) ((void)0)
#endif

namespace medcl {
namespace cuda {

constexpr int kDpThreads = 256;
constexpr int kDpWarps = kDpThreads / 32;

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
// One block (kDpThreads threads) per (image, segment). Positions are counted in the "stream": the
// bytes from the 16-byte-aligned address at or below the segment's first byte, so the segment is
// stream [q0, q_end) with q0 < 16, and window w is stream [w S, (w+1) S), S = kDpStage = 16 bytes
// per thread. Windows are loaded 16 bytes per thread into a ring of three window slots in shared
// memory (plus a mirror of slot 0's first bytes after slot 2, so a run read from slot 2 into the
// next window stays contiguous): windows w and w+1 are resident while window w is walked, and
// window w+2's bytes are fetched into registers at the start of w's first step and stored at its
// end (after the previous window's runs are expanded), so loads overlap a whole step.
//
// The header chain: succ(x) = x + 1 + (h < 128 ? h + 1 : h > 128 ? 1 : 0) for the header h at x;
// the chain starts at q0 and its order is stream order. A step covers the chain positions of one
// window (or of its part that fills the run table, kDpRuns runs), in three phases:
//   P1  hop table (dense windows only): thread t owns chunk [16 t, 16 t + 16) of the window and,
//       walking its 16 positions backwards, records for every position x as if it were a header
//       (speculatively) the first walk position at or after the chunk's end, and the runs and
//       output bytes (and headers) on the way: hop[x] = {exit offset, runs, bytes, headers}, one
//       shared lookup per position (hop[x] = the step at x + hop[succ(x)] when succ(x) is inside
//       the chunk). Positions past the segment's end count as no-ops here; P2 stops there.
//   P2  thread 0 follows the true chain from the step's entry (always the first chain position
//       of its chunk): with the hop table one lookup per chunk the chain touches (at most 256 per
//       window, however dense the runs; an entry is valid because every chain position in a
//       chunk lies on the walk from the chunk's first one), without it
//       (sparse windows: few long runs, e.g. the low byte plane's 128-byte literals) one per
//       header. It marks each chunk's first chain position with the run index and output offset
//       there, and stops at the window's end, when the run table is full, when the segment's
//       rows·cols bytes are reached, or at the segment's end (short). Meanwhile warps 1..7 expand
//       the previous step's run table.
//   P3  every thread whose chunk holds chain positions walks them from its marked entry and
//       writes its runs into the table at their index: output offset, destination element
//       (row, column from the offset: one division per chunk, then incremental), source in the
//       ring; and checks them as the CPU does (cpu/decode_pixels.cpp: walk_rle_segment): a run
//       starting at or past the rows·cols bytes ends the segment (later bytes are ignored); a run
//       with column + L > cols is RLE_OVERFLOW, else one whose bytes pass the segment's end is
//       RLE_PAST_END. The first failing run in chain (= stream) order wins (shared atomicMin on
//       its position); with none, a chain that reached the segment's end early is RLE_SHORT.
// A failing segment stops at once (its image is zeroed by the pixel kernel); the expansion never
// touches a run that failed, so every byte written is inside its own image's rows·cols pixels.
// Expansion: warp i takes a contiguous share of the table's runs and their output bytes 32 at a
// time, lane j byte base + j; the runs starting inside the 32 bytes come from one shared load
// per lane and a warp OR of their start bits, a lane's run = cursor + popc(starts up to it).
// Dense or sparse is chosen per step from the previous step's bytes per header (no-ops count).
constexpr int kDpChunk = 16;                         // window bytes per thread
constexpr int kDpStage = kDpThreads * kDpChunk;      // window bytes (4096)
constexpr int kDpRuns = 1024;                        // run table entries per step
constexpr int kDpMirror = 144;                       // >= 129 (a run's bytes past its header), x16
constexpr int kDpRing = 3 * kDpStage + kDpMirror;    // ring bytes
constexpr int kDpDenseBytes = 12;                    // hop table when a step averaged fewer bytes per header
constexpr uint16_t kDpNoEntry = 0xffff;
constexpr unsigned long long kDpDstMask = (1ull << 48) - 1;
static_assert(kDpStage > 2 * 130, "a run (at most 130 bytes) must fit in the window after its own");
static_assert(kDpChunk == 16, "hop entries pack a chunk's runs (<= 8), bytes (<= 1024), headers (<= 16)");

enum DpStop : int { kDpExit = 0, kDpCapacity = 1, kDpComplete = 2, kDpShortEnd = 3 };
enum DpNext : int { kDpContinue = 0, kDpFail = 1, kDpDone = 2 };

struct DpRleShared {
  uint4 ring[kDpRing / 16];              // window w in slot w % 3; [3 S, 3 S + kDpMirror): slot 0's start
  uint32_t hop[kDpStage];                // P1: [i * kDpThreads + t] for window position 16 t + i:
                                         //     bits 0-7 exit - chunk end, 8-11 runs, 12-22 bytes,
                                         //     23-27 headers (no-ops too)
  uint32_t run_out[kDpRuns];             // output offset of each run within the step
  unsigned long long run_info[kDpRuns];  // bits 0-47 destination element, 48-61 ring index of its
                                         // first byte, 63 literal
  uint32_t c_out[kDpThreads];            // P2 → P3, per chunk: output offset at its first chain position
  uint16_t c_entry[kDpThreads];          //   that position (kDpNoEntry: no chain position)
  uint16_t c_run[kDpThreads];            //   the run index there
  int stop, exit, outn, heads, kept, err;  // P2/P3 → all
};

struct DpSegment {
  const uint8_t* base;  // 16-byte-aligned address at or below the segment's first byte
  int64_t q0, q_end;    // the segment is base[q0 .. q_end)
  int64_t n_windows;
  int64_t N, cols, W;   // rows·cols bytes to produce, the image's columns, the output's row stride
};

// The state of one segment's walk, the same in every thread.
struct DpRleState {
  int64_t w;              // window
  int entry;              // the step's first chain position, relative to the window
  int64_t done;           // output bytes before the step
  int64_t row0, col0;     // their row and column
  int n_prev, tot_prev;   // the previous step's table (runs, bytes), expanded during this step
  bool new_window;        // first step of window w
  bool hops_built;        // the hop table holds window w
  bool dense;             // the last step averaged fewer than kDpDenseBytes bytes per header
};

struct DpStepPlan {
  int slot, qe, rem;      // ring slot; segment end and bytes still to produce, clamped to int
  bool pmode, build, prefetch;
};

MEDCL_HD DpSegment dp_segment(const uint8_t* first, int64_t len, int64_t N, int64_t cols, int64_t W) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(first);
  DpSegment g;
  g.base = reinterpret_cast<const uint8_t*>(a & ~uintptr_t{15});
  g.q0 = static_cast<int64_t>(a & 15);
  g.q_end = g.q0 + len;
  g.n_windows = (g.q_end + kDpStage - 1) / kDpStage;
  g.N = N, g.cols = cols, g.W = W;
  return g;
}

MEDCL_HD DpRleState dp_initial_state(const DpSegment& g) {
  DpRleState st;
  st.w = 0, st.entry = static_cast<int>(g.q0), st.done = 0, st.row0 = 0, st.col0 = 0;
  st.n_prev = 0, st.tot_prev = 0, st.new_window = true, st.hops_built = false, st.dense = true;
  return st;
}

MEDCL_HD DpStepPlan dp_plan(const DpRleState& st, const DpSegment& g) {
  DpStepPlan p;
  p.slot = static_cast<int>(st.w % 3);
  const int64_t qe = g.q_end - st.w * kDpStage, rem = g.N - st.done;
  p.qe = static_cast<int>(qe < 2 * kDpStage ? qe : 2 * kDpStage);  // >= 0; only compared with x <= S + 130
  p.rem = static_cast<int>(rem < INT_MAX ? rem : INT_MAX);
  p.pmode = st.hops_built || st.dense;
  p.build = p.pmode && !st.hops_built;
  p.prefetch = st.new_window && st.w + 2 < g.n_windows;
  return p;
}

MEDCL_HD void dp_divmod(int64_t p, int64_t c, int64_t* q, int64_t* m) {
  if (p <= 0xffffffffll && c <= 0xffffffffll) {  // the usual case: one 32-bit division
    const uint32_t pp = static_cast<uint32_t>(p), cc = static_cast<uint32_t>(c), qq = pp / cc;
    *q = qq, *m = pp - qq * cc;
  } else {
    *q = p / c, *m = p - *q * c;
  }
}

// Stream bytes [lo, lo + 16) (lo a multiple of 16) that lie in the segment; zeros elsewhere. Reads
// nothing outside the segment: a whole 16-byte load only when all 16 bytes are its own.
MEDCL_HD uint4 dp_load_chunk(const DpSegment& g, int64_t lo) {
  if (lo >= g.q0 && lo + 16 <= g.q_end) {
    MEDCL_DP_ASSERT(lo % 16 == 0);
#if defined(__CUDA_ARCH__)
    return __ldg(reinterpret_cast<const uint4*>(g.base + lo));
#else
    return *reinterpret_cast<const uint4*>(g.base + lo);
#endif
  }
  uint32_t wd[4] = {0u, 0u, 0u, 0u};
  if (lo + 16 > g.q0 && lo < g.q_end) {  // the segment's first or last 16 bytes
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      const int64_t q = lo + k;
      if (q >= g.q0 && q < g.q_end) wd[k >> 2] |= static_cast<uint32_t>(g.base[q]) << (8 * (k & 3));
    }
  }
  uint4 v;
  v.x = wd[0], v.y = wd[1], v.z = wd[2], v.w = wd[3];
  return v;
}

// Thread t's 16 bytes of window w into its ring slot (slot 0 also into the mirror).
MEDCL_HD void dp_store_chunk(DpRleShared& sh, int64_t w, int t, uint4 v) {
  const int sl = static_cast<int>(w % 3);
  sh.ring[sl * (kDpStage / 16) + t] = v;
  if (sl == 0 && t < kDpMirror / 16) sh.ring[3 * (kDpStage / 16) + t] = v;
}

MEDCL_HD uint32_t dp_ring_byte(const DpRleShared& sh, int i) {
  MEDCL_DP_ASSERT(0 <= i && i < kDpRing);
  return reinterpret_cast<const uint8_t*>(sh.ring)[i];
}

// P1, thread t: hop entries of its chunk's 16 positions (see above); x >= qe (past the segment):
// no run, the walk steps on to the chunk's end.
MEDCL_HD void dp_build_hops(DpRleShared& sh, int t, int sl, int qe) {
  const uint4 c = sh.ring[sl * (kDpStage / 16) + t];
  const uint32_t wd[4] = {c.x, c.y, c.z, c.w};
  uint32_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;  // entries of positions i+1 .. i+4
#pragma unroll
  for (int i = kDpChunk - 1; i >= 0; --i) {
    uint32_t v = 0;
    if (kDpChunk * t + i < qe) {
      const uint32_t h = (wd[i >> 2] >> (8 * (i & 3))) & 0xffu;
      const uint32_t L = h < 128 ? h + 1 : (h > 128 ? 257 - h : 0);
      const int step = h < 128 ? static_cast<int>(h) + 2 : (h > 128 ? 2 : 1);
      const int nx = i + step;  // the successor, relative to the chunk
      v = (1u << 23) + (h != 128 ? 1u << 8 : 0u) + (L << 12);
      if (nx >= kDpChunk) {
        v += static_cast<uint32_t>(nx - kDpChunk);
      } else if (step <= 4) {
        v += step == 1 ? n1 : step == 2 ? n2 : step == 3 ? n3 : n4;
      } else {
        MEDCL_DP_ASSERT(nx > i && nx < kDpChunk);
        v += sh.hop[nx * kDpThreads + t];
      }
    }
    sh.hop[i * kDpThreads + t] = v;
    n4 = n3, n3 = n2, n2 = n1, n1 = v;
  }
}

// P2, thread 0: the true chain from `entry` (a chain position, relative to the window, the first
// in its chunk); marks chunks (c_entry/c_run/c_out), publishes stop/exit/outn/heads and resets
// kept/err for P3. The checks in the CPU's order: bytes complete, then segment end, then window.
MEDCL_HD void dp_hop_walk(DpRleShared& sh, int sl, int entry, int qe, int rem, bool pmode) {
  int e = entry, R = 0, O = 0, heads = 0, last = -1, stop;
  for (;;) {
    if (O >= rem) { stop = kDpComplete; break; }
    if (e >= qe) { stop = kDpShortEnd; break; }
    if (e >= kDpStage) { stop = kDpExit; break; }
    MEDCL_DP_ASSERT(e >= 0);
    const int t = e >> 4;  // e / kDpChunk, e >= 0
    if (pmode) {  // one hop per chunk
      const uint32_t v = sh.hop[(e & 15) * kDpThreads + t];
      const int rv = static_cast<int>((v >> 8) & 15u);
      if (R + rv > kDpRuns) { stop = kDpCapacity; break; }
      sh.c_entry[t] = static_cast<uint16_t>(e), sh.c_run[t] = static_cast<uint16_t>(R);
      sh.c_out[t] = static_cast<uint32_t>(O);
      R += rv;
      O += static_cast<int>((v >> 12) & 0x7ffu);
      heads += static_cast<int>(v >> 23);
      e = kDpChunk * (t + 1) + static_cast<int>(v & 0xffu);
    } else {  // one step per header
      if (t != last) {
        if (R + kDpChunk / 2 > kDpRuns) { stop = kDpCapacity; break; }  // a chunk holds <= 8 runs
        sh.c_entry[t] = static_cast<uint16_t>(e), sh.c_run[t] = static_cast<uint16_t>(R);
        sh.c_out[t] = static_cast<uint32_t>(O);
        last = t;
      }
      const uint32_t h = dp_ring_byte(sh, sl * kDpStage + e);
      ++heads;
      if (h == 128) {
        ++e;
      } else if (h < 128) {
        ++R, O += static_cast<int>(h) + 1, e += static_cast<int>(h) + 2;
      } else {
        ++R, O += 257 - static_cast<int>(h), e += 2;
      }
    }
  }
  sh.stop = stop, sh.exit = e, sh.outn = O, sh.heads = heads, sh.kept = R, sh.err = INT_MAX;
}

// P3, thread t: the runs of its chunk from its marked entry (module comment), into the table.
MEDCL_HD void dp_chunk_walk(DpRleShared& sh, int t, int sl, int qe, int rem, const DpSegment& g, int64_t row0,
                            int64_t col0) {
  const int first = sh.c_entry[t];
  if (first == kDpNoEntry) return;
  int y = first, r = sh.c_run[t], o = static_cast<int>(sh.c_out[t]);
  const int end = kDpChunk * (t + 1) < qe ? kDpChunk * (t + 1) : qe;
  int64_t row = 0, col = -1;  // of the next run; col < 0: not computed yet
  while (y < end) {
    const uint32_t h = dp_ring_byte(sh, sl * kDpStage + y);
    if (h == 128) {
      ++y;
      continue;
    }
    const bool lit = h < 128;
    const int L = lit ? static_cast<int>(h) + 1 : 257 - static_cast<int>(h), need = lit ? L : 1;
    if (o >= rem) {  // the segment's rows·cols bytes are complete before this run
      sh.kept = r;
      return;
    }
    if (col < 0) {
      dp_divmod(col0 + o, g.cols, &row, &col);
      row += row0;
    }
    int key = -1;
    if (col + L > g.cols) key = y * 8 + kRleOverflow;
    else if (y + 1 + need > qe) key = y * 8 + kRlePastEnd;
    if (key >= 0) {
#if defined(__CUDA_ARCH__)
      atomicMin(&sh.err, key);
#else
      sh.err = key < sh.err ? key : sh.err;
#endif
      return;
    }
    MEDCL_DP_ASSERT(0 <= r && r < kDpRuns);
    MEDCL_DP_ASSERT(row * g.W + col >= 0 && row * g.W + col < (int64_t{1} << 48));
    sh.run_out[r] = static_cast<uint32_t>(o);
    sh.run_info[r] = (static_cast<unsigned long long>(row * g.W + col) & kDpDstMask) |
                     static_cast<unsigned long long>(sl * kDpStage + y + 1) << 48 | (lit ? 1ull << 63 : 0ull);
    ++r, o += L, y += 1 + need;
    col += L;
    if (col == g.cols) col = 0, ++row;
  }
}

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ uint32_t dp_warp_or(uint32_t v) {
#if __CUDA_ARCH__ >= 800
  return __reduce_or_sync(0xffffffffu, v);
#else
  for (int o = 16; o > 0; o >>= 1) v |= __shfl_xor_sync(0xffffffffu, v, o);
  return v;
#endif
}
#endif

MEDCL_HD int dp_popc(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

// Expansion of a step's table (n runs, tot bytes) by warp wi of n_warps: its share of the runs, 32
// output bytes at a time. Lanes lane0 .. lane0 + kLanes - 1 (device: kLanes 1, the thread's lane,
// the warp OR a collective; host emulation: all 32 lanes in one call).
template <int kLanes, typename Out>
MEDCL_HD void dp_expand_warp(const DpRleShared& sh, int wi, int n_warps, int lane0, int n, int tot, Out* img,
                             int byte_in_slot) {
  if (wi < 0 || wi >= n_warps || n <= 0) return;
  const int rb = n * wi / n_warps, re = n * (wi + 1) / n_warps;
  if (rb >= re) return;
  const int ob = static_cast<int>(sh.run_out[rb]), oe = re < n ? static_cast<int>(sh.run_out[re]) : tot;
  int k = rb - 1;  // the run holding byte base - 1 (none yet)
  int next = ob;   // where run k + 1 starts
  for (int base = ob; base < oe; base += 32) {
    uint32_t starts = 0;  // bit i: a run starts at byte base + i
    if (next < base + 32) {
      uint32_t bits = 0;
#pragma unroll
      for (int i = 0; i < kLanes; ++i) {
        const int idx = k + 1 + lane0 + i;
        const int ro = idx < re ? static_cast<int>(sh.run_out[idx]) : INT_MAX;
        MEDCL_DP_ASSERT(ro >= base);
        if (ro < base + 32) bits |= 1u << (ro - base);
      }
#if defined(__CUDA_ARCH__)
      starts = kLanes == 1 ? dp_warp_or(bits) : bits;
#else
      starts = bits;
#endif
    }
#pragma unroll
    for (int i = 0; i < kLanes; ++i) {
      const int lane = lane0 + i, j = base + lane;
      if (j < oe) {
        const int r = k + dp_popc(starts & (0xffffffffu >> (31 - lane)));
        MEDCL_DP_ASSERT(rb <= r && r < re);
        const unsigned long long info = sh.run_info[r];
        const int within = j - static_cast<int>(sh.run_out[r]);
        const int src = static_cast<int>((info >> 48) & 0x3fffu) + ((info >> 63) ? within : 0);
        const int64_t dst = static_cast<int64_t>(info & kDpDstMask) + within;
        reinterpret_cast<uint8_t*>(img + dst)[byte_in_slot] = static_cast<uint8_t>(dp_ring_byte(sh, src));
      }
    }
    if (starts != 0) {
      k += dp_popc(starts);
      next = k + 1 < re ? static_cast<int>(sh.run_out[k + 1]) : INT_MAX;
    }
  }
}

// After P3 (every thread): the step's outcome. kDpFail: *status; kDpDone: expand (*n, *tot) and
// finish; kDpContinue: the state moves to the next step.
MEDCL_HD int dp_advance(DpRleState& st, const DpRleShared& sh, const DpStepPlan& p, const DpSegment& g,
                        int* status, int* n, int* tot) {
  const int err = sh.err, stop = sh.stop, exit = sh.exit, heads = sh.heads, outn = sh.outn, kept = sh.kept;
  if (err != INT_MAX) {  // the first failing run, in chain order
    *status = err & 7;
    return kDpFail;
  }
  if (stop == kDpShortEnd) {
    *status = kRleShort;
    return kDpFail;
  }
  const int bytes = outn < p.rem ? outn : p.rem;
  *n = kept, *tot = bytes;
  if (stop == kDpComplete) return kDpDone;
  st.n_prev = kept, st.tot_prev = bytes;
  st.done += bytes;
  st.col0 += bytes;
  if (st.col0 >= g.cols) {
    int64_t q, m;
    dp_divmod(st.col0, g.cols, &q, &m);
    st.row0 += q, st.col0 = m;
  }
  const int span = exit - st.entry;
  st.dense = heads * kDpDenseBytes > span;
  if (stop == kDpExit) {
    st.w += 1, st.entry = exit - kDpStage, st.new_window = true, st.hops_built = false;
  } else {  // kDpCapacity: the rest of the same window
    st.entry = exit, st.new_window = false, st.hops_built = p.pmode;
  }
  return kDpContinue;
}

template <typename Out>
__global__ void __launch_bounds__(kDpThreads) dp_rle_kernel(DecodeArgs a, DecodeScratch s, Out* out) {
  const int64_t b = blockIdx.x / kMaxRleSegments;
  const int seg = static_cast<int>(blockIdx.x % kMaxRleSegments);
  if (b >= a.B || a.status[b] != kDecodeOk) return;
  const PixelDesc d = load_desc(a.desc + 7 * b);
  const int nseg = static_cast<int>(d.bits_allocated / 8);
  if (d.encoding != kRle || seg >= nseg) return;

  __shared__ DpRleShared sh;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int64_t sb = s.seg_begin[kMaxRleSegments * b + seg], se = s.seg_end[kMaxRleSegments * b + seg];
  const DpSegment g = dp_segment(a.data + sb, se - sb, d.rows * d.cols, d.cols, a.W);
  Out* img = out + b * a.H * a.W;
  const int byte_in_slot = nseg - 1 - seg;  // byte of the uint32 slot this plane fills

  dp_store_chunk(sh, 0, tid, dp_load_chunk(g, int64_t{kDpChunk} * tid));
  dp_store_chunk(sh, 1, tid, dp_load_chunk(g, kDpStage + int64_t{kDpChunk} * tid));
  DpRleState st = dp_initial_state(g);
  for (;;) {
    const DpStepPlan p = dp_plan(st, g);
    uint4 pf = make_uint4(0u, 0u, 0u, 0u);
    if (p.prefetch) pf = dp_load_chunk(g, (st.w + 2) * kDpStage + int64_t{kDpChunk} * tid);
    sh.c_entry[tid] = kDpNoEntry;
    if (p.build) dp_build_hops(sh, tid, p.slot, p.qe);  // reads only this thread's own 16 bytes
    __syncthreads();
    if (tid == 0) {
      dp_hop_walk(sh, p.slot, st.entry, p.qe, p.rem, p.pmode);
    } else if (warp >= 1) {
      dp_expand_warp<1>(sh, warp - 1, kDpWarps - 1, lane, st.n_prev, st.tot_prev, img, byte_in_slot);
    }
    __syncthreads();
    dp_chunk_walk(sh, tid, p.slot, p.qe, p.rem, g, st.row0, st.col0);
    if (p.prefetch) dp_store_chunk(sh, st.w + 2, tid, pf);  // slot of window w-1, expanded in P2
    __syncthreads();
    int status = kDecodeOk, n = 0, tot = 0;
    const int next = dp_advance(st, sh, p, g, &status, &n, &tot);  // reads sh before the next P2 writes it
    if (next == kDpFail) {
      if (tid == 0) s.seg_status[kMaxRleSegments * b + seg] = status;
      return;
    }
    if (next == kDpDone) {
      dp_expand_warp<1>(sh, warp, kDpWarps, lane, n, tot, img, byte_in_slot);
      return;
    }
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
