// Argument checks and output allocation shared by the CPU and CUDA kernels of every op, declared
// in csrc/ops/<op>.h and defined here, in a file the host C++ compiler alone compiles.
//
// Why not inline in the headers: on the H200 check machine (nvcc 13.0 with GCC 13.3) a
// TORCH_CHECK message that streams a number (a double, an int64, a shape), built inside a
// translation unit compiled by nvcc, ran std::ostream's numeric insertion from a copy inside
// medcl/_C.so and crashed (SIGSEGV in basic_ostream::_M_insert<double>, seen under cuda-gdb),
// where the same check in the CPU kernels raised normally. The CUDA glue therefore only calls
// these functions, and its own messages hold strings only (medcl::num_str below).
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "ops/intensity.h"
#include "ops/sinkhorn_log.h"
#include "ops/sinkhorn_knopp.h"
#include "ops/decode_pixels.h"
#include "ops/augment.h"
#include "ops/contrastive_lse.h"

namespace medcl {

void check_voi_params(const char* op, int64_t B, const at::Device& device, const at::Tensor& params,
                      const at::Tensor& function, const at::Tensor& invert, at::ScalarType dtype) {
  TORCH_CHECK(params.dim() == 2 && params.size(0) == B && params.size(1) == 4 &&
                  params.scalar_type() == at::kDouble,
              op, ": params must be float64 (B, 4) = slope, intercept, center, width; got ",
              params.scalar_type(), " ", params.sizes());
  TORCH_CHECK(function.dim() == 1 && function.size(0) == B && function.scalar_type() == at::kInt,
              op, ": function must be int32 (B,), got ", function.scalar_type(), " ", function.sizes());
  TORCH_CHECK(invert.dim() == 1 && invert.size(0) == B && invert.scalar_type() == at::kBool,
              op, ": invert must be bool (B,), got ", invert.scalar_type(), " ", invert.sizes());
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": dtype must be float32 or float64, got ", dtype);
  for (const at::Tensor* t : {&params, &function, &invert}) {
    TORCH_CHECK(t->device() == device, op, ": all tensors must be on ", device, ", got one on ", t->device());
  }
}

void check_intensity_args(const at::Tensor& pixels, const at::Tensor& params,
                          const at::Tensor& function, const at::Tensor& invert,
                          at::ScalarType dtype) {
  TORCH_CHECK(pixels.dim() >= 1, "medcl::intensity: pixels must be (B, ...), got a 0-d tensor");
  TORCH_CHECK(at::isIntegralType(pixels.scalar_type(), /*includeBool=*/false),
              "medcl::intensity: pixels must hold integers (stored values), got ", pixels.scalar_type());
  check_voi_params("medcl::intensity", pixels.size(0), pixels.device(), params, function, invert, dtype);
}

IntensityCall prepare_intensity(const at::Tensor& pixels, const at::Tensor& params,
                                const at::Tensor& function, const at::Tensor& invert,
                                at::ScalarType dtype) {
  check_intensity_args(pixels, params, function, invert, dtype);
  const int64_t B = pixels.size(0);
  return {pixels.contiguous(), params.contiguous(), function.contiguous(), invert.contiguous(),
          at::empty(pixels.sizes(), pixels.options().dtype(dtype)), B,
          B == 0 ? 0 : pixels.numel() / B};
}

void check_sinkhorn_x(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == x.size(2), op, ": x must be (B, N, N), got ", x.sizes());
  TORCH_CHECK(x.size(1) >= 1 && x.size(1) <= kSinkhornMaxN, op, ": N must be 1 .. ", kSinkhornMaxN,
              ", got ", x.size(1));
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
}

void check_sinkhorn_iters(const char* op, int64_t n_iters) {
  TORCH_CHECK(n_iters >= 1 && n_iters <= std::numeric_limits<int>::max(), op,
              ": n_iters must be >= 1, got ", n_iters);
}

int64_t check_sinkhorn_backward(const at::Tensor& grad_out, const at::Tensor& x,
                                const at::Tensor& row_pot, const at::Tensor& col_pot) {
  const char* op = "medcl::sinkhorn_log_backward";
  check_sinkhorn_x(op, x);
  const int64_t B = x.size(0), N = x.size(1);
  TORCH_CHECK(grad_out.sizes() == x.sizes(), op, ": grad_out must be ", x.sizes(), ", got ",
              grad_out.sizes());
  TORCH_CHECK(row_pot.dim() == 3 && row_pot.size(0) == B && row_pot.size(2) == N &&
                  row_pot.size(1) >= 1 && col_pot.sizes() == row_pot.sizes(),
              op, ": row_pot and col_pot must be (B, n_iters, N) = (", B, ", T, ", N, "), got ",
              row_pot.sizes(), " and ", col_pot.sizes());
  for (const at::Tensor* t : {&grad_out, &row_pot, &col_pot}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type() && t->device() == x.device(), op,
                ": all tensors must be ", x.scalar_type(), " on ", x.device(), ", got ",
                t->scalar_type(), " on ", t->device());
  }
  check_sinkhorn_iters(op, row_pot.size(1));
  return row_pot.size(1);
}

