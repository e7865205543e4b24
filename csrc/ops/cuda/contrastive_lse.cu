// CUDA glue of medcl::contrastive_lse and medcl::contrastive_lse_backward: checks, device guard,
// current stream, the float workspace of the split passes, launch. Kernels:
// contrastive_lse_kernel.cuh. Tensor cores only: float16 and bfloat16 inputs, and float32 as TF32
// when torch allows TF32 matmuls; float64, float32 without TF32 and D > 1024 are refused here
// (medcl.ops.contrastive_lse.lse routes them to its reference).
#include <ATen/Context.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/version.h>

#include <string>
#include <tuple>
#include <type_traits>

#include "ops/contrastive_lse.h"
#include "ops/cuda/device_check.h"
#include "ops/cuda/contrastive_lse_kernel.cuh"

namespace medcl {
namespace {

// TF32 for float32 follows torch's own switch for CUDA matmuls. From torch 2.10 that is
// torch.backends.cuda.matmul.fp32_precision == "tf32" (which the legacy allow_tf32 = True and
// set_float32_matmul_precision("high") also set); Context::allowTF32CuBLAS() reads the same state
// there but throws when the legacy and new settings disagree, so it is used only on older torch.
bool tf32_allowed() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)
  return at::globalContext().float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) ==
         at::Float32Precision::TF32;
#else
  return at::globalContext().allowTF32CuBLAS();
#endif
}

// The CUDA-only limits of one call (prepare_contrastive has checked the rest). Messages here
// hold strings only: numbers are formatted by std::to_string (csrc/ops/checks.cpp says why). The TF32 switch is
// read by the forward only: the backward follows whatever its forward chose, so switching TF32
// off between the two (or inside a checkpointed region) does not fail the backward.
void check_cuda_call(const char* op, const ContrastiveCall& c, bool forward) {
  const at::ScalarType t = c.a.scalar_type();
  TORCH_CHECK(t != at::kDouble, op,
              ": float64 has no CUDA kernel (tensor cores only); call medcl.ops.contrastive_lse.lse, "
              "which routes float64 to the reference implementation");
  TORCH_CHECK(t == at::kHalf || t == at::kBFloat16 || t == at::kFloat, op,
              ": the CUDA kernel takes float16, bfloat16 or float32, got ", c10::toString(t));
  TORCH_CHECK(t != at::kFloat || !forward || tf32_allowed(), op,
              ": float32 inputs run on TF32 tensor cores, and TF32 matmuls are off "
              "(torch.backends.cuda.matmul.fp32_precision is not 'tf32'); call "
              "medcl.ops.contrastive_lse.lse, which routes such calls to the reference, or allow TF32 "
              "with torch.backends.cuda.matmul.fp32_precision = 'tf32' (older torch: "
              "torch.backends.cuda.matmul.allow_tf32 = True)");
  TORCH_CHECK(c.D <= cuda::contrastive::kMaxD, op, ": the CUDA kernel takes D <= ",
              std::to_string(cuda::contrastive::kMaxD), ", got D = ", std::to_string(c.D),
              "; call medcl.ops.contrastive_lse.lse, which routes larger D to the reference");
  int major = 0;
  const cudaError_t err =
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c.a.device().index());
  TORCH_CHECK(err == cudaSuccess, op, ": cudaDeviceGetAttribute failed: ", cudaGetErrorString(err));
  TORCH_CHECK(major >= 8, op, ": the CUDA kernel needs compute capability 8.0 or newer "
              "(bfloat16 and TF32 tensor cores), got ", std::to_string(major), ".x");
}

// Calls f with a null T* for the kernel's element type T of `t`.
template <typename F>
void dispatch_mma_type(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kHalf: f(static_cast<__half*>(nullptr)); break;
    case at::kBFloat16: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    case at::kFloat: f(static_cast<float*>(nullptr)); break;
    default: TORCH_CHECK(false, "medcl::contrastive_lse: no CUDA kernel for ", c10::toString(t));
  }
}

template <typename T>
const T* in_ptr(const at::Tensor& t) {  // at::Half / at::BFloat16 share __half / __nv_bfloat16's layout
  return static_cast<const T*>(t.data_ptr());
}

// The float workspace of the split passes (`floats` of them, none when 0) on a's device; the
// caching allocator orders its reuse after the launches queued on the current stream.
at::Tensor split_workspace(const ContrastiveCall& c, int64_t floats) {
  return at::empty({floats > 0 ? floats : 0}, c.a.options().dtype(at::kFloat));
}

float* workspace_ptr(at::Tensor& ws) { return ws.numel() > 0 ? ws.data_ptr<float>() : nullptr; }

