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

// ---- SmoothL1 against a gated side that is never stored (gated_smooth_l1_*)

// b ⊙ gate as head_gate_forward stores it (rounded to T), as a float. __fmul_rn: for f32 the
// rounding to T is no operation, and a plain product could be fused into the subtraction that
// follows, which the stored value never is.
template <typename T>
__device__ float gated(float b, float gate) {
  return to_float(from_float<T>(__fmul_rn(b, gate)));
}

// As Term, with the run's b gated by its row's gate (W divides head_dim: one row per run).
template <typename T, int W>
struct GatedTerm {
  const T* a;
  const T* b;
  const T* logits;
  uint32_t runs_per_row;  // head_dim / W
  Beta beta;
  // Run i's row, divided in 32 bits where i fits: a 64-bit division is a long emulated sequence
  // on the GPU, and one per run made this sum slower than smooth_l1's (docs/PERF.md).
  __device__ int64_t row_of(int64_t i) const {
    return i <= UINT32_MAX ? static_cast<uint32_t>(i) / runs_per_row : i / runs_per_row;
  }
  __device__ double operator()(int64_t i) const {
    const float gate = sigmoid(to_float(logits[row_of(i)]));
    const Values<T, W> x = values_at<W>(a, i), y = values_at<W>(b, i);
    float sum = 0;
#pragma unroll
    for (int j = 0; j < W; ++j)
      sum += smooth_l1_of(to_float(x.v[j]) - gated<T>(to_float(y.v[j]), gate), beta);
    return sum;
  }
};

// The gradients of one row per group of `lanes` lanes, each taking every lanes-th run of P
// elements, as smooth_l1's Backward and then gate.cu's backward_kernel compute them: the
// gated side's gradient rounded to T, times the gate for d_b, its dot with b for d_logits
// (summed over the group by the same tree).
template <typename T, typename G, int P, bool kAddA>
__global__ void gated_backward_kernel(const T* a, const T* b, const T* logits, const G* g, T* da,
                                      T* d_b, T* d_logits, int64_t rows, int64_t head_dim,
                                      int lanes, Beta beta, double inverse_count) {
  const int64_t thread = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, row = thread / lanes;
  const bool inside = row < rows;  // no return: every lane takes part in the shuffles
  const float scale = static_cast<float>(to_float(*g) * inverse_count);
  const float s = inside ? sigmoid(to_float(logits[row])) : 0.f;
  float dot = 0;
  for (int64_t j = thread % lanes * P; inside && j < head_dim; j += lanes * int64_t{P}) {
    const int64_t at = row * head_dim + j;
    float x[P], y[P], d_a[P], d_gated[P];
    load_floats(a + at, x);
    load_floats(b + at, y);
    if constexpr (kAddA) load_floats(da + at, d_a);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const float grad = scale * smooth_l1_slope(x[k] - gated<T>(y[k], s), beta);
      d_a[k] = kAddA ? to_float(added(from_float<T>(d_a[k]), grad)) : grad;  // stored rounded
      const float dout = to_float(from_float<T>(-grad));
      dot += dout * y[k];
      d_gated[k] = dout * s;
    }
    store_floats(da + at, d_a);
    store_floats(d_b + at, d_gated);
  }
  for (int offset = lanes / 2; offset > 0; offset /= 2)
    dot += __shfl_down_sync(0xffffffffu, dot, offset, lanes);
  if (inside && thread % lanes == 0) d_logits[row] = from_float<T>(dot * s * (1.0f - s));
}

template <typename T, typename G, bool kAddA>
void launch_gated_backward(const void* a, const void* b, const void* logits, const void* g,
                           void* da, void* d_b, void* d_logits, int64_t rows, int64_t head_dim,
                           double beta) {
  // The lane groups of head_gate_backward, so the dot products add in its order.
  const int64_t packs = head_dim / kPack<T>;
  const bool by_packs = head_dim % kPack<T> == 0 && packs <= kWarp && (packs & (packs - 1)) == 0 &&
                        packs_aligned({a, b, da, d_b});
  const int lanes = by_packs ? static_cast<int>(packs) : kWarp;
  const auto kernel = by_packs ? gated_backward_kernel<T, G, kPack<T>, kAddA>
                               : gated_backward_kernel<T, G, 1, kAddA>;
  const int64_t blocks = (rows * lanes + kThreads - 1) / kThreads;
  kernel<<<static_cast<unsigned>(blocks), kThreads, 0, compute_stream()>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(logits),
      static_cast<const G*>(g), static_cast<T*>(da), static_cast<T*>(d_b),
      static_cast<T*>(d_logits), rows, head_dim, lanes, Beta(beta),
      1.0 / static_cast<double>(rows * head_dim));
  check_launch();
}

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

void gated_smooth_l1_forward(const void* a, const void* b, const void* logits, DType dtype,
                             int64_t rows, int64_t head_dim, double beta, void* loss,
                             DType loss_dtype) {
  with_storage_type(dtype, "gated_smooth_l1", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(loss_dtype, "gated_smooth_l1", [&](auto loss_zero) {
      using Out = decltype(loss_zero);
      const int64_t n = rows * head_dim;
      const StoreMean<Out> mean{static_cast<Out*>(loss), static_cast<double>(n)};
      auto sum_in_runs = [&](auto w) {
        const GatedTerm<T, w.value> term{static_cast<const T*>(a), static_cast<const T*>(b),
                                         static_cast<const T*>(logits),
                                         static_cast<uint32_t>(head_dim / w.value), Beta(beta)};
        deterministic_sum(n / w.value, term, mean);
      };
      // Runs within a row (smooth_l1's runs, so the same sum, where head_dim is whole packs).
      if (head_dim % kPack<T> == 0)
        with_run_width<kPack<T>>(n, {a, b}, sum_in_runs);
      else
        sum_in_runs(std::integral_constant<int, 1>{});
    });
  });
}

void gated_smooth_l1_backward(const void* a, const void* b, const void* logits, const void* g,
                              DType g_dtype, void* da, void* d_b, void* d_logits, DType dtype,
                              int64_t rows, int64_t head_dim, double beta, bool add_into_da) {
  if (rows == 0) return;
  with_storage_type(dtype, "gated_smooth_l1 backward", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(g_dtype, "gated_smooth_l1 backward", [&](auto g_zero) {
      using G = decltype(g_zero);
      if (add_into_da)
        launch_gated_backward<T, G, true>(a, b, logits, g, da, d_b, d_logits, rows, head_dim, beta);
      else
        launch_gated_backward<T, G, false>(a, b, logits, g, da, d_b, d_logits, rows, head_dim,
                                           beta);
    });
  });
}

}  // namespace ssa::cuda
