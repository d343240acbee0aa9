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
  struct Operands {
    T gate, up;
  };
  __device__ Operands load(int64_t i) const { return {a[i], b[i]}; }
  __device__ void store(int64_t i, Operands v) const {
    const float x = to_float(v.gate);
    out[i] = from_float<T>(x * sigmoid(x) * to_float(v.up));
  }
};

template <typename T>
struct Backward {
  const T* a;
  const T* b;
  const T* g;
  T* da;
  T* db;
  struct Operands {
    T gate, up, grad;
  };
  __device__ Operands load(int64_t i) const { return {a[i], b[i], g[i]}; }
  __device__ void store(int64_t i, Operands v) const {
    const float x = to_float(v.gate), up = to_float(v.up), grad = to_float(v.grad);
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
