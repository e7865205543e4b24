// Schema of medcl::sinkhorn_knopp (SwAV's codes with uniform marginals) and of its three passes,
// defined once. Kernels: cpu/sinkhorn_knopp.cpp, cuda/sinkhorn_knopp.cu. Public function,
// reference, fake kernels and the distributed loop: medcl/ops/sinkhorn_knopp.py.
//
// With L = scores / eps (B, K), the log-domain Sinkhorn-Knopp loop (n_iters rounds of "columns
// to mass 1/K, then rows to mass 1/B", output exp(L) * B) is carried by column potentials v (K,)
// alone: after any round the codes are the row softmax
//   Q_ij = softmax_j(L_ij - v_j)                                   (each row sums to 1)
// with, for the first round and for every later one,
//   v_j = c_j + log s_j + log K,   (m_j, s_j) = col_lse(L), c_j = m_j if finite else 0
//   v_j <- v_j + log(sum_i Q_ij) + log K - log B                   (sum over the GLOBAL batch)
// (the row potentials cancel in the softmax; sum_i Q_ij >= 1/K after any round, so the log is
// safe). Under torch.distributed the column reductions are partials of this rank's rows that
// Python combines across ranks; sinkhorn_knopp runs the whole loop for one process.
// v, m, s and the column sums are float64 for float32 scores too; the CPU and CUDA kernels take
// differences of L in float64 (or as exact float hi + lo pairs) before any float exp, so codes of
// float32 scores are accurate to ~1e-7 relative even at eps = 0.01, where L ~ 100.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(medcl, m) {
  m.set_python_module("medcl.ops.sinkhorn_knopp");
  // scores (B, K) float32 or float64, B >= 0, K >= 1; eps > 0; n_iters >= 1 -> codes (B, K) in
  // scores' dtype: the whole loop above with B as the global batch.
  m.def("sinkhorn_knopp(Tensor scores, float eps, int n_iters) -> Tensor");
  // -> (m, s), each (K,) float64: m_j = max_i L_ij (-inf when B = 0) and
  // s_j = sum_i exp(L_ij - c_j), c_j = m_j if finite else 0, over this tensor's rows.
  m.def("sinkhorn_knopp_col_lse(Tensor scores, float eps) -> (Tensor, Tensor)");
  // v (K,) float64 -> (K,) float64: sum_i softmax_j(L_ij - v_j) over this tensor's rows.
  m.def("sinkhorn_knopp_col_sums(Tensor scores, float eps, Tensor v) -> Tensor");
  // v (K,) float64 -> codes (B, K) in scores' dtype: softmax_j(L_ij - v_j).
  m.def("sinkhorn_knopp_codes(Tensor scores, float eps, Tensor v) -> Tensor");
}
