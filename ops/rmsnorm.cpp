#include "ops/rmsnorm.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#include "ops/elementwise.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/rmsnorm.h"
#endif

namespace ssa {
namespace {

constexpr int64_t kColumnBlock = 32;  // columns of dweight summed by one thread

// x [..., dim] viewed as `count` rows of `dim`.
struct Rows {
  int64_t count, dim;
};

Rows rows_of(const Tensor& x) { return {x.numel() / x.shape().back(), x.shape().back()}; }

// y[r] = x[r] · rstd[r] · w with rstd[r] = 1 / sqrt(mean(x[r]²) + eps), kept for backward.
template <typename T>
void normalize(const T* x, const T* weight, T* y, Rows rows, double eps, double* rstd) {
#pragma omp parallel for schedule(static) if (rows.count * rows.dim >= kParallelElements)
  for (int64_t r = 0; r < rows.count; ++r) {
    const T* xr = x + r * rows.dim;
    double sum_squares = 0;
    for (int64_t j = 0; j < rows.dim; ++j) sum_squares += static_cast<double>(xr[j]) * xr[j];
    rstd[r] = 1.0 / std::sqrt(sum_squares / static_cast<double>(rows.dim) + eps);
    const T scale = static_cast<T>(rstd[r]);
    for (int64_t j = 0; j < rows.dim; ++j) y[r * rows.dim + j] = xr[j] * scale * weight[j];
  }
}

// With x̂ = x·rstd and dx̂ = dy·w: dx = rstd · (dx̂ − x̂ · mean(dx̂ · x̂)).
template <typename T>
void input_gradient(const T* x, const T* weight, const T* dy, T* dx, Rows rows,
                    const double* rstd) {
#pragma omp parallel for schedule(static) if (rows.count * rows.dim >= kParallelElements)
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t base = r * rows.dim;
    double dot = 0;  // Σ_j dx̂_j x̂_j
    for (int64_t j = 0; j < rows.dim; ++j)
      dot += static_cast<double>(dy[base + j]) * weight[j] * x[base + j] * rstd[r];
    const double mean_dot = dot / static_cast<double>(rows.dim);
    for (int64_t j = 0; j < rows.dim; ++j) {
      const double x_hat = x[base + j] * rstd[r];
      dx[base + j] = static_cast<T>(rstd[r] * (dy[base + j] * weight[j] - x_hat * mean_dot));
    }
  }
}

// dw_j = Σ_r dy[r, j] · x̂[r, j]; threads own blocks of columns and sum rows in order, so the
// result does not depend on the thread count.
template <typename T>
void weight_gradient(const T* x, const T* dy, T* dw, Rows rows, const double* rstd) {
#pragma omp parallel for schedule(static) if (rows.count * rows.dim >= kParallelElements)
  for (int64_t first = 0; first < rows.dim; first += kColumnBlock) {
    const int64_t width = std::min(kColumnBlock, rows.dim - first);
    std::array<double, kColumnBlock> sums{};
    for (int64_t r = 0; r < rows.count; ++r) {
      const int64_t base = r * rows.dim + first;
      for (int64_t j = 0; j < width; ++j)
        sums[j] += static_cast<double>(dy[base + j]) * x[base + j] * rstd[r];
    }
    for (int64_t j = 0; j < width; ++j) dw[first + j] = static_cast<T>(sums[j]);
  }
}

// The norm's gradients from g, its output's: dx (plus d_through where defined) and dw, each
// where defined. x is the norm's input.
void backward_cpu(const Tensor& x, const Tensor& weight, const Tensor& g, const Tensor& rstd,
                  const Tensor& dx, const Tensor& dw, const Tensor& d_through) {
  dispatch_float(g, "rmsnorm backward", [&](auto zero) {
    using T = decltype(zero);
    if (dx.defined()) {
      input_gradient(x.data<T>(), weight.data<T>(), g.data<T>(), dx.data<T>(), rows_of(x),
                     rstd.data<double>());
      if (d_through.defined()) accumulate_into(dx, d_through);
    }
    if (dw.defined())
      weight_gradient(x.data<T>(), g.data<T>(), dw.data<T>(), rows_of(x), rstd.data<double>());
  });
}

#ifdef SSA_HAVE_CUDA
void backward_cuda(const Tensor& x, const Tensor& weight, const Tensor& g, const Tensor& rstd,
                   const Tensor& dx, const Tensor& dw, const Tensor& d_through) {
  const Rows rows = rows_of(x);
  cuda::rmsnorm_backward(x.raw(), weight.raw(), g.raw(), rstd.data<float>(),
                         dx.defined() ? dx.raw() : nullptr, dw.defined() ? dw.raw() : nullptr,
                         x.dtype(), rows.count, rows.dim,
                         d_through.defined() ? d_through.raw() : nullptr);
}
#endif

// What a norm's node keeps: its input x, the weight, and rstd (one value per row, f64 on the
// CPU, f32 on CUDA).
struct NormSaved {
  Tensor x, weight, rstd;

