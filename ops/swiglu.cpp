#include "ops/swiglu.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/swiglu.h"
#endif

namespace ssa {
namespace {

template <typename T>
void swiglu_forward(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * sigmoid(a[i]) * b[i];
}

// With s = sigmoid(a): d silu(a)/da = s · (1 + a · (1 − s)).
template <typename T>
void swiglu_backward(const T* a, const T* b, const T* g, T* da, T* db, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(a[i]);
    da[i] = g[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] = g[i] * a[i] * s;
  }
}

struct SwigluNode : Node {
  Tensor a, b;
  SwigluNode(Tensor a_, Tensor b_) : a(std::move(a_)), b(std::move(b_)) {}
  const char* name() const override { return "swiglu"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor da = Tensor::empty(a.shape(), a.dtype(), a.device());
    Tensor db = Tensor::empty(b.shape(), b.dtype(), b.device());
    if (g.is_cpu()) {
      dispatch_float(g, "swiglu backward", [&](auto zero) {
        using T = decltype(zero);
        swiglu_backward(a.data<T>(), b.data<T>(), g.data<T>(), da.data<T>(), db.data<T>(),
                        a.numel());
      });
    } else {
      SSA_ON_CUDA("swiglu backward", cuda::swiglu_backward(a.raw(), b.raw(), g.raw(), da.raw(),
                                                           db.raw(), a.dtype(), a.numel()));
    }
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
};

}  // namespace

Tensor swiglu(const Tensor& a, const Tensor& b) {
  check_same_kind({&a, &b}, "swiglu");
  SSA_CHECK(a.shape() == b.shape(), "swiglu: gate {} and up {} shapes differ", a.shape().str(),
            b.shape().str());
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (a.is_cpu()) {
    dispatch_float(a, "swiglu", [&](auto zero) {
      using T = decltype(zero);
      swiglu_forward(a.data<T>(), b.data<T>(), out.data<T>(), a.numel());
    });
  } else {
    SSA_ON_CUDA("swiglu", cuda::swiglu_forward(a.raw(), b.raw(), out.raw(), a.dtype(), a.numel()));
  }
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<SwigluNode>(a.detach(), b.detach()), {a, b});
}

}  // namespace ssa
