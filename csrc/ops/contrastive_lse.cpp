// Schemas of the fused contrastive-loss statistics, defined once.
// Kernels: cpu/contrastive_lse.cpp, cuda/contrastive_lse.cu. Python wrapper, reference, fake kernels and
// autograd: medcl/ops/contrastive_lse.py; the losses contrastive_loss and ntxent_loss are built
// from these statistics in medcl/losses/infonce.py and medcl/losses/ntxent.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.contrastive_lse");
  // a (M, D), b (N, D): one floating dtype; keep_a (M,), keep_b (N,) bool.
  // kept(i, j) = keep_a[i] && keep_b[j] && !(exclude_self && i == j)
  // S_ij = scale * a_i . b_j   (fp32 accumulation for half types)
  // returns row_lse (M) = log sum_{j kept} exp S_ij, col_lse (N) = log sum_{i kept} exp S_ij
  // (-inf where nothing is kept), diag (M) = S_{i, (i + offset) mod N} whatever the masks;
  // all three float64 for float32 and float64 inputs, float32 for half types.
  // Memory: O(M + N) besides the inputs.
  m.def("contrastive_lse(Tensor a, Tensor b, Tensor keep_a, Tensor keep_b, float scale, "
        "int offset, bool exclude_self) -> (Tensor, Tensor, Tensor)");
  // Given the statistics and their upstream gradients g_row (M), g_col (N), g_diag (M):
  //   dS_ij = kept(i,j) * (g_row_i exp(S_ij - row_lse_i) + g_col_j exp(S_ij - col_lse_j))
  //           + [j == (i + offset) mod N] * g_diag_i          (a term whose g is 0 counts 0)
  //   da = scale * dS b  (M, D),  db = scale * dS^T a  (N, D), in the dtype of a and b.
  // Recomputes S tile by tile: no (M, N) buffer.
  m.def("contrastive_lse_backward(Tensor a, Tensor b, Tensor keep_a, Tensor keep_b, float scale, "
        "int offset, bool exclude_self, Tensor row_lse, Tensor col_lse, Tensor g_row, "
        "Tensor g_col, Tensor g_diag) -> (Tensor, Tensor)");
}
