#include "cuda/reduce.cuh"
#include "cuda/smooth_l1.h"

namespace ssa::cuda {
namespace {

// beta's constants, rounded to float from double once on the host: the kernels multiply where
// the CPU op divides (a float division is a dozen instructions, enough to hold SmoothL1's
// forward below the memory's pace). At beta = 1 (the default) the results equal division's.
struct Beta {
  float beta, half_beta, inverse, half_inverse;  // inverses unused (inf) at beta = 0
  explicit Beta(double b)
      : beta(static_cast<float>(b)),
        half_beta(static_cast<float>(0.5 * b)),
        inverse(static_cast<float>(1.0 / b)),
        half_inverse(static_cast<float>(0.5 / b)) {}
};

// ½d²/beta where |d| < beta, |d| − ½beta elsewhere.
__device__ float smooth_l1_of(float d, const Beta& b) {
  const float size = fabsf(d);
  return size < b.beta ? d * d * b.half_inverse : size - b.half_beta;
}

// d SmoothL1 / dd: d / beta inside the quadratic zone, sign(d) outside.
__device__ float smooth_l1_slope(float d, const Beta& b) {
  if (fabsf(d) < b.beta) return d * b.inverse;
  return static_cast<float>((d > 0) - (d < 0));
}

// The loss terms of the run i of W elements, summed in float.
template <typename T, int W>
struct Term {
  const T* a;
  const T* b;
  Beta beta;
  __device__ double operator()(int64_t i) const {
    const Values<T, W> x = values_at<W>(a, i), y = values_at<W>(b, i);
    float sum = 0;
#pragma unroll
    for (int j = 0; j < W; ++j) sum += smooth_l1_of(to_float(x.v[j]) - to_float(y.v[j]), beta);
    return sum;
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

template <typename T, typename G, int W, AddInto kAdd>
struct Backward {
  const T* a;
  const T* b;
  const G* g;
  T* da;
  T* db;
  Beta beta;
  double inverse_count;
  struct Operands {
    Values<T, W> x, y, summed;  // summed: the values at da or db that the gradient is added to
  };
  __device__ Operands load(int64_t i) const {
    Operands v{values_at<W>(a, i), values_at<W>(b, i), {}};
    if constexpr (kAdd != AddInto::none) v.summed = values_at<W>(kAdd == AddInto::da ? da : db, i);
    return v;
  }
  __device__ void store(int64_t i, const Operands& v) const {
    const float scale = static_cast<float>(to_float(*g) * inverse_count);
    Values<T, W> d_a, d_b;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float grad = scale * smooth_l1_slope(to_float(v.x.v[j]) - to_float(v.y.v[j]), beta);
      d_a.v[j] = kAdd == AddInto::da ? added(v.summed.v[j], grad) : from_float<T>(grad);
      d_b.v[j] = kAdd == AddInto::db ? added(v.summed.v[j], -grad) : from_float<T>(-grad);
    }
    values_at<W>(da, i) = d_a;
    values_at<W>(db, i) = d_b;
  }
};

template <typename T, typename G, AddInto kAdd>
void launch_backward(const void* a, const void* b, const void* g, void* da, void* db, int64_t n,
                     double beta) {
  for_each_run<kPack<T>>(n, {a, b, da, db}, [&](auto w) {
    return Backward<T, G, w.value, kAdd>{static_cast<const T*>(a),    static_cast<const T*>(b),
                                         static_cast<const G*>(g),    static_cast<T*>(da),
                                         static_cast<T*>(db),         Beta(beta),
                                         1.0 / static_cast<double>(n)};
  });
}

}  // namespace

void smooth_l1_forward(const void* a, const void* b, DType dtype, int64_t n, double beta,
                       void* loss, DType loss_dtype) {
  with_storage_type(dtype, "smooth_l1", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(loss_dtype, "smooth_l1", [&](auto loss_zero) {
      using Out = decltype(loss_zero);
      const auto* a_t = static_cast<const T*>(a);
      const auto* b_t = static_cast<const T*>(b);
      const StoreMean<Out> mean{static_cast<Out*>(loss), static_cast<double>(n)};
      with_run_width<kPack<T>>(n, {a, b}, [&](auto w) {
        deterministic_sum(n / w.value, Term<T, w.value>{a_t, b_t, Beta(beta)}, mean);
      });
    });
  });
}

void smooth_l1_backward(const void* a, const void* b, const void* g, DType g_dtype, void* da,
                        void* db, DType dtype, int64_t n, double beta, AddInto add_into) {
  with_storage_type(dtype, "smooth_l1 backward", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(g_dtype, "smooth_l1 backward", [&](auto g_zero) {
      using G = decltype(g_zero);
      if (add_into == AddInto::da)
        launch_backward<T, G, AddInto::da>(a, b, g, da, db, n, beta);
      else if (add_into == AddInto::db)
        launch_backward<T, G, AddInto::db>(a, b, g, da, db, n, beta);
      else
        launch_backward<T, G, AddInto::none>(a, b, g, da, db, n, beta);
    });
  });
}

}  // namespace ssa::cuda
