// The per-pixel math of medcl::intensity, shared by the CPU and CUDA kernels (torch-free).
//
//   modality value  x = slope * stored + intercept                 (DICOM PS3.3 C.11.1, rescale)
//   VOI, output in [0, 1] (PS3.3 C.11.2.1.2; pydicom's range y_min..y_max mapped to 0..1):
//     LINEAR        c' = c - 0.5, w' = w - 1:  x <= c' - w'/2 -> 0;  x > c' + w'/2 -> 1;
//                                               else (x - c') / w' + 0.5
//     LINEAR_EXACT  the same with c' = c, w' = w
//     SIGMOID       1 / (1 + exp(-4 (x - c) / w))
//   MONOCHROME1     y -> 1 - y (after windowing; only when a VOI function is applied)
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/hd.h"

namespace medcl {

// Codes of the `function` tensor of medcl::intensity (keep in sync with medcl/ops/intensity.py).
enum VoiFunction : int32_t { kVoiNone = 0, kVoiLinear = 1, kVoiLinearExact = 2, kVoiSigmoid = 3 };

// slope * stored + intercept rounded twice, as the CPU and the float64 reference compute it: nvcc
// contracts a * b + c into one fused multiply-add by default, whose single rounding moved the
// modality value by an ulp and a width-1 LINEAR_EXACT window's output by 1e-11 (seen on an H200).
template <typename Acc>
MEDCL_HD Acc mul_add_rounded(Acc a, Acc b, Acc c) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(Acc) == sizeof(double)) {
    return __dadd_rn(__dmul_rn(a, b), c);
  } else {
    return __fadd_rn(__fmul_rn(a, b), c);
  }
#else
  return a * b + c;
#endif
}

template <typename Acc>
MEDCL_HD Acc intensity_value(Acc stored, Acc slope, Acc intercept, Acc center, Acc width,
                             int32_t function, bool invert) {
  const Acc x = mul_add_rounded(slope, stored, intercept);
  Acc y;
  if (function == kVoiLinear || function == kVoiLinearExact) {
    const Acc c = function == kVoiLinear ? center - Acc(0.5) : center;
    const Acc w = function == kVoiLinear ? width - Acc(1) : width;
    if (x <= c - w / Acc(2)) {
      y = Acc(0);
    } else if (x > c + w / Acc(2)) {
      y = Acc(1);
    } else {
      y = (x - c) / w + Acc(0.5);  // w > 0 here: for w <= 0 one of the branches above is taken
    }
  } else if (function == kVoiSigmoid) {
    y = Acc(1) / (Acc(1) + exp(Acc(-4) * (x - center) / width));
  } else {
    return x;  // kVoiNone: modality values, no inversion
  }
  return invert ? Acc(1) - y : y;
}

}  // namespace medcl
