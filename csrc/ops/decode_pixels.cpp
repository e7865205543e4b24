// Schema of medcl::decode_pixels, defined once. Kernels: cpu/decode_pixels.cpp, cuda/decode_pixels.cu.
// The Python wrapper, reference implementation and fake (meta) kernel are in medcl/ops/decode_pixels.py;
// the per-image rules shared by both kernels in decode_pixels_math.h.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.decode_pixels");
  // data:     (N,) uint8, every image's bytes concatenated (native pixels or an RLE frame)
  // offsets:  (B+1,) int64, image b is data[offsets[b]:offsets[b+1]]
  // desc:     (B, 7) int64: rows, columns, bits_allocated (8|16|32), bits_stored, high_bit,
  //           signed (0|1), encoding (0 native LE, 1 native BE, 2 RLE Lossless)
  // params:   (B, 4) float64: rescale slope, rescale intercept, window center, window width
  // function: (B,) int32: 0 none, 1 LINEAR, 2 LINEAR_EXACT, 3 SIGMOID, 4 MINMAX
  // invert:   (B,) bool: MONOCHROME1 inversion after windowing
  // returns   images (B, height, width) `dtype` (float32 or float64), image b in [:rows, :cols],
  //           zeros elsewhere; status (B,) int32, 0 ok (else the image is all zeros)
  m.def("decode_pixels(Tensor data, Tensor offsets, Tensor desc, Tensor params, Tensor function, "
        "Tensor invert, int height, int width, ScalarType dtype) -> (Tensor, Tensor)");
}
