// Vectorisable float math shared by the CPU kernels (torch-free): an exp the compiler
// vectorises, lane-split reductions, and MEDCL_CLONES to compile the hot loops for AVX2 as well
// as the baseline (chosen at load time).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// MEDCL_CLONES_512 adds an AVX-512F clone, for exp-bound loops whose lanes fill 16 floats (it
// runs them ~1.7x faster). GCC's AVX-512F clone also contracts products into FMA, so its results
// can differ from the AVX2 clone's in the last bits; the clone is chosen once per machine.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MEDCL_CLONES __attribute__((target_clones("avx2", "default")))
#define MEDCL_CLONES_512 __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MEDCL_CLONES
#define MEDCL_CLONES_512
#endif

namespace medcl {

// exp for float that the compiler vectorises: 2^k * e^r, k = round(x log2 e), |r| <= ln2/2,
// e^r = 1 + (r + r^2 q(r)) with q the degree-5 Taylor polynomial of (e^r - 1 - r) / r^2, so the
// leading 1 is added last (max relative error 8.5e-8, 1.4 ulp; p - 1 near p = 1 stays as
// accurate as the standard library's). Inputs are clamped to the normal range, so exp(-inf)
// gives 1e-38, not 0: callers select 0 for excluded entries themselves.
inline __attribute__((always_inline)) float exp_f32(float x) {
  x = x < -87.3f ? -87.3f : x;  // ternaries, not std::min/max: those keep branches that stop vectorisation
  x = x > 88.3f ? 88.3f : x;
  const float t = x * 1.44269504088896341f;
  const float k = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
  float q = 1.0f / 5040.0f;
  q = q * r + 1.0f / 720.0f;
  q = q * r + 1.0f / 120.0f;
  q = q * r + 1.0f / 24.0f;
  q = q * r + 1.0f / 6.0f;
  q = q * r + 0.5f;
  const float p = 1.0f + (r + (r * r) * q);
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, sizeof(two_k));
  return p * two_k;
}
inline __attribute__((always_inline)) double exp_any(double x) { return std::exp(x); }
inline __attribute__((always_inline)) float exp_any(float x) { return exp_f32(x); }

template <typename T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// log for float that the compiler vectorises, for x >= 1 (a sum of exp(v - max v), the only
// place the kernels take logs): x = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, by its odd series to s^9 (relative error < 1e-7).
inline __attribute__((always_inline)) float log_f32_ge1(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  float e = static_cast<float>(((bits >> 23) & 0xff) - 127);
  const int32_t mbits = (bits & 0x7fffff) | 0x3f800000;
  float m;
  std::memcpy(&m, &mbits, sizeof(m));
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float p = s * (2.0f + s2 * (2.0f / 3.0f + s2 * (2.0f / 5.0f + s2 * (2.0f / 7.0f + s2 * (2.0f / 9.0f)))));
  return e * 0.693147180559945309f + p;
}
inline __attribute__((always_inline)) double log_ge1(double x) { return std::log(x); }
inline __attribute__((always_inline)) float log_ge1(float x) { return log_f32_ge1(x); }

// Reductions run over kLanes independent partial results so the compiler can vectorise them
// without reassociating (no -ffast-math).
constexpr int64_t kLanes = 16;

}  // namespace medcl
