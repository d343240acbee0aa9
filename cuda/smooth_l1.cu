#include "cuda/reduce.cuh"
#include "cuda/smooth_l1.h"

namespace ssa::cuda {
namespace {

// ½d²/beta where |d| < beta, |d| − ½beta elsewhere.
__device__ float smooth_l1_of(float d, float beta) {
  const float size = fabsf(d);
  return size < beta ? 0.5f * d * d / beta : size - 0.5f * beta;
}

// d SmoothL1 / dd: d / beta inside the quadratic zone, sign(d) outside.
__device__ float smooth_l1_slope(float d, float beta) {
  if (fabsf(d) < beta) return d / beta;
  return static_cast<float>((d > 0) - (d < 0));
}

template <typename T>
struct Term {
  const T* a;
  const T* b;
  float beta;
  __device__ double operator()(int64_t i) const {
    return smooth_l1_of(to_float(a[i]) - to_float(b[i]), beta);
  }
};

template <typename Out>
struct StoreMean {
  Out* loss;
  double count;
  __device__ void operator()(double total) const {
    *loss = from_float<Out>(static_cast<float>(total / count));
  }
};

template <typename T, typename G>
struct Backward {
  const T* a;
  const T* b;
  const G* g;
  T* da;
  T* db;
  float beta;
  double inverse_count;
  struct Operands {
    T x, y;
  };
  __device__ Operands load(int64_t i) const { return {a[i], b[i]}; }
  __device__ void store(int64_t i, Operands v) const {
    const float scale = static_cast<float>(to_float(*g) * inverse_count);
    const float grad = scale * smooth_l1_slope(to_float(v.x) - to_float(v.y), beta);
    da[i] = from_float<T>(grad);
    db[i] = from_float<T>(-grad);
  }
};

}  // namespace

void smooth_l1_forward(const void* a, const void* b, DType dtype, int64_t n, double beta,
                       void* loss, DType loss_dtype) {
  with_storage_type(dtype, "smooth_l1", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(loss_dtype, "smooth_l1", [&](auto loss_zero) {
      using Out = decltype(loss_zero);
      deterministic_sum(
          n, Term<T>{static_cast<const T*>(a), static_cast<const T*>(b), static_cast<float>(beta)},
          StoreMean<Out>{static_cast<Out*>(loss), static_cast<double>(n)});
    });
  });
}

void smooth_l1_backward(const void* a, const void* b, const void* g, DType g_dtype, void* da,
                        void* db, DType dtype, int64_t n, double beta) {
  with_storage_type(dtype, "smooth_l1 backward", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(g_dtype, "smooth_l1 backward", [&](auto g_zero) {
      using G = decltype(g_zero);
      for_each(n, Backward<T, G>{static_cast<const T*>(a), static_cast<const T*>(b),
                                 static_cast<const G*>(g), static_cast<T*>(da), static_cast<T*>(db),
                                 static_cast<float>(beta), 1.0 / static_cast<double>(n)});
    });
  });
}

}  // namespace ssa::cuda
