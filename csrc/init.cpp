// medcl._C: importing this module runs the static TORCH_LIBRARY registrations of every op
// compiled into it (csrc/ops/*.cpp schemas, csrc/ops/cpu and csrc/ops/cuda kernels).
// It exposes no Python functions of its own; ops are reached through torch.ops.medcl.*.
#include <Python.h>

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {
      PyModuleDef_HEAD_INIT, "_C", "medcl compiled ops (see torch.ops.medcl)", -1, nullptr,
  };
  return PyModule_Create(&module);
}
