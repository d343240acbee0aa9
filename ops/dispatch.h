#pragma once
// Helpers shared by the op files: dtype dispatch for CPU kernels, the CUDA branch, and the dtype
// policy of mixed precision.
#include "core/tensor.h"

namespace ssa {

// The CPU kernels' dispatch (an op sends CUDA tensors to SSA_ON_CUDA before): calls fn(T{})
// with T = float or double for a CPU tensor of that dtype; other dtypes and devices are an error
// naming the op.
template <typename Fn>
decltype(auto) dispatch_float(const Tensor& t, const char* op, Fn&& fn) {
  SSA_CHECK(t.is_cpu(), "{}: got a {} tensor for the CPU kernel (expected a CPU tensor)", op,
            device_name(t.device()));
  switch (t.dtype()) {
    case DType::f32:
      return fn(float{});
    case DType::f64:
      return fn(double{});
    default:
      break;
  }
  fail("{}: unsupported dtype {} (expected f32 or f64)", op, dtype_name(t.dtype()));
}

[[noreturn]] inline void no_cuda_backend(const char* op) {
  fail("{}: got a CUDA tensor but this build has no CUDA backend (configure with SSA_CUDA=ON)", op);
}

// Scalars reduced from a tensor (sums, means, losses) keep f32 and f64, and are f32 for bf16
// inputs: bf16 activations, fp32 losses.
inline DType reduced_dtype(DType input) { return input == DType::bf16 ? DType::f32 : input; }

}  // namespace ssa

// SSA_ON_CUDA(op, statements...): the statements where the CUDA backend is built (the op files
// include its cuda/ headers under the same condition); elsewhere an error naming the op.
#ifdef SSA_HAVE_CUDA
#define SSA_ON_CUDA(op, ...) \
  do {                       \
    __VA_ARGS__;             \
  } while (0)
#else
#define SSA_ON_CUDA(op, ...) ::ssa::no_cuda_backend(op)
#endif
