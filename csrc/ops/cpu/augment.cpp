// CPU kernel of medcl::augment. Each image's box pyramid is built once (only the levels its
// views read), then every (image, view, block of output rows) runs in parallel. Along a row the
// output pixels go in chunks of 64: per tap, one vectorised loop computes the bilinear
// coordinates (double) and weights, one reads the four neighbours (scalar loads: on the CPUs we
// target a gather is no faster) and one blends them; the tone curve, the noise and the fp16
// conversion are vectorised too. MEDCL_CLONES_512 compiles the loops for AVX-512, AVX2 and the
// baseline.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/augment.h"
#include "ops/augment_math.h"
#include "ops/cpu/vec_math.h"

namespace medcl {
namespace {

constexpr int kChunk = 64;

struct Plan {
  AugSetup s;
  bool empty;                      // no valid pixels: every tap reads 0
  const float* img;                // level s.level of the view's image
  int32_t stride, dx, dy;          // row stride; offsets of the right / lower neighbour (0 on a 1-px level)
  double tu[kAugMaxTaps], tv[kAugMaxTaps];  // tap offsets (output px)
  double gu[kAugMaxTaps], gv[kAugMaxTaps];  // normalised tap weights per axis
};

inline __attribute__((always_inline)) float clamp01(float x) {
  return !(x > 0.f) ? 0.f : (x > 1.f ? 1.f : x);  // NaN -> 0
}

// cos(2 pi u) for u in [0, 1): reduced to |2 pi b| <= pi/2, Taylor series to x^12 (error < 1e-8).
inline __attribute__((always_inline)) float cos_2pi(float u) {
  const float t = u - 0.5f;  // cos(2 pi u) = -cos(2 pi |t|)
  const float a = t < 0.f ? -t : t;
  const bool far = a > 0.25f;  // cos(2 pi a) = -cos(2 pi (1/2 - a))
  const float x = 6.28318530717958648f * (far ? 0.5f - a : a), x2 = x * x;
  const float c = 1.f + x2 * (-0.5f + x2 * (1.f / 24 + x2 * (-1.f / 720 + x2 * (1.f / 40320 +
                  x2 * (-1.f / 3628800 + x2 * (1.f / 479001600))))));
  return far ? c : -c;
}

// float -> IEEE half bits, round to nearest even, branch-free so the store loop vectorises
// (F. Giesen's float_to_half_fast3_rtne).
inline __attribute__((always_inline)) uint16_t half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  float af;
  std::memcpy(&af, &a, sizeof(af));
  const float sub = af + 0.5f;  // subnormal or zero result: the add aligns its 10 bits
  uint32_t subu;
  std::memcpy(&subu, &sub, sizeof(subu));
  const uint32_t r_sub = subu - 0x3f000000u;
  const uint32_t r_norm = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const uint32_t r_big = a > 0x7f800000u ? 0x7e00u : 0x7c00u;  // NaN, inf
  const uint32_t r = a >= (143u << 23) ? r_big : (a < (113u << 23) ? r_sub : r_norm);
  return static_cast<uint16_t>(r | sign);
}

// acc[i] = the antialiased sample of output pixel (u0 + i, v), i < n.
MEDCL_CLONES_512 void sample_chunk(const Plan& p, int64_t v, int64_t u0, int n, float* __restrict acc) {
  const AugSetup& s = p.s;
  const double* a = s.a;
  const double row_x = a[1] * static_cast<double>(v) + a[2], row_y = a[4] * static_cast<double>(v) + a[5];
  const double xhi = std::max(s.cols - 2, 0), yhi = std::max(s.rows - 2, 0);
  const double xmax = s.xmax, ymax = s.ymax;
  const float* __restrict img = p.img;
  const int32_t stride = p.stride, dx = p.dx, dy = p.dy;
  const double ud0 = static_cast<double>(u0);
  for (int i = 0; i < n; ++i) acc[i] = 0.f;
  for (int l = 0; l < s.n_v; ++l) {
    for (int k = 0; k < s.n_u; ++k) {
      const double ox = row_x + (a[0] * p.tu[k] + a[1] * p.tv[l]);
      const double oy = row_y + (a[3] * p.tu[k] + a[4] * p.tv[l]);
      const float w = static_cast<float>(p.gu[k] * p.gv[l]);
      for (int i = 0; i < n; ++i) {
        const double u = ud0 + static_cast<double>(i);  // int32 -> double: AVX-512F has no int64 -> double
        const double x = a[0] * u + ox, y = a[3] * u + oy;
        const bool inside = (x >= -0.5) & (x <= xmax) & (y >= -0.5) & (y <= ymax);  // &, not &&: vectorises
        double x0 = std::floor(x), y0 = std::floor(y);
        x0 = !(x0 >= 0.0) ? 0.0 : (x0 > xhi ? xhi : x0);  // NaN -> 0: never an out-of-range read
        y0 = !(y0 >= 0.0) ? 0.0 : (y0 > yhi ? yhi : y0);
        const float ex = static_cast<float>(x - x0), ey = static_cast<float>(y - y0);
        const float ax = !(ex > 0.f) ? 0.f : (ex > 1.f ? 1.f : ex);
        const float ay = !(ey > 0.f) ? 0.f : (ey > 1.f ? 1.f : ey);
        const float* q = img + (static_cast<int32_t>(y0) * stride + static_cast<int32_t>(x0));
        const float top = q[0] * (1.f - ax) + q[dx] * ax;
        const float bot = q[dy] * (1.f - ax) + q[dy + dx] * ax;
        acc[i] += (inside ? w : 0.f) * (top * (1.f - ay) + bot * ay);
      }
    }
  }
}

// val[i] = the normalised output of pixel i0 + i (i0 = row * out_w + column) from its sample.
MEDCL_CLONES_512 void finish_chunk(const AugSetup& s, int64_t i0, int n, const float* __restrict acc,
                                   float mean, float inv_std, float* __restrict val) {
  for (int i = 0; i < n; ++i) val[i] = clamp01(acc[i]);
  if (s.tone) {
    for (int i = 0; i < n; ++i) val[i] = clamp01(val[i] * s.contrast + s.offset);
  }
  // log_f32_ge1 holds for any positive normal float, not only >= 1 (its range reduction is exact).
  if (s.power) {  // x^gamma = exp(gamma ln x)
    for (int i = 0; i < n; ++i) {
      const float x = val[i];
      const float y = exp_f32(s.gamma * log_f32_ge1(x > 1e-30f ? x : 1e-30f));
      val[i] = x > 0.f ? y : 0.f;
    }
  }
  if (s.noisy) {
    for (int i = 0; i < n; ++i) {
      float u1, u2;
      aug_uniforms(s.key, static_cast<uint32_t>(i0 + i), &u1, &u2);
      // sqrt(r) as exp(ln(r) / 2): std::sqrt keeps an errno branch that stops vectorisation.
      const float r = -2.f * log_f32_ge1(u1);
      const float z = exp_f32(0.5f * log_f32_ge1(r > 1e-30f ? r : 1e-30f)) * cos_2pi(u2);
      val[i] = clamp01(val[i] + s.noise * z);
    }
  }
  for (int i = 0; i < n; ++i) val[i] = (val[i] - mean) * inv_std;
}

MEDCL_CLONES_512 void store_chunk(const float* __restrict val, int n, float* __restrict dst) {
  for (int i = 0; i < n; ++i) dst[i] = val[i];
}
MEDCL_CLONES_512 void store_chunk(const float* __restrict val, int n, uint16_t* __restrict dst) {
  for (int i = 0; i < n; ++i) dst[i] = half_bits(val[i]);
}

// One row of pyramid level l from rows r0, r1 of level l - 1 (r1 null: r0 is the last valid
// row), cols_s valid columns there: 2x2 means over the valid pixels.
MEDCL_CLONES_512 void down_row(const float* __restrict r0, const float* __restrict r1, int64_t cols_s,
                               float* __restrict dst) {
  const int64_t full = cols_s / 2;
  if (r1 != nullptr) {
    for (int64_t i = 0; i < full; ++i) dst[i] = ((r0[2 * i] + r0[2 * i + 1]) + (r1[2 * i] + r1[2 * i + 1])) * 0.25f;
    if (cols_s % 2) dst[full] = (r0[2 * full] + r1[2 * full]) * 0.5f;
  } else {
    for (int64_t i = 0; i < full; ++i) dst[i] = (r0[2 * i] + r0[2 * i + 1]) * 0.5f;
    if (cols_s % 2) dst[full] = r0[2 * full];
  }
}

template <typename Store>
void run_views(const AugmentCall& c, const std::vector<Plan>& plans, Store* out) {
  const int64_t rows_per = std::max<int64_t>(1, 4096 / c.out_w);  // ~4k output pixels per task
  const int64_t blocks = (c.out_h + rows_per - 1) / rows_per;
  at::parallel_for(0, c.B * c.V * blocks, 1, [&](int64_t begin, int64_t end) {
    alignas(64) float acc[kChunk], val[kChunk];
    for (int64_t it = begin; it < end; ++it) {
      const int64_t bv = it / blocks, v0 = (it % blocks) * rows_per;
      const Plan& p = plans[bv];
      Store* dst = out + bv * c.out_h * c.out_w;
      for (int64_t v = v0; v < std::min(c.out_h, v0 + rows_per); ++v) {
        for (int64_t u0 = 0; u0 < c.out_w; u0 += kChunk) {
          const int n = static_cast<int>(std::min<int64_t>(kChunk, c.out_w - u0));
          if (p.empty) {
            std::fill(acc, acc + n, 0.f);
          } else {
            sample_chunk(p, v, u0, n, acc);
          }
          finish_chunk(p.s, v * c.out_w + u0, n, acc, c.mean, c.inv_std, val);
          store_chunk(val, n, dst + v * c.out_w + u0);
        }
      }
    }
  });
}

at::Tensor augment_cpu(const at::Tensor& images, const at::Tensor& sizes, const at::Tensor& params,
                       int64_t out_h, int64_t out_w, double mean, double std, at::ScalarType dtype) {
  auto c = prepare_augment(images, sizes, params, out_h, out_w, mean, std, dtype);
  if (c.out.numel() == 0) return c.out;
  const int64_t* sz = c.sizes.data_ptr<int64_t>();
  const double* prm = c.params.data_ptr<double>();
  // Per-view plans (this loop is not cloned: no FMA, the same level and tap counts as the reference).
  std::vector<Plan> plans(c.B * c.V);
  std::vector<int> top(c.B, 0);  // deepest level each image needs
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t rows = std::clamp<int64_t>(sz[2 * b], 0, c.H), cols = std::clamp<int64_t>(sz[2 * b + 1], 0, c.W);
    for (int64_t v = 0; v < c.V; ++v) {
      Plan& p = plans[b * c.V + v];
      p.s = aug_setup(prm + (b * c.V + v) * kAugParams, rows, cols);
      p.empty = rows == 0 || cols == 0;
      if (p.empty) p.s.level = 0;
      top[b] = std::max(top[b], p.s.level);
      double su = 0, sv = 0;
      for (int k = 0; k < p.s.n_u; ++k) { aug_tap(p.s, k, p.s.n_u, &p.tu[k], &p.gu[k]); su += p.gu[k]; }
      for (int k = 0; k < p.s.n_v; ++k) { aug_tap(p.s, k, p.s.n_v, &p.tv[k], &p.gv[k]); sv += p.gv[k]; }
      for (int k = 0; k < p.s.n_u; ++k) p.gu[k] /= su;
      for (int k = 0; k < p.s.n_v; ++k) p.gv[k] /= sv;
    }
  }
  // The pyramid: levels[l] is (B, ceil(H / 2^l), ceil(W / 2^l)); only valid regions are written or read.
  const int deepest = *std::max_element(top.begin(), top.end());
  std::vector<at::Tensor> levels{c.images};
  for (int l = 1; l <= deepest; ++l) {
    const int64_t Hs = levels[l - 1].size(1), Ws = levels[l - 1].size(2);
    const int64_t Hl = aug_extent(c.H, l), Wl = aug_extent(c.W, l);
    levels.push_back(at::empty({c.B, Hl, Wl}, c.images.options()));
    const float* src = levels[l - 1].data_ptr<float>();
    float* dst = levels[l].data_ptr<float>();
    at::parallel_for(0, c.B * Hl, std::max<int64_t>(1, 16384 / std::max<int64_t>(Ws, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t it = begin; it < end; ++it) {
        const int64_t b = it / Hl, j = it % Hl;
        if (top[b] < l) continue;
        const int64_t rows_s = aug_extent(std::clamp<int64_t>(sz[2 * b], 0, c.H), l - 1);
        const int64_t cols_s = aug_extent(std::clamp<int64_t>(sz[2 * b + 1], 0, c.W), l - 1);
        if (2 * j >= rows_s) continue;
        const float* r0 = src + (b * Hs + 2 * j) * Ws;
        down_row(r0, 2 * j + 1 < rows_s ? r0 + Ws : nullptr, cols_s, dst + (b * Hl + j) * Wl);
      }
    });
  }
  for (int64_t b = 0; b < c.B; ++b) {
    for (int64_t v = 0; v < c.V; ++v) {
      Plan& p = plans[b * c.V + v];
      const at::Tensor& lev = levels[p.s.level];
      p.stride = static_cast<int32_t>(lev.size(2));
      p.img = lev.data_ptr<float>() + b * lev.size(1) * lev.size(2);
      p.dx = p.s.cols > 1 ? 1 : 0;
      p.dy = p.s.rows > 1 ? p.stride : 0;
    }
  }
  if (dtype == at::kFloat) {
    run_views(c, plans, c.out.data_ptr<float>());
  } else {
    run_views(c, plans, reinterpret_cast<uint16_t*>(c.out.data_ptr<at::Half>()));
  }
  return c.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) { m.impl("augment", &augment_cpu); }

}  // namespace medcl
