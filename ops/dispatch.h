#pragma once
// Helpers shared by the op files: dtype dispatch for CPU kernels and device checks.
#include "core/tensor.h"

namespace ssa {

// Calls fn(T{}) with T = float or double for a CPU tensor of that dtype; other dtypes and
// devices are an error naming the op.
template <typename Fn>
decltype(auto) dispatch_float(const Tensor& t, const char* op, Fn&& fn) {
  SSA_CHECK(t.is_cpu(), "{}: no CUDA kernel yet for this op", op);
  switch (t.dtype()) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    default: break;
  }
  fail("{}: unsupported dtype {} (expected f32 or f64)", op, dtype_name(t.dtype()));
}

}  // namespace ssa
