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

// The operands' layout (cuda/swiglu.h): a and b (da, db) in rows `pitch` apart, out and g
// contiguous.
struct GateRows {
  int64_t rows, width, pitch;
  int64_t at(int64_t i) const { return pitch == width ? i : i / width * pitch + i % width; }
  int64_t size() const { return rows * width; }
#ifdef SSA_HAVE_CUDA
  cuda::SwigluRows on_cuda() const { return {rows, width, pitch}; }
#endif
};

template <typename T>
void swiglu_forward(const T* a, const T* b, T* out, const GateRows& r) {
#pragma omp parallel for schedule(static) if (r.size() >= kParallelElements)
  for (int64_t i = 0; i < r.size(); ++i) {
    const int64_t k = r.at(i);
    out[i] = a[k] * sigmoid(a[k]) * b[k];
  }
}

// With s = sigmoid(a): d silu(a)/da = s · (1 + a · (1 − s)).
template <typename T>
void swiglu_backward(const T* a, const T* b, const T* g, T* da, T* db, const GateRows& r) {
#pragma omp parallel for schedule(static) if (r.size() >= kParallelElements)
  for (int64_t i = 0; i < r.size(); ++i) {
    const int64_t k = r.at(i);
    const T s = sigmoid(a[k]);
    da[k] = g[i] * b[k] * s * (T(1) + a[k] * (T(1) - s));
    db[k] = g[i] * a[k] * s;
  }
}

// out = silu(a) · b over the layout r; a and b point into `like`'s storage (dtype, device).
void gate_forward(const Tensor& like, const void* a, const void* b, const Tensor& out,
                  const GateRows& r) {
  if (like.is_cpu()) {
    dispatch_float(like, "swiglu", [&](auto zero) {
      using T = decltype(zero);
      swiglu_forward(static_cast<const T*>(a), static_cast<const T*>(b), out.data<T>(), r);
    });
    return;
  }
  SSA_ON_CUDA("swiglu", cuda::swiglu_forward(a, b, out.raw(), like.dtype(), r.on_cuda()));
}

void gate_backward(const Tensor& g, const void* a, const void* b, void* da, void* db,
                   const GateRows& r) {
  if (g.is_cpu()) {
    dispatch_float(g, "swiglu backward", [&](auto zero) {
      using T = decltype(zero);
      swiglu_backward(static_cast<const T*>(a), static_cast<const T*>(b), g.data<T>(),
                      static_cast<T*>(da), static_cast<T*>(db), r);
    });
    return;
  }
  SSA_ON_CUDA("swiglu backward",
              cuda::swiglu_backward(a, b, g.raw(), da, db, g.dtype(), r.on_cuda()));
}

struct SwigluNode : Node {
  Tensor a, b;
  SwigluNode(Tensor a_, Tensor b_) : a(std::move(a_)), b(std::move(b_)) {}
  const char* name() const override { return "swiglu"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor da = Tensor::empty(a.shape(), a.dtype(), a.device());
    Tensor db = Tensor::empty(b.shape(), b.dtype(), b.device());
    const int64_t n = a.numel();
    gate_backward(g, a.raw(), b.raw(), da.raw(), db.raw(), {1, n, n});
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
};

// Where column col of the matrix y starts (the halves of a stacked product).
void* column(const Tensor& y, int64_t col) {
  return static_cast<char*>(y.raw()) + col * static_cast<int64_t>(dtype_size(y.dtype()));
}

// inputs: h, w1, w3. Keeps h, the stacked weight and the stacked product y = h·[w1; w3]ᵀ.
struct SwigluProjectionsNode : Node {
  Tensor h, stacked, y;
  SwigluProjectionsNode(Tensor h_, Tensor stacked_, Tensor y_)
      : h(std::move(h_)), stacked(std::move(stacked_)), y(std::move(y_)) {}
  const char* name() const override { return "swiglu_projections"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const int64_t rows = y.dim(0), width = y.dim(1) / 2, in = h.shape().back();
    Tensor dy = Tensor::empty(y.shape(), y.dtype(), y.device());
    gate_backward(g, column(y, 0), column(y, width), column(dy, 0), column(dy, width),
                  {rows, width, 2 * width});
    std::vector<Tensor> grads{inputs()[0].requires_grad()
                                  ? matrix_product(dy, stacked, false, false).reshape(h.shape())
                                  : Tensor()};
    const std::vector<Tensor> weight_grads =
        stacked_weight_gradients(dy, h.reshape({rows, in}), {inputs()[1], inputs()[2]});
    grads.insert(grads.end(), weight_grads.begin(), weight_grads.end());
    return grads;
  }
  void release() override { h = stacked = y = Tensor(); }
};

}  // namespace

Tensor swiglu(const Tensor& a, const Tensor& b) {
  check_same_kind({&a, &b}, "swiglu");
  SSA_CHECK(a.shape() == b.shape(), "swiglu: gate {} and up {} shapes differ", a.shape().str(),
            b.shape().str());
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  gate_forward(a, a.raw(), b.raw(), out, {1, n, n});
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<SwigluNode>(a.detach(), b.detach()), {a, b});
}

Tensor swiglu_projections(const Tensor& h, const Tensor& w1, const Tensor& w3) {
  check_same_kind({&h, &w1, &w3}, "swiglu_projections");
  SSA_CHECK(
      h.rank() >= 1 && w1.rank() == 2 && w1.shape() == w3.shape() && w1.dim(1) == h.shape().back(),
      "swiglu_projections: h {}, w1 {} and w3 {} (expected h [..., in], w1 and w3 "
      "[width, in])",
      h.shape().str(), w1.shape().str(), w3.shape().str());
  const int64_t in = h.shape().back(), width = w1.dim(0), rows = h.numel() / in;
  const Tensor stacked = stacked_rows({w1, w3});
  Tensor y = matrix_product(h.reshape({rows, in}), stacked, false, true);
  Shape out_shape = h.shape();
  out_shape.dims[out_shape.rank - 1] = width;
  Tensor out = Tensor::empty(out_shape, h.dtype(), h.device());
  gate_forward(y, column(y, 0), column(y, width), out, {rows, width, 2 * width});
  if (!should_record({&h, &w1, &w3})) return out;
  return record(out,
                std::make_shared<SwigluProjectionsNode>(h.detach(), stacked.detach(), std::move(y)),
                {h, w1, w3});
}

}  // namespace ssa
