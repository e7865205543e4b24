// Schema of medcl::augment, defined once. Kernels: cpu/augment.cpp, cuda/augment.cu.
// The Python wrapper, float64 reference and fake (meta) kernel are in medcl/ops/augment.py; the
// per-view math shared by both kernels is ops/augment_math.h.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.augment");
  // images: (B, H, W) float32, zero padded, values in [0, 1]
  // sizes:  (B, 2) int64 valid rows, cols of each image (clamped into H, W)
  // params: (B, V, 13) float64 per view: affine a00 a01 a02 a10 a11 a12 (output -> input pixel
  //         centres), brightness, contrast, pivot, gamma, noise std, blur sigma, noise seed
  // returns (B, V, out_h, out_w) `dtype` (float16 or float32): (value - mean) / std
  m.def("augment(Tensor images, Tensor sizes, Tensor params, int out_h, int out_w, float mean, "
        "float std, ScalarType dtype) -> Tensor");
}
