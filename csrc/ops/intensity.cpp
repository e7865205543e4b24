// Schema of medcl::intensity, defined once. Kernels: cpu/intensity.cpp, cuda/intensity.cu.
// The Python wrapper, reference implementation and fake (meta) kernel are in medcl/ops/intensity.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.intensity");
  // pixels:   (B, ...) integer stored values (uint8, int8, uint16, int16, int32, int64)
  // params:   (B, 4) float64: rescale slope, rescale intercept, window center, window width
  // function: (B,) int32: 0 none, 1 LINEAR, 2 LINEAR_EXACT, 3 SIGMOID
  // invert:   (B,) bool: MONOCHROME1 inversion after windowing
  // returns   pixels' shape, dtype `dtype` (float32 or float64)
  m.def("intensity(Tensor pixels, Tensor params, Tensor function, Tensor invert, ScalarType dtype) -> Tensor");
}
