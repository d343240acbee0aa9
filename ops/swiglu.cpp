#include "ops/swiglu.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#include "ops/linear.h"
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

// With s = sigmoid(a): d silu(a)/da = s · (1 + a · (1 − s)). out, when given, gets silu(a) · b
// as swiglu_forward computes it. da may be g (each element is read before it is written).
template <typename T>
void swiglu_backward(const T* a, const T* b, const T* g, T* da, T* db, T* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(a[i]), grad = g[i];
    if (out) out[i] = a[i] * s * b[i];
    da[i] = grad * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] = grad * a[i] * s;
  }
}

// da, db from g, and silu(a) · b into `out` when it is defined (all of a's shape and dtype).
void swiglu_gradients(const Tensor& a, const Tensor& b, const Tensor& g, const Tensor& da,
                      const Tensor& db, const Tensor& out) {
  if (g.is_cpu()) {
    dispatch_float(g, "swiglu backward", [&](auto zero) {
      using T = decltype(zero);
      swiglu_backward(a.data<T>(), b.data<T>(), g.data<T>(), da.data<T>(), db.data<T>(),
                      out.defined() ? out.data<T>() : nullptr, a.numel());
    });
  } else {
    SSA_ON_CUDA("swiglu backward",
                cuda::swiglu_backward(a.raw(), b.raw(), g.raw(), da.raw(), db.raw(),
                                      out.defined() ? out.raw() : nullptr, a.dtype(), a.numel()));
  }
}

struct SwigluNode : Node {
  Tensor a, b;
  SwigluNode(Tensor a_, Tensor b_) : a(std::move(a_)), b(std::move(b_)) {}
  const char* name() const override { return "swiglu"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor da = Tensor::empty_like(a), db = Tensor::empty_like(b);
    swiglu_gradients(a, b, g, da, db, Tensor());
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
};

// y = s·wᵀ with s = silu(a) · b: ds = dy·w (computed here, then overwritten by da), s again,
// then dw = dyᵀ·s as linear's.
struct SwigluLinearNode : Node {
  Tensor a, b, w;
  SwigluLinearNode(Tensor a_, Tensor b_, Tensor w_)
      : a(std::move(a_)), b(std::move(b_)), w(std::move(w_)) {}
  const char* name() const override { return "swiglu_linear"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor dy = as_matrix(g);
    Tensor da = matrix_product(dy, w, false, false).reshape(a.shape());  // ds until overwritten
    Tensor db = Tensor::empty_like(b), s = Tensor::empty_like(a);
    swiglu_gradients(a, b, da, da, db, s);
    Tensor dw;
    if (inputs()[2].requires_grad()) dw = weight_gradients(dy, as_matrix(s), {inputs()[2]})[0];
    return {da, db, dw};
  }
  void release() override { a = b = w = Tensor(); }
};

void check_swiglu(const Tensor& a, const Tensor& b, const char* op) {
  check_same_kind({&a, &b}, op);
  SSA_CHECK(a.shape() == b.shape(), "{}: gate {} and up {} shapes differ", op, a.shape().str(),
            b.shape().str());
}

}  // namespace

Tensor swiglu(const Tensor& a, const Tensor& b) {
  check_swiglu(a, b, "swiglu");
  Tensor out = Tensor::empty_like(a);
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

Tensor swiglu_linear(const Tensor& a, const Tensor& b, const Tensor& w) {
  check_swiglu(a, b, "swiglu_linear");
  Tensor y;
  {
    NoGrad not_recorded;  // silu(a) · b is freed here, not kept
    y = linear(swiglu(a, b), w);
  }
  if (!should_record({&a, &b, &w})) return y;
  return record(y, std::make_shared<SwigluLinearNode>(a.detach(), b.detach(), w.detach()),
                {a, b, w});
}

}  // namespace ssa
