// Vectorisable float math shared by the CPU kernels (torch-free): an exp the compiler
// vectorises, lane-split reductions, and MEDCL_CLONES to compile the hot loops for AVX2 as well
// as the baseline (chosen at load time).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MEDCL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MEDCL_CLONES
#endif

namespace medcl {

// exp for float that the compiler vectorises: 2^k * e^r, k = round(x log2 e), |r| <= ln2/2,
// e^r = 1 + (r + r^2 q(r)) with q the degree-5 Taylor polynomial of (e^r - 1 - r) / r^2, so the
// leading 1 is added last (max relative error 8.5e-8, 1.4 ulp; p - 1 near p = 1 stays as
// accurate as the standard library's). Inputs are clamped to the normal range, so exp(-inf)
// gives 1e-38, not 0: callers select 0 for excluded entries themselves.
inline __attribute__((always_inline)) float exp_f32(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
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

// Reductions run over kLanes independent partial results so the compiler can vectorise them
// without reassociating (no -ffast-math).
constexpr int64_t kLanes = 16;

}  // namespace medcl
