#include "cuda/runtime.h"

#include <cuda_bf16.h>

#include "cuda/check.h"

namespace ssa::cuda {
namespace {

class DeviceAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* ptr = nullptr;
    if (bytes > 0) CUDA_CHECK(cudaMalloc(&ptr, bytes));
    return ptr;
  }
  void deallocate(void* ptr, size_t) override {
    if (ptr != nullptr) cudaFree(ptr);
  }
};

template <typename T> __device__ float load_as_float(const T* p, int64_t i) {
  return static_cast<float>(p[i]);
}
template <> __device__ float load_as_float(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <typename T> __device__ void store_float(T* p, int64_t i, float v) { p[i] = static_cast<T>(v); }
template <> __device__ void store_float(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}

// f64 <-> f64/i32 keep double precision; every other pair goes through float.
template <typename To, typename From>
__global__ void convert_kernel(To* dst, const From* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<To, double> && !std::is_same_v<From, __nv_bfloat16>) {
      dst[i] = static_cast<double>(src[i]);
    } else if constexpr (std::is_same_v<From, double> && !std::is_same_v<To, __nv_bfloat16>) {
      dst[i] = static_cast<To>(src[i]);
    } else {
      store_float(dst, i, load_as_float(src, i));
    }
  }
}

template <typename To, typename From>
void launch_convert(void* dst, const void* src, int64_t n) {
  int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 4096));
  convert_kernel<<<blocks, 256>>>(static_cast<To*>(dst), static_cast<const From*>(src), n);
  CUDA_CHECK(cudaGetLastError());
}

template <typename To>
void convert_to(void* dst, const void* src, DType src_dtype, int64_t n) {
  switch (src_dtype) {
    case DType::f32: launch_convert<To, float>(dst, src, n); break;
    case DType::f64: launch_convert<To, double>(dst, src, n); break;
    case DType::bf16: launch_convert<To, __nv_bfloat16>(dst, src, n); break;
    case DType::i32: launch_convert<To, int32_t>(dst, src, n); break;
  }
}

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

const char* no_device_reason() {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return cudaGetErrorString(status);
  }
  return count == 0 ? "no CUDA device present" : "";
}

Allocator& device_allocator() {
  static DeviceAllocator allocator;
  return allocator;
}

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes) {
  cudaMemcpyKind kind = dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice
                                                       : cudaMemcpyHostToDevice)
                                      : (src_on_device ? cudaMemcpyDeviceToHost
                                                       : cudaMemcpyHostToHost);
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
}

void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  if (n == 0) return;
  switch (dst_dtype) {
    case DType::f32: convert_to<float>(dst, src, src_dtype, n); break;
    case DType::f64: convert_to<double>(dst, src, src_dtype, n); break;
    case DType::bf16: convert_to<__nv_bfloat16>(dst, src, src_dtype, n); break;
    case DType::i32: convert_to<int32_t>(dst, src, src_dtype, n); break;
  }
}

}  // namespace ssa::cuda