// a (M, D), b (N, D), keep_a (M,), keep_b (N,) -> row_lse (M,), col_lse (N,), diag (M,) in
// stat_dtype (the kernels compute float32; float32 inputs get them as float64, see contrastive_lse.h).
std::tuple<at::Tensor, at::Tensor, at::Tensor> contrastive_lse_cuda(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& keep_a, const at::Tensor& keep_b,
    double scale, int64_t offset, bool exclude_self) {
  const char* op = "medcl::contrastive_lse";
  const c10::cuda::CUDAGuard guard(check_cuda_device(
      op, {{"a", &a}, {"b", &b}, {"keep_a", &keep_a}, {"keep_b", &keep_b}}));
  const auto c = prepare_contrastive(op, a, b, keep_a, keep_b, offset, exclude_self);
  check_cuda_call(op, c, true);
  const auto stat = c.a.options().dtype(at::kFloat);  // the kernels' statistics; stat_dtype on return
  at::Tensor row_lse = at::empty({c.M}, stat);
  at::Tensor col_lse = at::empty({c.N}, stat);
  at::Tensor diag = at::empty({c.M}, stat);
  at::Tensor ws = split_workspace(
      c, cuda::contrastive_lse_workspace_floats(c.M, c.N, c.D, c.a.device().index()));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatch_mma_type(c.a.scalar_type(), [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const cudaError_t err = cuda::launch_contrastive_lse<T>(
        in_ptr<T>(c.a), in_ptr<T>(c.b), c.keep_a.data_ptr<bool>(), c.keep_b.data_ptr<bool>(), c.M,
        c.N, c.D, static_cast<float>(scale), offset, exclude_self, row_lse.data_ptr<float>(),
        col_lse.data_ptr<float>(), diag.data_ptr<float>(), workspace_ptr(ws), ws.numel(), stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
  });
  return {row_lse.to(c.stat_dtype), col_lse.to(c.stat_dtype), diag.to(c.stat_dtype)};
}

// The forward's arguments, its statistics and their gradients -> da (M, D), db (N, D).
std::tuple<at::Tensor, at::Tensor> contrastive_lse_backward_cuda(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& keep_a, const at::Tensor& keep_b,
    double scale, int64_t offset, bool exclude_self, const at::Tensor& row_lse,
    const at::Tensor& col_lse, const at::Tensor& g_row, const at::Tensor& g_col,
    const at::Tensor& g_diag) {
  const char* op = "medcl::contrastive_lse_backward";
  const c10::cuda::CUDAGuard guard(check_cuda_device(
      op, {{"a", &a}, {"b", &b}, {"keep_a", &keep_a}, {"keep_b", &keep_b}, {"row_lse", &row_lse},
           {"col_lse", &col_lse}, {"g_row", &g_row}, {"g_col", &g_col}, {"g_diag", &g_diag}}));
  const auto c = prepare_contrastive(op, a, b, keep_a, keep_b, offset, exclude_self);
  check_cuda_call(op, c, false);
  auto s = prepare_contrastive_grads(c, row_lse, col_lse, g_row, g_col, g_diag);
  for (at::Tensor* t : {&s.row_lse, &s.col_lse, &s.g_row, &s.g_col, &s.g_diag}) {
    *t = t->to(at::kFloat).contiguous();  // float64 for float32 inputs; the kernels read float32
  }
  at::Tensor da = at::empty(c.a.sizes(), c.a.options());  // (M, D) contiguous
  at::Tensor db = at::empty(c.b.sizes(), c.b.options());  // (N, D) contiguous
  at::Tensor ws = split_workspace(
      c, cuda::contrastive_lse_backward_workspace_floats(c.M, c.N, c.D, c.a.device().index()));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatch_mma_type(c.a.scalar_type(), [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const cudaError_t err = cuda::launch_contrastive_lse_backward<T>(
        in_ptr<T>(c.a), in_ptr<T>(c.b), c.keep_a.data_ptr<bool>(), c.keep_b.data_ptr<bool>(), c.M,
        c.N, c.D, static_cast<float>(scale), offset, exclude_self, s.row_lse.data_ptr<float>(),
        s.col_lse.data_ptr<float>(), s.g_row.data_ptr<float>(), s.g_col.data_ptr<float>(),
        s.g_diag.data_ptr<float>(), static_cast<T*>(da.data_ptr()),
        static_cast<T*>(db.data_ptr()), workspace_ptr(ws), ws.numel(), stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA launch failed: ", cudaGetErrorString(err));
  });
  return {da, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CUDA, m) {
  m.impl("contrastive_lse", &contrastive_lse_cuda);
  m.impl("contrastive_lse_backward", &contrastive_lse_backward_cuda);
}

}  // namespace medcl
