#include "ops/elementwise.h"

#include "autograd/autograd.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/elementwise.h"
#include "cuda/reduce.h"
#endif

namespace ssa {
namespace {

template <typename T, typename F>
Tensor map2(const Tensor& a, const Tensor& b, F f) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  for (int64_t i = 0; i < a.numel(); ++i) po[i] = f(pa[i], pb[i]);
  return out;
}

void check_binary(const Tensor& a, const Tensor& b, const char* op) {
  check_same_kind({&a, &b}, op);
  SSA_CHECK(a.shape() == b.shape(), "{}: shapes {} and {} differ", op, a.shape().str(),
            b.shape().str());
}

struct AddNode : Node {
  const char* name() const override { return "add"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
};

struct MulNode : Node {
  Tensor a, b;
  MulNode(Tensor a_, Tensor b_) : a(std::move(a_)), b(std::move(b_)) {}
  const char* name() const override { return "mul"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    NoGrad no_grad;
    return {inputs()[0].requires_grad() ? mul(g, b) : Tensor(),
            inputs()[1].requires_grad() ? mul(g, a) : Tensor()};
  }
  void release() override { a = b = Tensor(); }
};

struct ScaleNode : Node {
  double factor;
  explicit ScaleNode(double f) : factor(f) {}
  const char* name() const override { return "scale"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    NoGrad no_grad;
    return {scale(g, factor)};
  }
};

// d(sum)/da = 1 · factor, broadcast to a's shape (and dtype: a bf16 input has an f32 sum).
struct SumNode : Node {
  Shape shape;
  DType input_dtype;
  double factor;
  SumNode(Shape s, DType dtype, double f) : shape(s), input_dtype(dtype), factor(f) {}
  const char* name() const override { return "sum"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (g.is_cpu()) return {Tensor::full(shape, g.item() * factor, input_dtype, g.device())};
    Tensor da = Tensor::empty(shape, input_dtype, g.device());
    SSA_ON_CUDA("sum backward", cuda::broadcast_scalar(g.raw(), g.dtype(), factor, da.raw(),
                                                       input_dtype, da.numel()));
    return {da};
  }
};

double sum_cpu(const Tensor& a, const char* op) {
  return dispatch_float(a, op, [&](auto zero) {
    using T = decltype(zero);
    const T* p = a.data<T>();
    double acc = 0;
    for (int64_t i = 0; i < a.numel(); ++i) acc += p[i];
    return acc;
  });
}

Tensor reduce_sum(const Tensor& a, double factor, const char* op) {
  Tensor out;
  if (a.is_cpu()) {
    out = Tensor::scalar(sum_cpu(a, op) * factor, a.dtype(), a.device());
  } else {
    out = Tensor::empty(Shape{}, reduced_dtype(a.dtype()), a.device());
    SSA_ON_CUDA(op, cuda::sum(a.raw(), a.dtype(), a.numel(), factor, out.raw(), out.dtype()));
  }
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<SumNode>(a.shape(), a.dtype(), factor), {a});
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_binary(a, b, "add");
  Tensor out;
  if (a.is_cpu()) {
    out = dispatch_float(a, "add", [&](auto zero) {
      using T = decltype(zero);
      return map2<T>(a, b, [](T x, T y) { return x + y; });
    });
  } else {
    out = Tensor::empty_like(a);
    SSA_ON_CUDA("add", cuda::add(a.raw(), b.raw(), out.raw(), a.dtype(), a.numel()));
  }
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<AddNode>(), {a, b});
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_binary(a, b, "mul");
  Tensor out;
  if (a.is_cpu()) {
    out = dispatch_float(a, "mul", [&](auto zero) {
      using T = decltype(zero);
      return map2<T>(a, b, [](T x, T y) { return x * y; });
    });
  } else {
    out = Tensor::empty_like(a);
    SSA_ON_CUDA("mul", cuda::mul(a.raw(), b.raw(), out.raw(), a.dtype(), a.numel()));
  }
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<MulNode>(a.detach(), b.detach()), {a, b});
}

Tensor scale(const Tensor& a, double factor) {
  Tensor out;
  if (a.is_cpu()) {
    out = dispatch_float(a, "scale", [&](auto zero) {
      using T = decltype(zero);
      return map2<T>(a, a, [factor](T x, T) { return static_cast<T>(x * factor); });
    });
  } else {
    out = Tensor::empty_like(a);
    SSA_ON_CUDA("scale", cuda::scale(a.raw(), out.raw(), a.dtype(), factor, a.numel()));
  }
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<ScaleNode>(factor), {a});
}

Tensor sum(const Tensor& a) { return reduce_sum(a, 1.0, "sum"); }

Tensor mean(const Tensor& a) {
  SSA_CHECK(a.numel() > 0, "mean of an empty tensor");
  return reduce_sum(a, 1.0 / static_cast<double>(a.numel()), "mean");
}

}  // namespace ssa