void check_skk_scores(const char* op, const at::Tensor& scores) {
  TORCH_CHECK(scores.dim() == 2 && scores.size(1) >= 1, op, ": scores must be (B, K) with K >= 1, got ",
              scores.sizes());
  TORCH_CHECK(scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble, op,
              ": scores must be float32 or float64, got ", scores.scalar_type());
  TORCH_CHECK(scores.size(0) <= std::numeric_limits<int>::max() &&
                  scores.size(1) <= std::numeric_limits<int>::max(),
              op, ": B and K must be < 2^31, got ", scores.sizes());
}

void check_skk_eps(const char* op, double eps) {
  TORCH_CHECK(eps > 0 && std::isfinite(eps), op, ": eps must be finite and > 0, got ", eps);
}

void check_skk_iters(const char* op, int64_t n_iters) {
  TORCH_CHECK(n_iters >= 1 && n_iters <= std::numeric_limits<int>::max(), op,
              ": n_iters must be >= 1, got ", n_iters);
}

void check_skk_pass(const char* op, const at::Tensor& scores, double eps, const at::Tensor& v) {
  check_skk_scores(op, scores);
  check_skk_eps(op, eps);
  TORCH_CHECK(v.dim() == 1 && v.size(0) == scores.size(1) && v.scalar_type() == at::kDouble, op,
              ": v must be float64 (K,) = (", scores.size(1), ",), got ", v.scalar_type(), " ",
              v.sizes());
  TORCH_CHECK(v.device() == scores.device(), op, ": v must be on ", scores.device(), ", got ",
              v.device());
}

void check_decode_pixels_args(const at::Tensor& data, const at::Tensor& offsets,
                              const at::Tensor& desc, const at::Tensor& params,
                              const at::Tensor& function, const at::Tensor& invert,
                              int64_t height, int64_t width, at::ScalarType dtype) {
  TORCH_CHECK(data.dim() == 1 && data.scalar_type() == at::kByte,
              "medcl::decode_pixels: data must be uint8 (N,), got ", data.scalar_type(), " ", data.sizes());
  TORCH_CHECK(desc.dim() == 2 && desc.size(1) == 7 && desc.scalar_type() == at::kLong,
              "medcl::decode_pixels: desc must be int64 (B, 7) = rows, columns, bits_allocated, "
              "bits_stored, high_bit, signed, encoding; got ", desc.scalar_type(), " ", desc.sizes());
  const int64_t B = desc.size(0);
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) == B + 1 && offsets.scalar_type() == at::kLong,
              "medcl::decode_pixels: offsets must be int64 (B+1,), got ", offsets.scalar_type(), " ",
              offsets.sizes());
  TORCH_CHECK(height >= 0 && width >= 0, "medcl::decode_pixels: height and width must be >= 0, got ",
              height, ", ", width);
  TORCH_CHECK(offsets.device() == data.device() && desc.device() == data.device(),
              "medcl::decode_pixels: all tensors must be on ", data.device());
  check_voi_params("medcl::decode_pixels", B, data.device(), params, function, invert, dtype);
}

DecodePixelsCall prepare_decode_pixels(const at::Tensor& data, const at::Tensor& offsets,
                                       const at::Tensor& desc, const at::Tensor& params,
                                       const at::Tensor& function, const at::Tensor& invert,
                                       int64_t height, int64_t width, at::ScalarType dtype) {
  check_decode_pixels_args(data, offsets, desc, params, function, invert, height, width, dtype);
  const int64_t B = desc.size(0);
  return {data.contiguous(),
          offsets.contiguous(),
          desc.contiguous(),
          params.contiguous(),
          function.contiguous(),
          invert.contiguous(),
          at::empty({B, height, width}, data.options().dtype(dtype)),
          at::empty({B}, data.options().dtype(at::kInt)),
          B,
          height,
          width};
}

