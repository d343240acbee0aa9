#include <type_traits>

#include "cuda/device.cuh"
#include "cuda/elementwise.h"

namespace ssa::cuda {
namespace {

struct Plus {
  __device__ float operator()(float x, float y) const { return x + y; }
};
struct Times {
  __device__ float operator()(float x, float y) const { return x * y; }
};

template <typename T, typename Op, int W>
struct Binary {
  const T* a;
  const T* b;
  T* out;
  struct Operands {
    Values<T, W> x, y;
  };
  __device__ Operands load(int64_t i) const { return {values_at<W>(a, i), values_at<W>(b, i)}; }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<T, W> result;
#pragma unroll
    for (int j = 0; j < W; ++j)
      result.v[j] = from_float<T>(Op{}(to_float(v.x.v[j]), to_float(v.y.v[j])));
    values_at<W>(out, i) = result;
  }
};

template <typename T>
struct Scale {
  const T* a;
  T* out;
  double factor;
  __device__ void operator()(int64_t i) const {
    out[i] = from_float<T>(static_cast<float>(static_cast<double>(to_float(a[i])) * factor));
  }
};

template <typename Dst, typename Src, int W>
struct Accumulate {
  Dst* dst;
  const Src* src;
  struct Operands {
    Values<Dst, W> sum;
    Values<Src, W> term;
  };
  __device__ Operands load(int64_t i) const { return {values_at<W>(dst, i), values_at<W>(src, i)}; }
  __device__ void store(int64_t i, const Operands& v) const {
    Values<Dst, W> result;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      if constexpr (std::is_same_v<Dst, double>)
        result.v[j] = v.sum.v[j] + v.term.v[j];
      else
        result.v[j] = from_float<Dst>(to_float(v.sum.v[j]) + to_float(v.term.v[j]));
    }
    values_at<W>(dst, i) = result;
  }
};

template <typename Out, typename G>
struct Broadcast {
  const G* g;
  Out* out;
  double factor;
  __device__ void operator()(int64_t i) const {
    out[i] = from_float<Out>(static_cast<float>(static_cast<double>(to_float(*g)) * factor));
  }
};

template <typename Op>
void binary(const void* a, const void* b, void* out, DType dtype, int64_t n, const char* op) {
  with_storage_type(dtype, op, [&](auto zero) {
    using T = decltype(zero);
    for_each_run<kPack<T>>(n, {a, b, out}, [&](auto w) {
      return Binary<T, Op, w.value>{static_cast<const T*>(a), static_cast<const T*>(b),
                                    static_cast<T*>(out)};
    });
  });
}

template <typename Dst, typename Src>
void launch_accumulate(void* dst, const void* src, int64_t n) {
  for_each_run<std::min(kPack<Dst>, kPack<Src>)>(n, {dst, src}, [&](auto w) {
    return Accumulate<Dst, Src, w.value>{static_cast<Dst*>(dst), static_cast<const Src*>(src)};
  });
}

}  // namespace

void add(const void* a, const void* b, void* out, DType dtype, int64_t n) {
  binary<Plus>(a, b, out, dtype, n, "add");
}

void mul(const void* a, const void* b, void* out, DType dtype, int64_t n) {
  binary<Times>(a, b, out, dtype, n, "mul");
}

void scale(const void* a, void* out, DType dtype, double factor, int64_t n) {
  with_storage_type(dtype, "scale", [&](auto zero) {
    using T = decltype(zero);
    for_each(n, Scale<T>{static_cast<const T*>(a), static_cast<T*>(out), factor});
  });
}

void accumulate(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  if (dst_dtype == DType::f32 && src_dtype == DType::f32)
    return launch_accumulate<float, float>(dst, src, n);
  if (dst_dtype == DType::f32 && src_dtype == DType::bf16)
    return launch_accumulate<float, __nv_bfloat16>(dst, src, n);
  if (dst_dtype == DType::bf16 && src_dtype == DType::bf16)
    return launch_accumulate<__nv_bfloat16, __nv_bfloat16>(dst, src, n);
  if (dst_dtype == DType::f64 && src_dtype == DType::f64)
    return launch_accumulate<double, double>(dst, src, n);
  fail("accumulate: cannot add {} into {} on CUDA (same dtype, or bf16 into f32)",
       dtype_name(src_dtype), dtype_name(dst_dtype));
}

void broadcast_scalar(const void* g, DType g_dtype, double factor, void* out, DType out_dtype,
                      int64_t n) {
  with_storage_type(g_dtype, "broadcast_scalar", [&](auto g_zero) {
    using G = decltype(g_zero);
    with_storage_type(out_dtype, "broadcast_scalar", [&](auto out_zero) {
      using Out = decltype(out_zero);
      for_each(n, Broadcast<Out, G>{static_cast<const G*>(g), static_cast<Out*>(out), factor});
    });
  });
}

}  // namespace ssa::cuda
