#include "ops/rmsnorm.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
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

void backward_cpu(const Tensor& x, const Tensor& weight, const Tensor& g, const Tensor& rstd,
                  const Tensor& dx, const Tensor& dw) {
  dispatch_float(g, "rmsnorm backward", [&](auto zero) {
    using T = decltype(zero);
    if (dx.defined())
      input_gradient(x.data<T>(), weight.data<T>(), g.data<T>(), dx.data<T>(), rows_of(x),
                     rstd.data<double>());
    if (dw.defined())
      weight_gradient(x.data<T>(), g.data<T>(), dw.data<T>(), rows_of(x), rstd.data<double>());
  });
}

#ifdef SSA_HAVE_CUDA
void backward_cuda(const Tensor& x, const Tensor& weight, const Tensor& g, const Tensor& rstd,
                   const Tensor& dx, const Tensor& dw) {
  const Rows rows = rows_of(x);
  cuda::rmsnorm_backward(x.raw(), weight.raw(), g.raw(), rstd.data<float>(),
                         dx.defined() ? dx.raw() : nullptr, dw.defined() ? dw.raw() : nullptr,
                         x.dtype(), rows.count, rows.dim);
}
#endif

// rstd: one value per row, f64 on the CPU, f32 on CUDA.
struct RmsNormNode : Node {
  Tensor x, weight, rstd;
  RmsNormNode(Tensor x_, Tensor weight_, Tensor rstd_)
      : x(std::move(x_)), weight(std::move(weight_)), rstd(std::move(rstd_)) {}
  const char* name() const override { return "rmsnorm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx, dw;
    if (inputs()[0].requires_grad()) dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (inputs()[1].requires_grad())
      dw = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
    if (g.is_cpu())
      backward_cpu(x, weight, g, rstd, dx, dw);
    else
      SSA_ON_CUDA("rmsnorm backward", backward_cuda(x, weight, g, rstd, dx, dw));
    return {dx, dw};
  }
  void release() override { x = weight = rstd = Tensor(); }
};

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
  check_same_kind({&x, &weight}, "rmsnorm");
  SSA_CHECK(x.rank() >= 1 && x.shape().back() > 0 && weight.shape() == Shape{x.shape().back()},
            "rmsnorm: x {} and weight {} (expected x [..., D], D > 0, weight [D])", x.shape().str(),
            weight.shape().str());
  SSA_CHECK(eps >= 0, "rmsnorm: eps {} is negative", eps);
  const Rows rows = rows_of(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = Tensor::empty({rows.count}, x.is_cpu() ? DType::f64 : DType::f32, x.device());
  if (x.is_cpu()) {
    dispatch_float(x, "rmsnorm", [&](auto zero) {
      using T = decltype(zero);
      normalize(x.data<T>(), weight.data<T>(), y.data<T>(), rows, eps, rstd.data<double>());
    });
  } else {
    SSA_ON_CUDA("rmsnorm", cuda::rmsnorm_forward(x.raw(), weight.raw(), y.raw(), rstd.data<float>(),
                                                 x.dtype(), rows.count, rows.dim, eps));
  }
  if (!should_record({&x, &weight})) return y;
  return record(y, std::make_shared<RmsNormNode>(x.detach(), weight.detach(), std::move(rstd)),
                {x, weight});
}

}  // namespace ssa
