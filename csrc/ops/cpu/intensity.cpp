// CPU kernel of medcl::intensity: one pass over the batch, parallel over images and pixels.
#include <ATen/Dispatch_v2.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/intensity.h"
#include "ops/intensity_math.h"

namespace medcl {
namespace {

template <typename In, typename Out>
void intensity_cpu_impl(const In* px, const double* params, const int32_t* function,
                        const bool* invert, Out* out, int64_t B, int64_t N) {
  // Parallel over the flattened (image, pixel) range so one large image or many small ones
  // both use every core; parameters are looked up per element's image.
  const int64_t grain = 1 << 14;
  at::parallel_for(0, B * N, grain, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    while (i < end) {
      const int64_t b = i / N;
      const int64_t stop = std::min(end, (b + 1) * N);
      const double* p = params + 4 * b;
      const int32_t fn = function[b];
      const bool inv = invert[b];
      for (; i < stop; ++i) {
        out[i] = static_cast<Out>(
            intensity_value<double>(static_cast<double>(px[i]), p[0], p[1], p[2], p[3], fn, inv));
      }
    }
  });
}

at::Tensor intensity_cpu(const at::Tensor& pixels, const at::Tensor& params,
                         const at::Tensor& function, const at::Tensor& invert,
                         at::ScalarType dtype) {
  auto c = prepare_intensity(pixels, params, function, invert, dtype);
  if (c.out.numel() == 0) return c.out;
  MEDCL_DISPATCH_PIXEL_TYPES(c.pixels.scalar_type(), "medcl::intensity", [&] {
    using In = scalar_t;
    const auto in = c.inputs<In>();
    if (dtype == at::kFloat) {
      intensity_cpu_impl<In, float>(in.pixels, in.params, in.function, in.invert,
                                    c.out.data_ptr<float>(), c.B, c.N);
    } else {
      intensity_cpu_impl<In, double>(in.pixels, in.params, in.function, in.invert,
                                     c.out.data_ptr<double>(), c.B, c.N);
    }
  });
  return c.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(medcl, CPU, m) { m.impl("intensity", &intensity_cpu); }

}  // namespace medcl
