#include "ops/smooth_l1.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#include "ops/gate.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/smooth_l1.h"
#endif

namespace ssa {
namespace {

// The sum is taken over fixed chunks of this many elements, then over the chunks in order, so
// it does not depend on the thread count.
constexpr int64_t kChunk = 1 << 14;

double smooth_l1_of(double d, double beta) {
  const double size = std::abs(d);
  return size < beta ? 0.5 * d * d / beta : size - 0.5 * beta;
}

// d SmoothL1 / dd: d / beta inside the quadratic zone, sign(d) outside.
double smooth_l1_slope(double d, double beta) {
  if (std::abs(d) < beta) return d / beta;
  return static_cast<double>((d > 0) - (d < 0));
}

template <typename T>
double smooth_l1_sum(const T* a, const T* b, int64_t n, double beta) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t c = 0; c < chunks; ++c) {
    double sum = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
      sum += smooth_l1_of(static_cast<double>(a[i]) - b[i], beta);
    partial[c] = sum;
  }
  double total = 0;
  for (double sum : partial) total += sum;
  return total;
}

// da = dloss/n · slope(a − b),  db = −da.
template <typename T>
void smooth_l1_backward(const T* a, const T* b, T* da, T* db, int64_t n, double beta,
                        double scale) {
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T grad = static_cast<T>(scale * smooth_l1_slope(static_cast<double>(a[i]) - b[i], beta));
    da[i] = grad;
    db[i] = -grad;
  }
}

struct SmoothL1Node : Node {
  Tensor a, b;
  double beta;
  SmoothL1Node(Tensor a_, Tensor b_, double beta_)
      : a(std::move(a_)), b(std::move(b_)), beta(beta_) {}
  const char* name() const override { return "smooth_l1"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (!g.is_cpu()) return backward_on_cuda(g);
    Tensor da = Tensor::empty(a.shape(), a.dtype(), a.device());
    Tensor db = Tensor::empty(b.shape(), b.dtype(), b.device());
    const double scale = g.item() / static_cast<double>(a.numel());
    dispatch_float(a, "smooth_l1 backward", [&](auto zero) {
      using T = decltype(zero);
      smooth_l1_backward(a.data<T>(), b.data<T>(), da.data<T>(), db.data<T>(), a.numel(), beta,
                         scale);
    });
    return {da, db};
  }
  // The gradient already summed for a or b (in ssa mode, the output projection's, for the
  // output the layer passes on) takes this one's in place.
  std::vector<Tensor> backward_on_cuda([[maybe_unused]] const Tensor& g) const {
    const GradientTarget da = gradient_target(inputs()[0], a);
    const GradientTarget db = da.adds
                                  ? GradientTarget{Tensor::empty(b.shape(), b.dtype(), b.device())}
                                  : gradient_target(inputs()[1], b);
    SSA_ON_CUDA("smooth_l1 backward",
                cuda::smooth_l1_backward(a.raw(), b.raw(), g.raw(), g.dtype(), da.tensor.raw(),
                                         db.tensor.raw(), a.dtype(), a.numel(), beta,
                                         da.adds   ? cuda::AddInto::da
                                         : db.adds ? cuda::AddInto::db
                                                   : cuda::AddInto::none));
    return {da.tensor, db.tensor};
  }
  void release() override { a = b = Tensor(); }
};

// b gated on the fly (gated_smooth_l1 on CUDA).
struct GatedSmoothL1Node : Node {
  Tensor a, b, logits;
  double beta;
  GatedSmoothL1Node(Tensor a_, Tensor b_, Tensor logits_, double beta_)
      : a(std::move(a_)), b(std::move(b_)), logits(std::move(logits_)), beta(beta_) {}
  const char* name() const override { return "gated_smooth_l1"; }
  // a's gradient is added into the one summed so far where there is one (as smooth_l1's).
  std::vector<Tensor> backward([[maybe_unused]] const Tensor& g) override {
    const GradientTarget da = gradient_target(inputs()[0], a);
    Tensor d_b = Tensor::empty(b.shape(), b.dtype(), b.device());
    Tensor d_logits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    SSA_ON_CUDA("gated_smooth_l1 backward",
                cuda::gated_smooth_l1_backward(a.raw(), b.raw(), logits.raw(), g.raw(), g.dtype(),
                                               da.tensor.raw(), d_b.raw(), d_logits.raw(),
                                               a.dtype(), logits.numel(), b.dim(3), beta, da.adds));
    return {da.tensor, d_b, d_logits};
  }
  void release() override { a = b = logits = Tensor(); }
};

}  // namespace

Tensor smooth_l1(const Tensor& a, const Tensor& b, double beta) {
  check_same_kind({&a, &b}, "smooth_l1");
  SSA_CHECK(a.shape() == b.shape() && a.numel() > 0,
            "smooth_l1: shapes {} and {} must be equal and non-empty", a.shape().str(),
            b.shape().str());
  SSA_CHECK(beta >= 0, "smooth_l1: beta {} is negative", beta);
  Tensor out;
  if (a.is_cpu()) {
    const double total = dispatch_float(a, "smooth_l1", [&](auto zero) {
      using T = decltype(zero);
      return smooth_l1_sum(a.data<T>(), b.data<T>(), a.numel(), beta);
    });
    out = Tensor::scalar(total / static_cast<double>(a.numel()), a.dtype(), a.device());
  } else {
    out = Tensor::empty(Shape{}, reduced_dtype(a.dtype()), a.device());
    SSA_ON_CUDA("smooth_l1", cuda::smooth_l1_forward(a.raw(), b.raw(), a.dtype(), a.numel(), beta,
                                                     out.raw(), out.dtype()));
  }
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<SmoothL1Node>(a.detach(), b.detach(), beta), {a, b});
}

Tensor gated_smooth_l1(const Tensor& a, const Tensor& b, const Tensor& logits, double beta) {
  check_same_kind({&a, &b, &logits}, "gated_smooth_l1");
  SSA_CHECK(a.shape() == b.shape() && b.rank() == 4 && b.numel() > 0 &&
                logits.shape() == Shape({b.dim(0), b.dim(1), b.dim(2)}),
            "gated_smooth_l1: a {} and b {} must be equal [B, T, H, head_dim], non-empty, and "
            "logits {} [B, T, H]",
            a.shape().str(), b.shape().str(), logits.shape().str());
  if (a.is_cpu()) return smooth_l1(a, head_gate(b, logits), beta);
  SSA_CHECK(beta >= 0, "gated_smooth_l1: beta {} is negative", beta);
  Tensor out = Tensor::empty(Shape{}, reduced_dtype(a.dtype()), a.device());
  SSA_ON_CUDA("gated_smooth_l1", cuda::gated_smooth_l1_forward(a.raw(), b.raw(), logits.raw(),
                                                               a.dtype(), logits.numel(), b.dim(3),
                                                               beta, out.raw(), out.dtype()));
  if (!should_record({&a, &b, &logits})) return out;
  return record(out,
                std::make_shared<GatedSmoothL1Node>(a.detach(), b.detach(), logits.detach(), beta),
                {a, b, logits});
}

}  // namespace ssa
