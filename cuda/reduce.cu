#include "cuda/reduce.cuh"
#include "cuda/reduce.h"

namespace ssa::cuda {
namespace {

template <typename T>
struct Value {
  const T* x;
  __device__ double operator()(int64_t i) const { return to_float(x[i]); }
};

template <typename Out>
struct StoreScaled {
  Out* out;
  double factor;
  __device__ void operator()(double total) const {
    *out = from_float<Out>(static_cast<float>(total * factor));
  }
};

// Integer atomics are order-independent, so the answers are the same on every run.
__global__ void scan_ids_kernel(const int32_t* ids, int64_t n, int64_t limit, int64_t ignore,
                                unsigned long long* scan) {
  unsigned long long counted = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t id = ids[i];
    if (id == ignore) continue;
    ++counted;
    if (id < 0 || id >= limit) atomicMin(&scan[0], static_cast<unsigned long long>(i));
  }
  counted = block_sum(counted);
  if (threadIdx.x == 0) atomicAdd(&scan[1], counted);
}

}  // namespace

void sum(const void* x, DType dtype, int64_t n, double factor, void* out, DType out_dtype) {
  with_storage_type(dtype, "sum", [&](auto x_zero) {
    using T = decltype(x_zero);
    with_storage_type(out_dtype, "sum", [&](auto out_zero) {
      using Out = decltype(out_zero);
      deterministic_sum(n, Value<T>{static_cast<const T*>(x)},
                        StoreScaled<Out>{static_cast<Out*>(out), factor});
    });
  });
}

IdScan scan_ids(const int32_t* ids, int64_t n, int64_t limit, int64_t ignore) {
  unsigned long long scan[2];  // the first invalid position (~0: none), the counted ids
  DeviceScratch device_scan(sizeof(scan));
  CUDA_CHECK(cudaMemsetAsync(device_scan.as<void>(), 0, sizeof(scan), compute_stream()));
  CUDA_CHECK(cudaMemsetAsync(device_scan.as<void>(), 0xff, sizeof(scan[0]), compute_stream()));
  if (n > 0) {
    scan_ids_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(
        ids, n, limit, ignore, device_scan.as<unsigned long long>());
    check_launch();
  }
  copy(scan, false, device_scan.as<void>(), true, sizeof(scan));
  return {scan[0] == ~0ull ? -1 : static_cast<int64_t>(scan[0]), static_cast<int64_t>(scan[1])};
}

}  // namespace ssa::cuda
