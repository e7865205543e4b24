// CPU kernel of medcl::decode_pixels, in steps, each parallel with at::parallel_for:
//   1. per image: descriptor and RLE header checks (decode_pixels_math.h: check_image);
//   2. per RLE segment (image × byte plane): a sequential walk over the run headers only, which
//      checks every run and notes where each row starts in the segment (PS3.5 G.3.1 encodes every
//      row separately; a run crossing a row is corrupt: see medcl/ops/decode_pixels.py);
//   3. MINMAX images only: per output row, the min/max stored value (reduced per image after; RLE
//      rows are decoded for it and again in step 4);
//   4. per output row: the row's stored values (native bytes: swap, mask, sign extend; RLE: each
//      segment's row PackBits-decoded into a row buffer first) → intensity_value
//      (intensity_math.h) → the output; padding and failed images zeroed.
// So RLE needs no full-image scratch planes, and one RLE image decodes on every core.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "ops/cpu/vec_math.h"
#include "ops/decode_pixels.h"
#include "ops/decode_pixels_math.h"

namespace medcl {
namespace {

constexpr int64_t kRowSlack = 16;  // bytes after each segment's row buffer the 16-byte run copies may touch
constexpr int64_t kTile = 512;     // stored values per tile (a row is done in tiles)

struct Plan {
  PixelDesc d;
  StoredBits bits;
  int32_t status;
  int32_t fn;
  bool inv;
  double slope, intercept, center, width;
  int64_t begin;                     // first byte of the image in data
  int64_t seg_begin[kMaxRleSegments], seg_end[kMaxRleSegments];
  int64_t row_starts;                // RLE: index of its (segment, row) start table in `row_start`
};

// --- RLE ---------------------------------------------------------------------------------------
// Walks one PackBits segment's headers without writing any output: the same checks in the same
// order as the reference (medcl/ops/decode_pixels.py: _rle_segment); fills row_start[r] with the
// data offset of row r's first header.
int32_t walk_rle_segment(const uint8_t* data, int64_t begin, int64_t end, int64_t rows, int64_t cols,
                         int64_t* row_start) {
  const uint8_t* p = data + begin;
  const uint8_t* const stop = data + end;
  for (int64_t r = 0; r < rows; ++r) {
    row_start[r] = p - data;
    int64_t left = cols;  // bytes still to come in this row
    while (left > 0) {
      if (p >= stop) return kRleShort;
      const uint32_t h = *p++;
      if (h < 128) {
        const int64_t L = h + 1;
        if (L > left) return kRleOverflow;
        if (L > stop - p) return kRlePastEnd;
        p += L;
        left -= L;
      } else if (h > 128) {
        const int64_t L = 257 - h;
        if (L > left) return kRleOverflow;
        if (p >= stop) return kRlePastEnd;
        ++p;
        left -= L;
      }  // h == 128: no operation
    }
  }
  return kDecodeOk;
}

// Decodes one row (already walked: every run fits) into dst[0, cols). Runs are copied/filled in
// 16-byte pieces when 16 bytes of slack lie after the source (the data buffer) and dst (kRowSlack).
void decode_rle_row(const uint8_t* p, const uint8_t* const stop, uint8_t* dst, int64_t cols) {
  uint8_t* o = dst;
  uint8_t* const row_end = dst + cols;
  while (o < row_end && p < stop) {
    const uint32_t h = *p++;
    if (h < 128) {
      const int64_t L = std::min<int64_t>({h + 1, row_end - o, stop - p});
      if (stop - p >= 128 + 16) {
        for (int64_t k = 0; k < L; k += 16) std::memcpy(o + k, p + k, 16);
      } else {
        std::memcpy(o, p, L);
      }
      o += L;
      p += L;
    } else if (h > 128 && p < stop) {
      const int64_t L = std::min<int64_t>(257 - h, row_end - o);
      const uint64_t v = 0x0101010101010101ull * *p++;
      for (int64_t k = 0; k < L; k += 16) {
        std::memcpy(o + k, &v, 8);
        std::memcpy(o + k + 8, &v, 8);
      }
      o += L;
    }
  }
  if (o < row_end) std::memset(o, 0, row_end - o);  // unreachable after a successful walk
}

// --- stored values of a row ----------------------------------------------------------------------
// src: the row's bytes (native) or its byte planes, `stride` apart, most significant first (RLE).
// NB bytes per pixel. 8- and 16-bit values are computed in int32 (vectorised conversions and
// reductions), 32-bit ones in int64.
template <int NB>
using StoredInt = std::conditional_t<(NB < 4), int32_t, int64_t>;

template <int NB, int ENC>
inline __attribute__((always_inline)) StoredInt<NB> stored_at(const uint8_t* src, int64_t stride, int64_t j,
                                                              uint32_t shift, uint32_t mask, uint32_t sign) {
  uint32_t raw = 0;
  if (ENC == kRle) {
    for (int k = 0; k < NB; ++k) raw = raw << 8 | src[k * stride + j];
  } else if (ENC == kNativeBE) {
    for (int k = 0; k < NB; ++k) raw = raw << 8 | src[j * NB + k];
  } else {
    for (int k = NB - 1; k >= 0; --k) raw = raw << 8 | src[j * NB + k];
  }
  const uint32_t v = ((raw >> shift) & mask) ^ sign;
  return static_cast<StoredInt<NB>>(v) - static_cast<StoredInt<NB>>(sign);
}

// Stored values of columns [c0, c0 + n) as doubles.
template <int NB, int ENC>
MEDCL_CLONES void load_stored(const uint8_t* src, int64_t stride, StoredBits bits, int64_t c0, int64_t n,
                              double* out) {
  const uint32_t shift = bits.shift, mask = bits.mask, sign = bits.sign;
  src += ENC == kRle ? c0 : c0 * NB;
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<double>(stored_at<NB, ENC>(src, stride, j, shift, mask, sign));
}

// min/max stored value of columns [0, n), folded into *lo, *hi.
template <int NB, int ENC>
MEDCL_CLONES void minmax_stored(const uint8_t* src, int64_t stride, StoredBits bits, int64_t n, int64_t* lo,
                                int64_t* hi) {
  const uint32_t shift = bits.shift, mask = bits.mask, sign = bits.sign;
  StoredInt<NB> l = std::numeric_limits<StoredInt<NB>>::max(), h = std::numeric_limits<StoredInt<NB>>::min();
  for (int64_t j = 0; j < n; ++j) {
    const StoredInt<NB> v = stored_at<NB, ENC>(src, stride, j, shift, mask, sign);
    l = v < l ? v : l;
    h = v > h ? v : h;
  }
  *lo = std::min<int64_t>(*lo, l);
  *hi = std::max<int64_t>(*hi, h);
}

using Loader = void (*)(const uint8_t*, int64_t, StoredBits, int64_t, int64_t, double*);
using MinMax = void (*)(const uint8_t*, int64_t, StoredBits, int64_t, int64_t*, int64_t*);

template <template <int, int> class F>
auto for_layout(const PixelDesc& d) {
  const int64_t enc = d.encoding;
  switch (d.bits_allocated) {
    case 8:
      return enc == kRle ? F<1, kRle>::fn : F<1, kNativeLE>::fn;
    case 16:
      return enc == kRle ? F<2, kRle>::fn : enc == kNativeBE ? F<2, kNativeBE>::fn : F<2, kNativeLE>::fn;
    default:
      return enc == kRle ? F<4, kRle>::fn : enc == kNativeBE ? F<4, kNativeBE>::fn : F<4, kNativeLE>::fn;
  }
}
template <int NB, int ENC>
struct LoadFn {
  static constexpr Loader fn = load_stored<NB, ENC>;
};
template <int NB, int ENC>
struct MinMaxFn {
  static constexpr MinMax fn = minmax_stored<NB, ENC>;
};

// One image row's bytes, decoded into `rowbuf` (planes `stride` apart) first for RLE.
struct RowBytes {
  const uint8_t* src;
  int64_t stride;
};

RowBytes row_bytes(const Plan& p, const uint8_t* data, const std::vector<int64_t>& row_start, int64_t r,
                   uint8_t* rowbuf, int64_t stride) {
  if (p.d.encoding != kRle) return {data + p.begin + r * p.d.cols * (p.d.bits_allocated / 8), 0};
  for (int64_t s = 0; s < p.d.bits_allocated / 8; ++s) {
    decode_rle_row(data + row_start[p.row_starts + s * p.d.rows + r], data + p.seg_end[s], rowbuf + s * stride,
                   p.d.cols);
  }
  return {rowbuf, stride};
}

// --- intensity over a tile ---------------------------------------------------------------------
template <int32_t FN, typename Out>
MEDCL_CLONES void intensity_tile(const double* stored, int64_t n, double slope, double intercept,
                                 double center, double width, bool inv, Out* out) {
  for (int64_t j = 0; j < n; ++j) {
    out[j] = static_cast<Out>(intensity_value<double>(stored[j], slope, intercept, center, width, FN, inv));
  }
}

template <typename Out>
void intensity_row(const Plan& p, const double* stored, int64_t n, Out* out) {
  switch (p.fn) {
    case kVoiLinear:
      return intensity_tile<kVoiLinear, Out>(stored, n, p.slope, p.intercept, p.center, p.width, p.inv, out);
    case kVoiLinearExact:
    case kVoiMinMax:  // center/width already from the image's min..max
      return intensity_tile<kVoiLinearExact, Out>(stored, n, p.slope, p.intercept, p.center, p.width, p.inv, out);
    case kVoiSigmoid:
      return intensity_tile<kVoiSigmoid, Out>(stored, n, p.slope, p.intercept, p.center, p.width, p.inv, out);
    default:
      return intensity_tile<kVoiNone, Out>(stored, n, p.slope, p.intercept, p.center, p.width, p.inv, out);
  }
}

template <typename Out>
void decode_pixels_cpu_impl(const DecodePixelsCall& c, Out* out, int32_t* status) {
  const int64_t B = c.B, H = c.H, W = c.W, n_data = c.data.numel();
  const uint8_t* data = c.data.data_ptr<uint8_t>();
  const int64_t* offsets = c.offsets.data_ptr<int64_t>();
  const int64_t* desc = c.desc.data_ptr<int64_t>();
  const double* params = c.params.data_ptr<double>();
  const int32_t* function = c.function.data_ptr<int32_t>();
  const bool* invert = c.invert.data_ptr<bool>();

  // 1. Plans: checks, RLE segment ranges, the row-start table's layout.
  std::vector<Plan> plans(B);
  std::vector<std::pair<int64_t, int64_t>> segments;  // (image, segment) to walk
  int64_t n_row_starts = 0;
  for (int64_t b = 0; b < B; ++b) {
    Plan& p = plans[b];
    p.d = load_desc(desc + 7 * b);
    p.fn = function[b];
    p.inv = invert[b];
    p.slope = params[4 * b], p.intercept = params[4 * b + 1];
    p.center = params[4 * b + 2], p.width = params[4 * b + 3];
    p.begin = offsets[b];
    p.status = check_image(p.d, p.fn, H, W, data, n_data, offsets[b], offsets[b + 1], p.seg_begin, p.seg_end);
    if (p.status != kDecodeOk) continue;
    p.bits = stored_bits(p.d);
    if (p.d.encoding == kRle) {
      const int64_t nseg = p.d.bits_allocated / 8;
      p.row_starts = n_row_starts;
      n_row_starts += nseg * p.d.rows;
      for (int64_t s = 0; s < nseg; ++s) segments.emplace_back(b, s);
    }
  }

  // 2. RLE: walk every segment's headers (checks, row starts), in parallel over segments.
  std::vector<int64_t> row_start(n_row_starts);
  std::vector<int32_t> seg_status(segments.size(), kDecodeOk);
  at::parallel_for(0, static_cast<int64_t>(segments.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const Plan& p = plans[segments[t].first];
      const int64_t s = segments[t].second;
      seg_status[t] = walk_rle_segment(data, p.seg_begin[s], p.seg_end[s], p.d.rows, p.d.cols,
                                       row_start.data() + p.row_starts + s * p.d.rows);
    }
  });
  for (size_t t = 0; t < segments.size(); ++t) {  // the first failing segment names the status
    Plan& p = plans[segments[t].first];
    if (p.status == kDecodeOk) p.status = seg_status[t];
  }

  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(W, 1));
  const int64_t stride = W + kRowSlack;  // of the row buffer's planes

