// MEDCL_HD: marks the torch-free math shared by CPU and CUDA kernels as host+device under nvcc.
#pragma once

#if defined(__CUDACC__)
#define MEDCL_HD __host__ __device__ __forceinline__
#else
#define MEDCL_HD inline
#endif
