#include "ops/gate.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/gate.h"
#endif

namespace ssa {
namespace {

// o viewed as `heads` rows (one per (b, t, h)) of head_dim; logits holds one value per row.
struct GateLayout {
  int64_t heads, head_dim;
};

template <typename T>
void gate_forward(const T* o, const T* logits, T* out, GateLayout layout) {
#pragma omp parallel for schedule(static) if (layout.heads * layout.head_dim >= kParallelElements)
  for (int64_t r = 0; r < layout.heads; ++r) {
    const T g = sigmoid(logits[r]);
    for (int64_t j = 0; j < layout.head_dim; ++j)
      out[r * layout.head_dim + j] = o[r * layout.head_dim + j] * g;
  }
}

// do = dout · s;  dlogit = s · (1 − s) · Σ_j dout_j · o_j,  s = sigmoid(logit).
template <typename T>
void gate_backward(const T* o, const T* logits, const T* dout, T* d_o, T* d_logits,
                   GateLayout layout) {
#pragma omp parallel for schedule(static) if (layout.heads * layout.head_dim >= kParallelElements)
  for (int64_t r = 0; r < layout.heads; ++r) {
    const T s = sigmoid(logits[r]);
    const int64_t base = r * layout.head_dim;
    double dot = 0;
    for (int64_t j = 0; j < layout.head_dim; ++j) {
      d_o[base + j] = dout[base + j] * s;
      dot += static_cast<double>(dout[base + j]) * o[base + j];
    }
    d_logits[r] = static_cast<T>(dot) * s * (T(1) - s);
  }
}

GateLayout layout_of(const Tensor& o) { return {o.numel() / o.dim(3), o.dim(3)}; }

struct HeadGateNode : Node {
  Tensor o, logits;
  HeadGateNode(Tensor o_, Tensor logits_) : o(std::move(o_)), logits(std::move(logits_)) {}
  const char* name() const override { return "head_gate"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor d_o = Tensor::empty(o.shape(), o.dtype(), o.device());
    Tensor d_logits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    const GateLayout layout = layout_of(o);
    if (g.is_cpu()) {
      dispatch_float(g, "head_gate backward", [&](auto zero) {
        using T = decltype(zero);
        gate_backward(o.data<T>(), logits.data<T>(), g.data<T>(), d_o.data<T>(), d_logits.data<T>(),
                      layout);
      });
    } else {
      SSA_ON_CUDA(
          "head_gate backward",
          cuda::head_gate_backward(o.raw(), logits.raw(), g.raw(), d_o.raw(), d_logits.raw(),
                                   o.dtype(), layout.heads, layout.head_dim));
    }
    return {d_o, d_logits};
  }
  void release() override { o = logits = Tensor(); }
};

}  // namespace

Tensor head_gate(const Tensor& o, const Tensor& logits) {
  check_same_kind({&o, &logits}, "head_gate");
  SSA_CHECK(
      o.rank() == 4 && o.dim(3) > 0 && logits.shape() == Shape({o.dim(0), o.dim(1), o.dim(2)}),
      "head_gate: o {} must be [B, T, H, head_dim > 0] and logits {} [B, T, H]", o.shape().str(),
      logits.shape().str());
  Tensor out = Tensor::empty(o.shape(), o.dtype(), o.device());
  const GateLayout layout = layout_of(o);
  if (o.is_cpu()) {
    dispatch_float(o, "head_gate", [&](auto zero) {
      using T = decltype(zero);
      gate_forward(o.data<T>(), logits.data<T>(), out.data<T>(), layout);
    });
  } else {
    SSA_ON_CUDA("head_gate", cuda::head_gate_forward(o.raw(), logits.raw(), out.raw(), o.dtype(),
                                                     layout.heads, layout.head_dim));
  }
  if (!should_record({&o, &logits})) return out;
  return record(out, std::make_shared<HeadGateNode>(o.detach(), logits.detach()), {o, logits});
}

}  // namespace ssa