  // 3. MINMAX: per-row min/max of the stored values, then the window per image.
  bool any_minmax = false;
  for (const Plan& p : plans) any_minmax |= p.status == kDecodeOk && p.fn == kVoiMinMax;
  if (any_minmax) {
    std::vector<int64_t> row_lo(B * H), row_hi(B * H);
    at::parallel_for(0, B * H, grain, [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> rowbuf(kMaxRleSegments * stride);
      for (int64_t row = begin; row < end; ++row) {
        const Plan& p = plans[row / H];
        const int64_t r = row % H;
        if (p.status != kDecodeOk || p.fn != kVoiMinMax || r >= p.d.rows) continue;
        const RowBytes src = row_bytes(p, data, row_start, r, rowbuf.data(), stride);
        int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
        for_layout<MinMaxFn>(p.d)(src.src, src.stride, p.bits, p.d.cols, &lo, &hi);
        row_lo[row] = lo, row_hi[row] = hi;
      }
    });
    for (int64_t b = 0; b < B; ++b) {
      Plan& p = plans[b];
      if (p.status != kDecodeOk || p.fn != kVoiMinMax) continue;
      const int64_t lo = *std::min_element(row_lo.begin() + b * H, row_lo.begin() + b * H + p.d.rows);
      const int64_t hi = *std::max_element(row_hi.begin() + b * H, row_hi.begin() + b * H + p.d.rows);
      minmax_window(static_cast<double>(lo), static_cast<double>(hi), p.slope, p.intercept, &p.center, &p.width);
    }
  }

