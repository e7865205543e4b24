// The per-view and per-pixel math of medcl::augment, shared by the CPU and CUDA kernels
// (torch-free). The definition, with the float64 reference, is medcl/ops/augment.py:
//
//   params (B, V, 13) float64 per view: a00 a01 a02 a10 a11 a12 (input (x, y) = A (u, v, 1) for
//   output column u, row v; pixel centres at integers), brightness, contrast, pivot, gamma,
//   noise std, blur sigma (output px), noise seed.
//
//   Sampling: image b is first box-filtered into a pyramid (level l: 2x2 means of level l-1 over
//   its valid region, which is ceil(rows / 2^l) x ceil(cols / 2^l)); a view reads level
//   L = max { l <= kAugMaxLevel : min(s_u, s_v) >= kAugLevelRatio * 2^l and level l - 1 is more
//   than 1 px along an axis }, s_u = |A e_u|, s_v = |A e_v| (input px per output px): a view
//   shrinking the image reads a level it shrinks by 1x to 2x. On that level,
//   n = clamp(ceil(s / 2^L * (1 + 4 sigma)), 1, 32) bilinear taps per axis at output offsets
//   t_k = ((k + 1/2) / n - 1/2)(1 + 4 sigma), weights 1 (sigma < 1e-3) or exp(-t^2 / (2 sigma^2)),
//   normalised;
//   a tap outside [-1/2, cols / 2^L - 1/2] x [-1/2, rows / 2^L - 1/2] reads 0.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/hd.h"

