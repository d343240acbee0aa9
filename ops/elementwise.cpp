#include "ops/elementwise.h"

#include "autograd/autograd.h"
#include "ops/dispatch.h"

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

// d(sum)/da = 1 · factor, broadcast to a's shape.
struct SumNode : Node {
  Shape shape;
  double factor;
  SumNode(Shape s, double f) : shape(s), factor(f) {}
  const char* name() const override { return "sum"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {Tensor::full(shape, g.item() * factor, g.dtype(), g.device())};
  }
};

Tensor reduce_sum(const Tensor& a, double factor, const char* op) {
  double total = dispatch_float(a, op, [&](auto zero) {
    using T = decltype(zero);
    const T* p = a.data<T>();
    double acc = 0;
    for (int64_t i = 0; i < a.numel(); ++i) acc += p[i];
    return acc;
  });
  Tensor out = Tensor::scalar(total * factor, a.dtype(), a.device());
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<SumNode>(a.shape(), factor), {a});
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_binary(a, b, "add");
  Tensor out = dispatch_float(a, "add", [&](auto zero) {
    using T = decltype(zero);
    return map2<T>(a, b, [](T x, T y) { return x + y; });
  });
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<AddNode>(), {a, b});
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_binary(a, b, "mul");
  Tensor out = dispatch_float(a, "mul", [&](auto zero) {
    using T = decltype(zero);
    return map2<T>(a, b, [](T x, T y) { return x * y; });
  });
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<MulNode>(a.detach(), b.detach()), {a, b});
}

Tensor scale(const Tensor& a, double factor) {
  Tensor out = dispatch_float(a, "scale", [&](auto zero) {
    using T = decltype(zero);
    return map2<T>(a, a, [factor](T x, T) { return static_cast<T>(x * factor); });
  });
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<ScaleNode>(factor), {a});
}

Tensor sum(const Tensor& a) { return reduce_sum(a, 1.0, "sum"); }

Tensor mean(const Tensor& a) {
  SSA_CHECK(a.numel() > 0, "mean of an empty tensor");
  return reduce_sum(a, 1.0 / static_cast<double>(a.numel()), "mean");
}

}  // namespace ssa