  // 4. Output rows: stored values → intensity, zeros in the padding and for failed images.
  at::parallel_for(0, B * H, grain, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> rowbuf(kMaxRleSegments * stride);
    double buf[kTile];
    for (int64_t row = begin; row < end; ++row) {
      const Plan& p = plans[row / H];
      const int64_t r = row % H;
      Out* dst = out + row * W;
      int64_t done = 0;
      if (p.status == kDecodeOk && r < p.d.rows) {
        const Loader load = for_layout<LoadFn>(p.d);
        const RowBytes src = row_bytes(p, data, row_start, r, rowbuf.data(), stride);
        for (int64_t c0 = 0; c0 < p.d.cols; c0 += kTile) {
          const int64_t n = std::min(kTile, p.d.cols - c0);
          load(src.src, src.stride, p.bits, c0, n, buf);
          intensity_row<Out>(p, buf, n, dst + c0);
        }
        done = p.d.cols;
      }
      std::fill(dst + done, dst + W, Out(0));
    }
  });
  for (int64_t b = 0; b < B; ++b) status[b] = plans[b].status;
}

// The output is written once, right after allocation. A large one (a batch of radiographs) is a
// fresh mmap from malloc, and on Linux most of its decode time is then first-touch page faults of
// 4 KiB pages (32768 for 8 float32 images of 2048 x 2048). Where transparent huge pages are enabled
// for madvise'd regions (the common default) the advice makes them 2 MiB pages, as torch does for
// every allocation with THP_MEM_ALLOC_ENABLE=1: 8 such images decode ~2.5x faster on 2 cores.
// Below 32 MiB (glibc's largest mmap threshold) the block is often recycled heap memory, already
// mapped, where the advice was measured to make repeated decodes slower: none is given.
void advise_huge_pages(void* ptr, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (bytes < (size_t{32} << 20)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(ptr) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only: errors ignored
#else
  (void)ptr, (void)bytes;
#endif
}

std::tuple<at::Tensor, at::Tensor> decode_pixels_cpu(const at::Tensor& data, const at::Tensor& offsets,
                                                     const at::Tensor& desc, const at::Tensor& params,
                                                     const at::Tensor& function, const at::Tensor& invert,
                                                     int64_t height, int64_t width, at::ScalarType dtype) {
  auto c = prepare_decode_pixels(data, offsets, desc, params, function, invert, height, width, dtype);
  advise_huge_pages(c.out.data_ptr(), c.out.nbytes());
  if (dtype == at::kFloat) {
    decode_pixels_cpu_impl<float>(c, c.out.data_ptr<float>(), c.status.data_ptr<int32_t>());
  } else {
    decode_pixels_cpu_impl<double>(c, c.out.data_ptr<double>(), c.status.data_ptr<int32_t>());
  }
  return {c.out, c.status};
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) { m.impl("decode_pixels", &decode_pixels_cpu); }

}  // namespace medcl
