#include "cuda/device.cuh"
#include "cuda/swiglu.h"

namespace ssa::cuda {
namespace {

// silu(x) · up, the forward's value, from s = sigmoid(x).
__device__ __forceinline__ float gated(float x, float s, float up) { return x * s * up; }

template <typename T, int W>
struct Forward {
  const T* a;
  const T* b;
  T* out;
  struct Operands {
    Values<T, W> gate, up;
  };
  __device__ Operands load(int64_t i) const { return {values_at<W>(a, i), values_at<W>(b, i)}; }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<T, W> result;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float x = to_float(v.gate.v[j]);
      result.v[j] = from_float<T>(gated(x, sigmoid(x), to_float(v.up.v[j])));
    }
    values_at<W>(out, i) = result;
  }
};

template <typename T, int W>
struct Backward {
  const T* a;
  const T* b;
  const T* g;
  T* da;  // may be g: run i is loaded before it is stored
  T* db;
  T* out;  // null: not written
  struct Operands {
    Values<T, W> gate, up, grad;
  };
  __device__ Operands load(int64_t i) const {
    return {values_at<W>(a, i), values_at<W>(b, i), values_at<W>(g, i)};
  }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<T, W> d_gate, d_up, result;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float x = to_float(v.gate.v[j]), up = to_float(v.up.v[j]);
      const float grad = to_float(v.grad.v[j]), s = sigmoid(x);
      d_gate.v[j] = from_float<T>(grad * up * s * (1.0f + x * (1.0f - s)));
      d_up.v[j] = from_float<T>(grad * x * s);
      result.v[j] = from_float<T>(gated(x, s, up));
    }
    values_at<W>(da, i) = d_gate;
    values_at<W>(db, i) = d_up;
    if (out) values_at<W>(out, i) = result;
  }
};

}  // namespace

void swiglu_forward(const void* a, const void* b, void* out, DType dtype, int64_t n) {
  with_storage_type(dtype, "swiglu", [&](auto zero) {
    using T = decltype(zero);
    for_each_run<kPack<T>>(n, {a, b, out}, [&](auto w) {
      return Forward<T, w.value>{static_cast<const T*>(a), static_cast<const T*>(b),
                                 static_cast<T*>(out)};
    });
  });
}

void swiglu_backward(const void* a, const void* b, const void* g, void* da, void* db, void* out,
                     DType dtype, int64_t n) {
  with_storage_type(dtype, "swiglu backward", [&](auto zero) {
    using T = decltype(zero);
    for_each_run<kPack<T>>(n, {a, b, g, da, db, out}, [&](auto w) {
      return Backward<T, w.value>{static_cast<const T*>(a), static_cast<const T*>(b),
                                  static_cast<const T*>(g), static_cast<T*>(da),
                                  static_cast<T*>(db),      static_cast<T*>(out)};
    });
  });
}

}  // namespace ssa::cuda
