#include "cuda/elementwise.h"

#include <algorithm>

#include "cuda/check.h"

namespace ssa::cuda {
namespace {

template <typename T>
__global__ void add_inplace_kernel(T* dst, const T* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

int blocks_for(int64_t n) { return static_cast<int>(std::clamp<int64_t>((n + 255) / 256, 1, 4096)); }

}  // namespace

void add_inplace(void* dst, const void* src, DType dtype, int64_t n) {
  if (n == 0) return;
  if (dtype == DType::f32) {
    add_inplace_kernel<<<blocks_for(n), 256>>>(static_cast<float*>(dst),
                                               static_cast<const float*>(src), n);
  } else {
    SSA_CHECK(dtype == DType::f64, "add_inplace takes f32 or f64 (dtype code {})", static_cast<int>(dtype));
    add_inplace_kernel<<<blocks_for(n), 256>>>(static_cast<double*>(dst),
                                               static_cast<const double*>(src), n);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace ssa::cuda