namespace medcl {

constexpr int kAugParams = 13;         // values per view in params
constexpr int kAugMaxTaps = 32;        // bilinear taps per axis, at most
constexpr int kAugMaxLevel = 12;       // deepest pyramid level (4096x reduction)
constexpr double kAugMinBlur = 1e-3;   // a blur sigma below this (output px) is off
// A view reads the level it shrinks by 1x to 2x: 2 x 2 taps per output pixel. Measured on
// gratings shrunk 2.5x to 9x: at 0.75 cycles per output px (aliased to 0.25) 1-15% of the
// amplitude gets through (torch's antialiased bilinear resize: 8-9%; ratio 1.5, i.e. 4 to 9
// taps and ~1.6x the time: 13-27%; the plain area rule on the full image: 26-31%).
constexpr double kAugLevelRatio = 1.0;

enum AugParam : int {
  kAugA00 = 0, kAugA01, kAugA02, kAugA10, kAugA11, kAugA12,
  kAugBrightness, kAugContrast, kAugPivot, kAugGamma, kAugNoise, kAugBlur, kAugSeed
};

// Products and sums that nvcc must not contract into FMA: the level and tap counts are decided
// from them and must be the same on CPU, CUDA and the reference.
MEDCL_HD double aug_mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
MEDCL_HD double aug_add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Everything one view needs, computed once per view.
struct AugSetup {
  int level;             // pyramid level read
  int rows, cols;        // valid region of that level: taps' neighbours are clamped into it
  int n_u, n_v;          // taps per axis
  double a[6];           // the affine into level coordinates
  double xmax, ymax;     // a tap outside [-0.5, xmax] x [-0.5, ymax] reads 0
  double span, sigma;    // taps cover `span` = 1 + 4 sigma output px; sigma 0: equal weights
  float contrast, offset, gamma, noise;  // x -> x * contrast + offset, ^gamma, + noise * n
  uint32_t key;          // noise stream of the view
  bool tone, power, noisy;  // which steps run (skipping them keeps identity parameters exact)
};

MEDCL_HD uint32_t aug_mix32(uint32_t x) {  // "lowbias32" integer hash (C. Wellons)
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Noise key of a seed (an integer in [0, 2^53); anything else counts as 0).
MEDCL_HD uint32_t aug_key(double seed) {
  const uint64_t s = (seed >= 0.0 && seed < 9007199254740992.0) ? static_cast<uint64_t>(seed) : 0u;
  return aug_mix32(aug_mix32(static_cast<uint32_t>(s) + 0x9e3779b9u) + static_cast<uint32_t>(s >> 32));
}

// The two 24-bit uniforms of pixel i (= row * out_w + column) of a view: u1 in (0, 1] and
// u2 in [0, 1); the noise is sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller).
MEDCL_HD void aug_uniforms(uint32_t key, uint32_t i, float* u1, float* u2) {
  const uint32_t h1 = aug_mix32(key ^ aug_mix32(2u * i));
  const uint32_t h2 = aug_mix32(key ^ aug_mix32(2u * i + 1u));
  *u1 = static_cast<float>((h1 >> 8) + 1u) * 5.9604644775390625e-8f;  // 2^-24
  *u2 = static_cast<float>(h2 >> 8) * 5.9604644775390625e-8f;
}

// Pyramid level l of n pixels: ceil(n / 2^l).
MEDCL_HD int64_t aug_extent(int64_t n, int level) { return (n + (int64_t(1) << level) - 1) >> level; }

MEDCL_HD int aug_ceil_taps(double m) {  // clamp(ceil(m), 1, kAugMaxTaps); NaN -> 1
  if (!(m > 1.0)) return 1;
  if (m >= static_cast<double>(kAugMaxTaps)) return kAugMaxTaps;
  return static_cast<int>(ceil(m));
}

// rows, cols: the image's valid size (already clamped into the tensor).
MEDCL_HD AugSetup aug_setup(const double* p, int64_t rows, int64_t cols) {
  AugSetup s;
  const double s_u = sqrt(aug_add(aug_mul(p[kAugA00], p[kAugA00]), aug_mul(p[kAugA10], p[kAugA10])));
  const double s_v = sqrt(aug_add(aug_mul(p[kAugA01], p[kAugA01]), aug_mul(p[kAugA11], p[kAugA11])));
  const double s_min = s_u < s_v ? s_u : s_v;
  const int64_t extent = rows > cols ? rows : cols;
  int L = 0;  // deeper while the level is more than 1 px along an axis: L <= ceil(log2(extent))
  while (L < kAugMaxLevel && (int64_t(1) << L) < extent && s_min >= kAugLevelRatio * static_cast<double>(2 << L)) ++L;
  const double scale = 1.0 / static_cast<double>(1 << L);    // exact
  const double centre = 0.5 * static_cast<double>((1 << L) - 1);  // level pixel 0's centre
  s.level = L;
  s.rows = static_cast<int>(aug_extent(rows, L));
  s.cols = static_cast<int>(aug_extent(cols, L));
  s.a[0] = p[kAugA00] * scale;
  s.a[1] = p[kAugA01] * scale;
  s.a[2] = (p[kAugA02] - centre) * scale;
  s.a[3] = p[kAugA10] * scale;
  s.a[4] = p[kAugA11] * scale;
  s.a[5] = (p[kAugA12] - centre) * scale;
  s.xmax = static_cast<double>(cols) * scale - 0.5;
  s.ymax = static_cast<double>(rows) * scale - 0.5;
  const double sigma = p[kAugBlur] >= kAugMinBlur ? p[kAugBlur] : 0.0;  // NaN -> 0
  s.sigma = sigma;
  s.span = aug_add(aug_mul(4.0, sigma), 1.0);
  s.n_u = aug_ceil_taps(aug_mul(s_u * scale, s.span));
  s.n_v = aug_ceil_taps(aug_mul(s_v * scale, s.span));
  const double contrast = p[kAugContrast], brightness = p[kAugBrightness], pivot = p[kAugPivot];
  s.tone = !(contrast == 1.0 && brightness == 0.0);
  s.contrast = static_cast<float>(contrast);
  s.offset = static_cast<float>(aug_add(aug_mul(pivot, 1.0 - contrast), brightness));
  s.power = !(p[kAugGamma] == 1.0);
  s.gamma = static_cast<float>(p[kAugGamma]);
  s.noisy = !(p[kAugNoise] == 0.0);
  s.noise = static_cast<float>(p[kAugNoise]);
  s.key = aug_key(p[kAugSeed]);
  return s;
}

// Output offset t and unnormalised weight g of tap k of n along one axis. The Gaussian is taken
// relative to the tap nearest the centre (|t0| = span / 2n for even n, 0 for odd), so the
// weights never all underflow.
MEDCL_HD void aug_tap(const AugSetup& s, int k, int n, double* t, double* g) {
  *t = ((static_cast<double>(k) + 0.5) / static_cast<double>(n) - 0.5) * s.span;
  const double t0 = n % 2 == 0 ? 0.5 / static_cast<double>(n) * s.span : 0.0;
  *g = s.sigma > 0.0 ? exp(-((*t) * (*t) - t0 * t0) / (2.0 * s.sigma * s.sigma)) : 1.0;
}

}  // namespace medcl
