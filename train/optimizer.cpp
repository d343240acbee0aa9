#include "train/optimizer.h"

#include <cmath>
#include <numbers>

namespace ssa {
namespace {

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double decay,
                  const AdamWConfig& c, double bias1, double bias2) {
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i];
    double m_i = c.beta1 * m[i] + (1 - c.beta1) * g;
    double v_i = c.beta2 * v[i] + (1 - c.beta2) * g * g;
    m[i] = static_cast<T>(m_i);
    v[i] = static_cast<T>(v_i);
    double update = (m_i / bias1) / (std::sqrt(v_i / bias2) + c.eps);
    param[i] = static_cast<T>(param[i] - lr * (update + decay * param[i]));
  }
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

template <typename T>
void scale_in_place(T* x, int64_t n, double factor) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(x[i] * factor);
}

}  // namespace

AdamW::AdamW(const Parameters& params, AdamWConfig config)
    : params_(params),
      config_(config),
      m_(Tensor::zeros(params.flat().shape(), params.flat().dtype(), params.flat().device())),
      v_(Tensor::zeros(params.flat().shape(), params.flat().dtype(), params.flat().device())) {}

void AdamW::step(double lr) {
  ++step_count_;
  const double bias1 = 1 - std::pow(config_.beta1, static_cast<double>(step_count_));
  const double bias2 = 1 - std::pow(config_.beta2, static_cast<double>(step_count_));
  const Tensor& flat = params_.flat();
  SSA_CHECK(flat.is_cpu(), "AdamW: no CUDA kernel yet");
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t offset = params_.offsets()[i], n = params_[i].numel();
    const double decay = params_.specs()[i].weight_decay ? config_.weight_decay : 0.0;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      adamw_update(flat.data<T>() + offset, params_.flat_grad().data<T>() + offset,
                   m_.data<T>() + offset, v_.data<T>() + offset, n, lr, decay, config_, bias1,
                   bias2);
    };
    if (flat.dtype() == DType::f32) run(float{});
    else run(double{});
  }
}

double learning_rate(const ScheduleConfig& s, int64_t step) {
  if (step < s.warmup_steps)
    return s.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - s.warmup_steps) / static_cast<double>(decay_steps));
  return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + std::cos(std::numbers::pi * progress));
}

double gradient_norm(const Tensor& flat_grad) {
  SSA_CHECK(flat_grad.is_cpu(), "gradient_norm: no CUDA kernel yet");
  double squares = flat_grad.dtype() == DType::f32
                       ? sum_squares(flat_grad.data<float>(), flat_grad.numel())
                       : sum_squares(flat_grad.data<double>(), flat_grad.numel());
  return std::sqrt(squares);
}

void clip_gradient(const Tensor& flat_grad, double norm, double max_norm) {
  if (!(norm > max_norm) || max_norm <= 0) return;
  const double factor = max_norm / norm;
  if (flat_grad.dtype() == DType::f32)
    scale_in_place(flat_grad.data<float>(), flat_grad.numel(), factor);
  else
    scale_in_place(flat_grad.data<double>(), flat_grad.numel(), factor);
}

}  // namespace ssa
