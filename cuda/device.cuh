#pragma once
// Device-side helpers shared by the kernels of cuda/ (included by .cu files only).
// Storage types: f32 tensors are float, bf16 tensors __nv_bfloat16; kernels load either as
// float, compute in float (or double for global sums), and round once when storing.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/runtime.h"
#include "cuda/runtime/stream.h"

namespace ssa::cuda {

constexpr int kThreads = 256;  // threads per block of the grid-stride kernels
constexpr int kWarp = 32;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);  // round to nearest even, as core's bf16
}

// A gradient `own` added into the gradient summed so far, as autograd sums two gradients: own
// rounded to T first, then the sum in float, rounded again. __fadd_rn: never fused with the
// product that made `own` (for f32 the rounding to T is no operation), as a separate add is not.
template <typename T>
__device__ __forceinline__ T added(T summed, float own) {
  return from_float<T>(__fadd_rn(to_float(summed), to_float(from_float<T>(own))));
}

// The logistic function, as the gate and SwiGLU kernels compute it.
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// 2^x on the special-function unit (relative error ~2^-22, subnormals flushed; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Calls fn(T{}) with T the storage type of an f32 or bf16 tensor; other dtypes are an error
// naming the op.
template <typename Fn>
void with_storage_type(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      fn(float{});
      return;
    case DType::bf16:
      fn(__nv_bfloat16{});
      return;
    default:
      break;
  }
  fail("{}: dtype {} is not supported on CUDA (expected f32 or bf16)", op, dtype_name(dtype));
}

// Blocks of a grid-stride loop over n elements, `per_block` per block and pass.
inline int grid_for(int64_t n, int per_block = kThreads) {
  return static_cast<int>(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, 1 << 16));
}

inline void check_launch() { CUDA_CHECK(cudaGetLastError()); }

// Launches kernel on the compute stream with `smem_bytes` of dynamic shared memory (raising the
// kernel's limit past the default 48 KiB when needed); an empty grid launches nothing.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, int threads, size_t smem_bytes, Args... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  if (smem_bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem_bytes)));
  kernel<<<grid, threads, smem_bytes, compute_stream()>>>(args...);
  check_launch();
}

__device__ __forceinline__ int64_t first_index() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// f(i) for every i < n, on the compute stream.
template <typename F>
__global__ void for_each_kernel(F f, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) f(i);
}

// A functor split in two, f.store(i, f.load(i)), lets each thread start the loads of
// kLoadsAhead elements before its first store (the compiler cannot move a load above a store
// that may alias it): enough bytes in flight to keep the memory system busy.
template <typename F, typename = void>
struct SplitElementwise : std::false_type {};
template <typename F>
struct SplitElementwise<F, std::void_t<decltype(std::declval<const F&>().load(int64_t{}))>>
    : std::true_type {};
constexpr int kLoadsAhead = 8;

// Elements i = base + u·blockDim.x, u < kAhead: each load instruction of a warp reads
// consecutive elements.
template <int kAhead, typename F>
__global__ void for_each_split_kernel(F f, int64_t n) {
  const int64_t stride = grid_stride() * kAhead;
  for (int64_t base = blockIdx.x * int64_t(blockDim.x) * kAhead + threadIdx.x; base < n;
       base += stride) {
    decltype(f.load(base)) loaded[kAhead];
#pragma unroll
    for (int u = 0; u < kAhead; ++u)
      if (base + u * blockDim.x < n) loaded[u] = f.load(base + u * blockDim.x);
#pragma unroll
    for (int u = 0; u < kAhead; ++u)
      if (base + u * blockDim.x < n) f.store(base + u * blockDim.x, loaded[u]);
  }
}

// f(i) for every i < n; a split functor's next kAhead loads are issued before its first store.
template <int kAhead = kLoadsAhead, typename F>
void for_each(int64_t n, F f) {
  if (n == 0) return;
  if constexpr (SplitElementwise<F>::value)
    for_each_split_kernel<kAhead>
        <<<grid_for(n, kThreads * kAhead), kThreads, 0, compute_stream()>>>(f, n);
  else
    for_each_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(f, n);
  check_launch();
}

// ---- 16-byte accesses: kPack<T> consecutive elements (8 bf16, 4 float) in one load or store;
// the address must be 16-byte aligned.
template <typename T>
constexpr int kPack = 16 / static_cast<int>(sizeof(T));
template <typename T>
struct alignas(16) Pack {
  T v[kPack<T>];
};

// The 32 bits of a pack from element 2w (bf16: elements 2w and 2w + 1, the first in the low half)
// or w (float).
__device__ __forceinline__ uint32_t pack_word(const Pack<float>& pack, int w) {
  return __float_as_uint(pack.v[w]);
}
__device__ __forceinline__ uint32_t pack_word(const Pack<__nv_bfloat16>& pack, int w) {
  return uint32_t{__bfloat16_as_ushort(pack.v[2 * w])} |
         uint32_t{__bfloat16_as_ushort(pack.v[2 * w + 1])} << 16;
}

