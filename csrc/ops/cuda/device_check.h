// One check for every CUDA glue function, before its device guard: all tensor arguments on one
// CUDA device. Without it a CPU tensor among CUDA ones reached c10::cuda::CUDAGuard, whose
// "Expected a cuda device" names neither the op nor the argument.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace medcl {

// args: (name, tensor) pairs; the first tensor's device is the op's. Returns that device.
inline c10::Device check_cuda_device(const char* op,
                                     std::initializer_list<std::pair<const char*, const at::Tensor*>> args) {
  const auto& [first_name, first] = *args.begin();
  const c10::Device dev = first->device();
  std::string where;
  bool ok = dev.is_cuda();
  for (const auto& [name, t] : args) {
    where += std::string(where.empty() ? "" : ", ") + name + " on " + t->device().str();
    ok = ok && t->device() == dev;
  }
  TORCH_CHECK(ok, op, ": every tensor argument must be on one CUDA device, got ", where,
              "; move them with .to(device)");
  return dev;
}

}  // namespace medcl