AugmentCall prepare_augment(const at::Tensor& images, const at::Tensor& sizes,
                            const at::Tensor& params, int64_t out_h, int64_t out_w,
                            double mean, double std, at::ScalarType dtype) {
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == at::kFloat,
              "medcl::augment: images must be float32 (B, H, W), got ", images.scalar_type(), " ",
              images.sizes());
  const int64_t B = images.size(0), H = images.size(1), W = images.size(2);
  TORCH_CHECK(sizes.dim() == 2 && sizes.size(0) == B && sizes.size(1) == 2 &&
                  sizes.scalar_type() == at::kLong,
              "medcl::augment: sizes must be int64 (B, 2) = valid rows, cols; got ",
              sizes.scalar_type(), " ", sizes.sizes());
  TORCH_CHECK(params.dim() == 3 && params.size(0) == B && params.size(2) == kAugParams &&
                  params.scalar_type() == at::kDouble,
              "medcl::augment: params must be float64 (B, V, 13), got ", params.scalar_type(), " ",
              params.sizes());
  TORCH_CHECK(out_h >= 1 && out_w >= 1 && out_h * out_w < (int64_t(1) << 31),
              "medcl::augment: out_h, out_w must be >= 1 with fewer than 2^31 pixels, got ", out_h,
              " x ", out_w);
  TORCH_CHECK(H * W < (int64_t(1) << 31), "medcl::augment: images of ", H, " x ", W,
              " pixels are too large (at most 2^31 - 1 pixels per image)");
  TORCH_CHECK(dtype == at::kHalf || dtype == at::kFloat,
              "medcl::augment: dtype must be float16 or float32, got ", dtype);
  TORCH_CHECK(std::isfinite(mean) && std::isfinite(std) && std != 0.0,
              "medcl::augment: mean and std must be finite and std non-zero, got ", mean, ", ", std);
  for (const at::Tensor* t : {&sizes, &params}) {
    TORCH_CHECK(t->device() == images.device(), "medcl::augment: all tensors must be on ",
                images.device(), ", got one on ", t->device());
  }
  const int64_t V = params.size(1);
  return {images.contiguous(), sizes.contiguous(), params.contiguous(),
          at::empty({B, V, out_h, out_w}, images.options().dtype(dtype)),
          B, V, H, W, out_h, out_w, static_cast<float>(mean), static_cast<float>(1.0 / std)};
}

ContrastiveCall prepare_contrastive(const char* op, const at::Tensor& a, const at::Tensor& b,
                                    const at::Tensor& keep_a, const at::Tensor& keep_b,
                                    int64_t offset, bool exclude_self) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), op,
              ": a and b must be (M, D) and (N, D), got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(0) >= 1 && b.size(0) >= 1 && a.size(1) >= 1, op, ": empty inputs ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && at::isFloatingType(a.scalar_type()), op,
              ": a and b must share one floating dtype, got ", a.scalar_type(), " and ",
              b.scalar_type());
  TORCH_CHECK(keep_a.dim() == 1 && keep_a.size(0) == a.size(0) && keep_a.scalar_type() == at::kBool,
              op, ": keep_a must be bool (M,), got ", keep_a.scalar_type(), " ", keep_a.sizes());
  TORCH_CHECK(keep_b.dim() == 1 && keep_b.size(0) == b.size(0) && keep_b.scalar_type() == at::kBool,
              op, ": keep_b must be bool (N,), got ", keep_b.scalar_type(), " ", keep_b.sizes());
  TORCH_CHECK(offset >= 0, op, ": offset must be >= 0, got ", offset);
  TORCH_CHECK(!exclude_self || a.size(0) <= b.size(0), op,
              ": exclude_self needs M <= N, got M = ", a.size(0), ", N = ", b.size(0));
  for (const at::Tensor* t : {&b, &keep_a, &keep_b}) {
    TORCH_CHECK(t->device() == a.device(), op, ": all tensors must be on ", a.device(),
                ", got one on ", t->device());
  }
  return {a.contiguous(), b.contiguous(), keep_a.contiguous(), keep_b.contiguous(),
          a.size(0), b.size(0), a.size(1),
          stat_dtype_for(a.scalar_type())};
}

ContrastiveGrads prepare_contrastive_grads(const ContrastiveCall& c, const at::Tensor& row_lse,
                                           const at::Tensor& col_lse, const at::Tensor& g_row,
                                           const at::Tensor& g_col, const at::Tensor& g_diag) {
  const char* op = "medcl::contrastive_lse_backward";
  const std::pair<const at::Tensor*, int64_t> expect[] = {
      {&row_lse, c.M}, {&col_lse, c.N}, {&g_row, c.M}, {&g_col, c.N}, {&g_diag, c.M}};
  for (const auto& [t, n] : expect) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == n && t->scalar_type() == c.stat_dtype &&
                    t->device() == c.a.device(),
                op, ": statistics and their gradients must be ", c.stat_dtype, " (", n, ",) on ",
                c.a.device(), ", got ", t->scalar_type(), " ", t->sizes(), " on ", t->device());
  }
  return {row_lse.contiguous(), col_lse.contiguous(), g_row.contiguous(), g_col.contiguous(),
          g_diag.contiguous()};
}

}  // namespace medcl