// *p = words as one 16-byte store (p in global memory, 16-byte aligned). Written in PTX: nvcc
// compiled a plain assignment of a struct, and even of a uint4, into four to eight narrower
// stores.
__device__ __forceinline__ void store_words(void* p, uint4 words) {
  asm("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(words.x), "r"(words.y), "r"(words.z),
      "r"(words.w)
      : "memory");
}
template <typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& pack) {
  store_words(
      p, uint4{pack_word(pack, 0), pack_word(pack, 1), pack_word(pack, 2), pack_word(pack, 3)});
}

// N consecutive elements from p as floats: in whole packs when N is a multiple of kPack<T> (p
// then 16-byte aligned), else one by one.
template <int N, typename T>
__device__ __forceinline__ void load_floats(const T* p, float (&out)[N]) {
  if constexpr (N % kPack<T> == 0) {
#pragma unroll
    for (int k = 0; k < N / kPack<T>; ++k) {
      const Pack<T> pack = *reinterpret_cast<const Pack<T>*>(p + k * kPack<T>);
#pragma unroll
      for (int j = 0; j < kPack<T>; ++j) out[k * kPack<T> + j] = to_float(pack.v[j]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) out[j] = to_float(p[j]);
  }
}
template <int N, typename T>
__device__ __forceinline__ void store_floats(T* p, const float (&in)[N]) {
  if constexpr (N % kPack<T> == 0) {
#pragma unroll
    for (int k = 0; k < N / kPack<T>; ++k) {
      Pack<T> pack;
#pragma unroll
      for (int j = 0; j < kPack<T>; ++j) pack.v[j] = from_float<T>(in[k * kPack<T> + j]);
      store_pack(p + k * kPack<T>, pack);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) p[j] = from_float<T>(in[j]);
  }
}

// True when every pointer is 16-byte aligned (for the pack kernels).
inline bool packs_aligned(std::initializer_list<const void*> pointers) {
  return std::all_of(pointers.begin(), pointers.end(),
                     [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; });
}

// ---- Element-wise functors over runs of W consecutive elements: index i covers the elements
// i·W .. i·W + W − 1, loaded and stored as Values<T, W>: one access of W·sizeof(T) bytes up to
// 16 (W and sizeof(T) are powers of two; a run of a 16-byte aligned buffer is aligned to that).
template <typename T, int W>
struct alignas(std::min<size_t>(16, W * sizeof(T))) Values {
  T v[W];
};
template <int W, typename T>
__device__ __forceinline__ const Values<T, W>& values_at(const T* p, int64_t i) {
  return *reinterpret_cast<const Values<T, W>*>(p + i * W);
}
template <int W, typename T>
__device__ __forceinline__ Values<T, W>& values_at(T* p, int64_t i) {
  return *reinterpret_cast<Values<T, W>*>(p + i * W);
}

// use(std::integral_constant<int, W>{}) with W = kRun when n is a multiple of it and every
// pointer is 16-byte aligned, else W = 1: the run width of a kernel over 16-byte packs.
template <int kRun, typename Use>
decltype(auto) with_run_width(int64_t n, std::initializer_list<const void*> pointers, Use use) {
  if (n % kRun == 0 && packs_aligned(pointers)) return use(std::integral_constant<int, kRun>{});
  return use(std::integral_constant<int, 1>{});
}

// for_each over runs: make(std::integral_constant<int, W>{}) builds the functor for runs of W
// elements (with_run_width). kRun is the pack size of the widest operand (kPack<T>: 8 bf16,
// 4 f32), so each load of it is one 16-byte access. Two runs' loads go ahead of the first store.
template <int kRun, typename Make>
void for_each_run(int64_t n, std::initializer_list<const void*> pointers, Make make) {
  with_run_width<kRun>(n, pointers, [&](auto w) {
    if constexpr (w.value == 1)
      for_each(n, make(w));
    else
      for_each<2>(n / w.value, make(w));
  });
}

// Lane 0 gets the sum of v over the warp; the tree is fixed, so the result is bit-reproducible.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Every thread gets the sum of v over the block (blockDim a multiple of 32), in a fixed order.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T warp_totals[kWarp];
  __shared__ T total;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_sum(lane < int(blockDim.x / kWarp) ? warp_totals[lane] : T(0));
    if (lane == 0) total = v;
  }
  __syncthreads();
  const T result = total;
  __syncthreads();  // a second call may overwrite warp_totals and total
  return result;
}

// Temporary device memory from the caching allocator, for the duration of a host scope (the
// kernels using it are queued on the compute stream before any later user of the block).
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) : bytes_(bytes), ptr_(device_allocator().allocate(bytes)) {}
  ~DeviceScratch() { device_allocator().deallocate(ptr_, bytes_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  size_t bytes_;
  void* ptr_;
};

}  // namespace ssa::cuda
