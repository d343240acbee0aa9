#include "cuda/device.cuh"
#include "cuda/swiglu.h"

namespace ssa::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Where run i of the gate and up operands lies: at i when they are contiguous (pitch_runs ==
// runs_per_row), else in rows pitch_runs runs apart, each row's runs_per_row runs first.
struct RunRows {
  int64_t runs_per_row, pitch_runs;
  __device__ int64_t operator()(int64_t i) const {
    return pitch_runs == runs_per_row ? i : i / runs_per_row * pitch_runs + i % runs_per_row;
  }
};

template <typename T, int W>
struct Forward {
  const T* a;
  const T* b;
  T* out;
  RunRows rows;
  struct Operands {
    Values<T, W> gate, up;
  };
  __device__ Operands load(int64_t i) const {
    return {values_at<W>(a, rows(i)), values_at<W>(b, rows(i))};
  }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<T, W> result;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float x = to_float(v.gate.v[j]);
      result.v[j] = from_float<T>(x * sigmoid(x) * to_float(v.up.v[j]));
    }
    values_at<W>(out, i) = result;
  }
};

// da and db lie as a and b do.
template <typename T, int W>
struct Backward {
  const T* a;
  const T* b;
  const T* g;
  T* da;
  T* db;
  RunRows rows;
  struct Operands {
    Values<T, W> gate, up, grad;
  };
  __device__ Operands load(int64_t i) const {
    return {values_at<W>(a, rows(i)), values_at<W>(b, rows(i)), values_at<W>(g, i)};
  }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<T, W> d_gate, d_up;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float x = to_float(v.gate.v[j]), up = to_float(v.up.v[j]);
      const float grad = to_float(v.grad.v[j]), s = sigmoid(x);
      d_gate.v[j] = from_float<T>(grad * up * s * (1.0f + x * (1.0f - s)));
      d_up.v[j] = from_float<T>(grad * x * s);
    }
    values_at<W>(da, rows(i)) = d_gate;
    values_at<W>(db, rows(i)) = d_up;
  }
};

// for_each_run over rows × width elements, the runs never crossing a row: the run width is
// checked against width (and every pointer and the pitch).
template <typename T, typename Make>
void for_each_row_run(const SwigluRows& r, std::initializer_list<const void*> pointers, Make make) {
  const bool pitch_fits = r.pitch % kPack<T> == 0;
  with_run_width<kPack<T>>(pitch_fits ? r.width : 1, pointers, [&](auto w) {
    const RunRows rows{r.width / w.value, r.pitch / w.value};
    if constexpr (w.value == 1)
      for_each(r.rows * r.width, make(w, rows));
    else
      for_each<2>(r.rows * r.width / w.value, make(w, rows));
  });
}

}  // namespace

void swiglu_forward(const void* a, const void* b, void* out, DType dtype, const SwigluRows& r) {
  with_storage_type(dtype, "swiglu", [&](auto zero) {
    using T = decltype(zero);
    for_each_row_run<T>(r, {a, b, out}, [&](auto w, RunRows rows) {
      return Forward<T, w.value>{static_cast<const T*>(a), static_cast<const T*>(b),
                                 static_cast<T*>(out), rows};
    });
  });
}

void swiglu_backward(const void* a, const void* b, const void* g, void* da, void* db, DType dtype,
                     const SwigluRows& r) {
  with_storage_type(dtype, "swiglu backward", [&](auto zero) {
    using T = decltype(zero);
    for_each_row_run<T>(r, {a, b, g, da, db}, [&](auto w, RunRows rows) {
      return Backward<T, w.value>{static_cast<const T*>(a), static_cast<const T*>(b),
                                  static_cast<const T*>(g), static_cast<T*>(da),
                                  static_cast<T*>(db),      rows};
    });
  });
}

}  // namespace ssa::cuda
