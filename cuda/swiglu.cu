#include "cuda/device.cuh"
#include "cuda/swiglu.h"

namespace ssa::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
struct Forward {
  const T* a;
  const T* b;
  T* out;
  __device__ void operator()(int64_t i) const {
    const float x = to_float(a[i]);
    out[i] = from_float<T>(x * sigmoid(x) * to_float(b[i]));
  }
};

template <typename T>
struct Backward {
  const T* a;
  const T* b;
  const T* g;
  T* da;
  T* db;
  __device__ void operator()(int64_t i) const {
    const float x = to_float(a[i]), up = to_float(b[i]), grad = to_float(g[i]);
    const float s = sigmoid(x);
    da[i] = from_float<T>(grad * up * s * (1.0f + x * (1.0f - s)));
    db[i] = from_float<T>(grad * x * s);
  }
};

}  // namespace

void swiglu_forward(const void* a, const void* b, void* out, DType dtype, int64_t n) {
  with_storage_type(dtype, "swiglu", [&](auto zero) {
    using T = decltype(zero);
    for_each(n,
             Forward<T>{static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out)});
  });
}

void swiglu_backward(const void* a, const void* b, const void* g, void* da, void* db, DType dtype,
                     int64_t n) {
  with_storage_type(dtype, "swiglu backward", [&](auto zero) {
    using T = decltype(zero);
    for_each(n, Backward<T>{static_cast<const T*>(a), static_cast<const T*>(b),
                            static_cast<const T*>(g), static_cast<T*>(da), static_cast<T*>(db)});
  });
}

}  // namespace ssa::cuda
