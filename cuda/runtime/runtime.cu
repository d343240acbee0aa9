#include <cstring>
#include <type_traits>

#include "core/random_draws.h"
#include "cuda/device.cuh"
#include "cuda/runtime/runtime.h"

namespace ssa::cuda {
namespace {

// Element i copies unit i % units of row i / units (a kernel, where cudaMemcpy2DAsync would go
// through a copy engine).
template <typename Unit>
struct CopyRowUnits {
  char* dst;
  const char* src;
  size_t dst_pitch, src_pitch;
  int64_t units;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / units, unit = i - row * units;
    reinterpret_cast<Unit*>(dst + row * dst_pitch)[unit] =
        reinterpret_cast<const Unit*>(src + row * src_pitch)[unit];
  }
};

template <typename T>
__device__ float as_float(T x) {
  return static_cast<float>(x);
}
__device__ float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ T float_as(float x) {
  return static_cast<T>(x);
}
template <>
__device__ __nv_bfloat16 float_as<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

// `value` as To, rounded as core's CPU conversion rounds it: pairs involving bf16 go through
// float; the others convert directly (f64 keeps its precision).
template <typename To, typename From>
__device__ To converted(From value) {
  if constexpr (std::is_same_v<To, __nv_bfloat16> || std::is_same_v<From, __nv_bfloat16>)
    return float_as<To>(as_float(value));
  else
    return static_cast<To>(value);
}

template <typename To, typename From>
struct Convert {
  To* dst;
  const From* src;
  __device__ void operator()(int64_t i) const { dst[i] = converted<To>(src[i]); }
};

template <typename To>
void convert_to(void* dst, const void* src, DType src_dtype, int64_t n) {
  auto run = [&](auto from) {
    using From = decltype(from);
    for_each(n, Convert<To, From>{static_cast<To*>(dst), static_cast<const From*>(src)});
  };
  switch (src_dtype) {
    case DType::f32:
      run(float{});
      break;
    case DType::f64:
      run(double{});
      break;
    case DType::bf16:
      run(__nv_bfloat16{});
      break;
    case DType::i32:
      run(int32_t{});
      break;
  }
}

template <typename Word>
struct FillWords {
  Word* dst;
  Word value;
  __device__ void operator()(int64_t i) const { dst[i] = value; }
};

// The bit pattern of `value` in dtype, as core's CPU conversion writes it.
uint64_t bits_of(double value, DType dtype) {
  uint64_t bits = 0;
  auto put = [&](auto typed) { std::memcpy(&bits, &typed, sizeof(typed)); };
  switch (dtype) {
    case DType::f32:
      put(static_cast<float>(value));
      break;
    case DType::f64:
      put(value);
      break;
    case DType::bf16:
      put(bf16(static_cast<float>(value)).bits);
      break;
    case DType::i32:
      put(static_cast<int32_t>(value));
      break;
  }
  return bits;
}

template <typename Word>
void fill_words(void* dst, uint64_t bits, int64_t n) {
  for_each(n, FillWords<Word>{static_cast<Word*>(dst), static_cast<Word>(bits)});
}

// dst[i] = draw(Philox block first + i) rounded to T as core's CPU fill rounds it.
template <typename T>
struct FillRandom {
  T* dst;
  uint64_t seed, first;
  Distribution distribution;
  __device__ void operator()(int64_t i) const {
    dst[i] = converted<T>(draw(distribution, philox_at(seed, first + static_cast<uint64_t>(i))));
  }
};

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

std::string current_device_description() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp properties{};
  CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return std::string(properties.name) + ", " + std::to_string(properties.totalGlobalMem >> 30) +
         " GiB (device " + std::to_string(device) + ")";
}

// A host buffer handed to cudaMemcpyAsync may still be read after the call returns (pageable
// memory is staged asynchronously), so copies touching the host end with a stream sync.
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes) {
  cudaMemcpyKind kind = dst_on_device
                            ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                            : (src_on_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, compute_stream()));
  if (!dst_on_device || !src_on_device) CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
}

void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
               size_t rows) {
  const auto launch = [&](auto unit_zero) {
    using Unit = decltype(unit_zero);
    const int64_t units = static_cast<int64_t>(row_bytes / sizeof(Unit));
    for_each(static_cast<int64_t>(rows) * units,
             CopyRowUnits<Unit>{static_cast<char*>(dst), static_cast<const char*>(src), dst_pitch,
                                src_pitch, units});
  };
  // The widest unit that every address, pitch and row length is a multiple of.
  const uintptr_t all = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) |
                        dst_pitch | src_pitch | row_bytes;
  if (all % 16 == 0)
    launch(uint4{});
  else if (all % 8 == 0)
    launch(uint2{});
  else if (all % 4 == 0)
    launch(uint32_t{});
  else if (all % 2 == 0)
    launch(uint16_t{});
  else
    launch(uint8_t{});
}

void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  switch (dst_dtype) {
    case DType::f32:
      convert_to<float>(dst, src, src_dtype, n);
      break;
    case DType::f64:
      convert_to<double>(dst, src, src_dtype, n);
      break;
    case DType::bf16:
      convert_to<__nv_bfloat16>(dst, src, src_dtype, n);
      break;
    case DType::i32:
      convert_to<int32_t>(dst, src, src_dtype, n);
      break;
  }
}

void fill(void* dst, DType dtype, double value, int64_t n) {
  const uint64_t bits = bits_of(value, dtype);
  if (bits == 0) {
    CUDA_CHECK(
        cudaMemsetAsync(dst, 0, static_cast<size_t>(n) * dtype_size(dtype), compute_stream()));
    return;
  }
  switch (dtype_size(dtype)) {
    case 2:
      fill_words<uint16_t>(dst, bits, n);
      break;
    case 4:
      fill_words<uint32_t>(dst, bits, n);
      break;
    default:
      fill_words<uint64_t>(dst, bits, n);
      break;
  }
}

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, uint64_t first,
                 const Distribution& distribution) {
  auto run = [&](auto typed) {
    using T = decltype(typed);
    for_each(n, FillRandom<T>{static_cast<T*>(dst), seed, first, distribution});
  };
  switch (dtype) {
    case DType::f32:
      return run(float{});
    case DType::f64:
      return run(double{});
    case DType::bf16:
      return run(__nv_bfloat16{});
    case DType::i32:
      break;
  }
  SSA_CHECK(false, "fill_random: i32 tensor");
}

}  // namespace ssa::cuda