  // {dx, dw} from g, the norm's output gradient; dx includes d_through where that is defined.
  // The flags say which to compute.
  std::vector<Tensor> backward(const Tensor& g, bool want_dx, bool want_dw,
                               const Tensor& d_through) const {
    Tensor dx, dw;
    if (want_dx) dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (want_dw) dw = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
    if (g.is_cpu())
      backward_cpu(x, weight, g, rstd, dx, dw, d_through);
    else
      SSA_ON_CUDA("rmsnorm backward", backward_cuda(x, weight, g, rstd, dx, dw, d_through));
    return {dx, dw};
  }
};

struct RmsNormNode : Node {
  NormSaved saved;
  explicit RmsNormNode(NormSaved saved_) : saved(std::move(saved_)) {}
  const char* name() const override { return "rmsnorm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return saved.backward(g, inputs()[0].requires_grad(), inputs()[1].requires_grad(), Tensor());
  }
  void release() override { saved = NormSaved(); }
};

// inputs: x, residual, weight; outputs: sum, normed. x and residual share one gradient: the
// sum's own plus what comes through the norm.
struct AddRmsNormNode : MultiOutputNode {
  NormSaved saved;  // saved.x is the sum
  explicit AddRmsNormNode(NormSaved saved_) : saved(std::move(saved_)) {}
  const char* name() const override { return "add_rmsnorm"; }
  std::vector<Tensor> backward_outputs(const std::vector<Tensor>& grads) override {
    const Tensor &d_sum = grads[0], &d_normed = grads[1];
    const bool want_dx = inputs()[0].requires_grad() || inputs()[1].requires_grad();
    if (!d_normed.defined()) return {d_sum, d_sum, Tensor()};
    std::vector<Tensor> norm =
        saved.backward(d_normed, want_dx, inputs()[2].requires_grad(), d_sum);
    return {norm[0], norm[0], norm[1]};
  }
  void release() override { saved = NormSaved(); }
};

void check_norm(const Tensor& x, const Tensor& weight, double eps, const char* op) {
  check_same_kind({&x, &weight}, op);
  SSA_CHECK(x.rank() >= 1 && x.shape().back() > 0 && weight.shape() == Shape{x.shape().back()},
            "{}: x {} and weight {} (expected x [..., D], D > 0, weight [D])", op, x.shape().str(),
            weight.shape().str());
  SSA_CHECK(eps >= 0, "{}: eps {} is negative", op, eps);
}

// The norm of x (CPU), or on CUDA of x, or of x + residual written to sum when residual is
// defined. Returns the saved state; writes the norm to y.
NormSaved normalize_into(const Tensor& x, const Tensor& residual, const Tensor& sum,
                         const Tensor& weight, const Tensor& y, double eps) {
  const Rows rows = rows_of(x);
  Tensor rstd = Tensor::empty({rows.count}, x.is_cpu() ? DType::f64 : DType::f32, x.device());
  if (x.is_cpu()) {
    dispatch_float(x, "rmsnorm", [&](auto zero) {
      using T = decltype(zero);
      normalize(x.data<T>(), weight.data<T>(), y.data<T>(), rows, eps, rstd.data<double>());
    });
    return {x, weight, rstd};
  }
  SSA_ON_CUDA("rmsnorm", cuda::rmsnorm_forward(x.raw(), weight.raw(), y.raw(), rstd.data<float>(),
                                               x.dtype(), rows.count, rows.dim, eps,
                                               residual.defined() ? residual.raw() : nullptr,
                                               sum.defined() ? sum.raw() : nullptr));
  return {residual.defined() ? sum : x, weight, rstd};
}

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
  check_norm(x, weight, eps, "rmsnorm");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  NormSaved saved = normalize_into(x, Tensor(), Tensor(), weight, y, eps);
  if (!should_record({&x, &weight})) return y;
  saved.x = saved.x.detach();
  saved.weight = saved.weight.detach();
  return record(y, std::make_shared<RmsNormNode>(std::move(saved)), {x, weight});
}

NormedSum add_rmsnorm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
  check_norm(x, weight, eps, "add_rmsnorm");
  check_same_kind({&x, &residual}, "add_rmsnorm");
  SSA_CHECK(residual.shape() == x.shape(), "add_rmsnorm: residual {} for x {} (expected equal)",
            residual.shape().str(), x.shape().str());
  NormedSum out{Tensor(), Tensor::empty(x.shape(), x.dtype(), x.device())};
  NormSaved saved;
  if (x.is_cpu()) {
    NoGrad not_recording;
    out.sum = add(x, residual);
    saved = normalize_into(out.sum, Tensor(), Tensor(), weight, out.normed, eps);
  } else {
    out.sum = Tensor::empty(x.shape(), x.dtype(), x.device());
    saved = normalize_into(x, residual, out.sum, weight, out.normed, eps);
  }
  if (!should_record({&x, &residual, &weight})) return out;
  saved.x = saved.x.detach();  // the sum: this node's own output
  saved.weight = saved.weight.detach();
  record_outputs({out.sum, out.normed}, std::make_shared<AddRmsNormNode>(std::move(saved)),
                 {x, residual, weight});
  return out;
}

}  // namespace ssa
