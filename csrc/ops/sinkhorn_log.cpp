// Schema of medcl::sinkhorn_log (the log-domain Sinkhorn operator), defined once.
// Kernels: cpu/sinkhorn_log.cpp, cuda/sinkhorn_log.cu. Python wrapper (Gumbel noise, temperature),
// reference, fake kernels and autograd: medcl/ops/sinkhorn_log.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.sinkhorn_log");
  // x (B, N, N) floating (float32 or float64), n_iters >= 1. Iteration t = 0 .. n_iters-1:
  //   r_t = logsumexp over columns of x (per row i), x <- x - r_t[:, :, None]     (rows sum to 1)
  //   c_t = logsumexp over rows of x (per column j), x <- x - c_t[:, None, :]     (columns sum to 1)
  // returns out (B, N, N) = the final x (log of a nearly doubly-stochastic matrix), and the
  // potentials row_pot (B, n_iters, N) = r_t, col_pot (B, n_iters, N) = c_t, in x's dtype.
  m.def("sinkhorn_log(Tensor x, int n_iters) -> (Tensor, Tensor, Tensor)");
  // Exact gradient of the unrolled iterations from x, the potentials and grad_out (B, N, N):
  // each iterate is recomputed from x and the running sums of the potentials, so the backward
  // keeps O(B N n_iters) state, not every (B, N, N) iterate. Returns grad_x (B, N, N).
  m.def("sinkhorn_log_backward(Tensor grad_out, Tensor x, Tensor row_pot, Tensor col_pot) -> Tensor");
}
