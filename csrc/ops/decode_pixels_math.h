// The per-image rules of medcl::decode_pixels shared by the CPU and CUDA kernels (torch-free):
// descriptor checks, the RLE header, stored-value extraction. The definition is the reference
// in medcl/ops/decode_pixels.py; the intensity math is intensity_math.h's intensity_value.
#pragma once

#include <cstdint>

#include "ops/hd.h"
#include "ops/intensity_math.h"

namespace medcl {

// Codes of desc[:, 6] (medcl/ops/decode_pixels.py: ENCODINGS).
enum Encoding : int64_t { kNativeLE = 0, kNativeBE = 1, kRle = 2 };
// Function code past intensity's: LINEAR_EXACT over the image's own modality min..max.
constexpr int32_t kVoiMinMax = 4;

// Status codes (medcl/ops/decode_pixels.py: STATUS); an image with a nonzero status is all zeros.
enum DecodeStatus : int32_t {
  kDecodeOk = 0,
  kBadDescriptor = 1,  // descriptor/function out of range, image larger than the output, bad offsets
  kNativeShort = 2,    // native data shorter than rows * cols * bits_allocated / 8
  kRleHeader = 3,      // RLE data shorter than 64 bytes, or segment count != bits_allocated / 8
  kRleOffset = 4,      // not 64 <= off[0] <= off[1] <= ... <= data length
  kRleOverflow = 5,    // a run crossing the end of its row (PS3.5 G.3.1: rows encoded separately)
  kRlePastEnd = 6,     // a run's bytes (literal bytes, replicated byte) past the end of its segment
  kRleShort = 7,       // the segment ends before rows * cols bytes
};

constexpr int kMaxRleSegments = 4;  // bits_allocated 32

// desc row: rows, columns, bits_allocated, bits_stored, high_bit, signed, encoding.
struct PixelDesc {
  int64_t rows, cols, bits_allocated, bits_stored, high_bit, is_signed, encoding;
};

MEDCL_HD PixelDesc load_desc(const int64_t* d) { return {d[0], d[1], d[2], d[3], d[4], d[5], d[6]}; }

MEDCL_HD int64_t read_u32le(const uint8_t* p) {
  return static_cast<int64_t>(p[0]) | static_cast<int64_t>(p[1]) << 8 |
         static_cast<int64_t>(p[2]) << 16 | static_cast<int64_t>(p[3]) << 24;
}

// Checks image b's descriptor and byte range [begin, end) of a data buffer of n bytes; for RLE
// also its header, filling seg_begin/seg_end (absolute positions) of its bits_allocated/8
// segments. Returns a DecodeStatus; the segments themselves are checked while decoding.
MEDCL_HD int32_t check_image(const PixelDesc& d, int32_t function, int64_t height, int64_t width,
                             const uint8_t* data, int64_t n, int64_t begin, int64_t end,
                             int64_t* seg_begin, int64_t* seg_end) {
  if (!(0 <= begin && begin <= end && end <= n)) return kBadDescriptor;
  if (d.rows < 1 || d.cols < 1 || d.rows > height || d.cols > width) return kBadDescriptor;
  if (d.bits_allocated != 8 && d.bits_allocated != 16 && d.bits_allocated != 32) return kBadDescriptor;
  if (d.bits_stored < 1 || d.bits_stored > d.bits_allocated) return kBadDescriptor;
  if (d.high_bit < d.bits_stored - 1 || d.high_bit >= d.bits_allocated) return kBadDescriptor;
  if (d.is_signed != 0 && d.is_signed != 1) return kBadDescriptor;
  if (d.encoding != kNativeLE && d.encoding != kNativeBE && d.encoding != kRle) return kBadDescriptor;
  if (function < kVoiNone || function > kVoiMinMax) return kBadDescriptor;
  const int64_t nbytes = d.bits_allocated / 8, len = end - begin;
  if (d.encoding != kRle) return len < d.rows * d.cols * nbytes ? kNativeShort : kDecodeOk;
  const uint8_t* h = data + begin;
  if (len < 64 || read_u32le(h) != nbytes) return kRleHeader;
  int64_t prev = 64;
  for (int64_t s = 0; s < nbytes; ++s) {
    const int64_t off = read_u32le(h + 4 + 4 * s);
    if (off < prev) return kRleOffset;
    seg_begin[s] = begin + off;
    prev = off;
  }
  if (prev > len) return kRleOffset;
  for (int64_t s = 0; s < nbytes; ++s) seg_end[s] = s + 1 < nbytes ? seg_begin[s + 1] : end;
  return kDecodeOk;
}

// Bits high_bit-bits_stored+1 .. high_bit of a raw bits_allocated-bit value, sign-extended
// when signed: (v ^ sign) - sign with sign = the top kept bit (0 when unsigned).
struct StoredBits {
  uint32_t shift, mask, sign;
};

MEDCL_HD StoredBits stored_bits(const PixelDesc& d) {
  const uint32_t bs = static_cast<uint32_t>(d.bits_stored);
  return {static_cast<uint32_t>(d.high_bit - d.bits_stored + 1),
          bs >= 32 ? 0xffffffffu : (1u << bs) - 1u, d.is_signed ? 1u << (bs - 1) : 0u};
}

MEDCL_HD int64_t stored_value(uint32_t raw, const StoredBits& b) {
  const uint32_t v = (raw >> b.shift) & b.mask;
  return static_cast<int64_t>(v ^ b.sign) - static_cast<int64_t>(b.sign);
}

// MINMAX: the LINEAR_EXACT window over modality values lo..hi of stored values smin..smax.
MEDCL_HD void minmax_window(double smin, double smax, double slope, double intercept,
                            double* center, double* width) {
  double lo = slope * smin + intercept, hi = slope * smax + intercept;
  if (hi < lo) {
    const double t = lo;
    lo = hi;
    hi = t;
  }
  *center = (lo + hi) / 2.0;
  *width = hi - lo > 1e-6 ? hi - lo : 1e-6;
}

}  // namespace medcl
