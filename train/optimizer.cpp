#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/adamw.h"
#endif

namespace ssa {
namespace {

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double decay,
                  const AdamWConfig& c, double bias1, double bias2, double grad_scale) {
  for (int64_t i = 0; i < n; ++i) {
    double g = static_cast<T>(grad[i] * grad_scale);
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

// Bit i of word i / 32 is set where parameter begin + i decays (an i32 tensor: one bit per
// parameter of [begin, end)).
Tensor decay_bits(const Parameters& params, int64_t begin, int64_t end) {
  std::vector<uint32_t> words(static_cast<size_t>((end - begin + 31) / 32), 0u);
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params.specs()[i].weight_decay) continue;
    const int64_t first = std::max(begin, params.offsets()[i]);
    const int64_t last = std::min(end, params.offsets()[i] + params[i].numel());
    for (int64_t j = first - begin; j < last - begin; ++j) words[j / 32] |= 1u << (j % 32);
  }
  std::vector<double> values(words.size());
  for (size_t w = 0; w < words.size(); ++w) values[w] = static_cast<int32_t>(words[w]);
  return Tensor::from(values, {static_cast<int64_t>(words.size())}, DType::i32)
      .to(params.flat().device());
}

void check_cuda_flat(const Tensor& flat, const char* what) {
  SSA_CHECK(flat.dtype() == DType::f32, "{}: CUDA buffers must be f32, got {}", what,
            dtype_name(flat.dtype()));
}

}  // namespace

AdamW::AdamW(const Parameters& params, AdamWConfig config, int64_t begin, int64_t end)
    : params_(params),
      config_(config),
      begin_(begin),
      end_(end < 0 ? params.count() : end),
      m_(Tensor::zeros({end_ - begin_}, params.flat().dtype(), params.flat().device())),
      v_(Tensor::zeros({end_ - begin_}, params.flat().dtype(), params.flat().device())) {
  SSA_CHECK(0 <= begin_ && begin_ <= end_ && end_ <= params.count(),
            "AdamW range [{}, {}) of {} parameters", begin_, end_, params.count());
  if (params.flat().is_cpu()) return;
  check_cuda_flat(params.flat(), "AdamW");
  SSA_CHECK(begin_ % 32 == 0, "AdamW on CUDA: range start {} is not a multiple of 32", begin_);
  decay_bits_ = decay_bits(params, begin_, end_);
}

void AdamW::step(double lr, const Tensor& bf16_params, double grad_scale) {
  ++step_count_;
  const double bias1 = 1 - std::pow(config_.beta1, static_cast<double>(step_count_));
  const double bias2 = 1 - std::pow(config_.beta2, static_cast<double>(step_count_));
  if (bf16_params.defined())
    SSA_CHECK(bf16_params.dtype() == DType::bf16 && bf16_params.numel() == end_ - begin_ &&
                  bf16_params.device() == params_.flat().device(),
              "AdamW: the bf16 copy {} ({} on {}) does not match the flat parameters ({} on {})",
              bf16_params.shape().str(), dtype_name(bf16_params.dtype()),
              device_name(bf16_params.device()), params_.flat().shape().str(),
              device_name(params_.flat().device()));
  if (params_.flat().is_cpu()) {
    step_cpu(lr, bias1, bias2, grad_scale);
    if (bf16_params.defined()) bf16_params.copy_from(params_.flat().view(begin_, {end_ - begin_}));
    return;
  }
  SSA_ON_CUDA("AdamW",
              cuda::adamw_update(
                  params_.flat().data<float>() + begin_, params_.flat_grad().data<float>() + begin_,
                  m_.data<float>(), v_.data<float>(),
                  reinterpret_cast<const uint32_t*>(decay_bits_.data<int32_t>()), end_ - begin_,
                  {lr, config_.beta1, config_.beta2, config_.eps, config_.weight_decay, bias1,
                   bias2, grad_scale},
                  bf16_params.defined() ? bf16_params.raw() : nullptr));
}

void AdamW::step_cpu(double lr, double bias1, double bias2, double grad_scale) {
  const Tensor& flat = params_.flat();
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t offset = std::max(begin_, params_.offsets()[i]);
    const int64_t n = std::min(end_, params_.offsets()[i] + params_[i].numel()) - offset;
    if (n <= 0) continue;
    const double decay = params_.specs()[i].weight_decay ? config_.weight_decay : 0.0;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      adamw_update(flat.data<T>() + offset, params_.flat_grad().data<T>() + offset,
                   m_.data<T>() + (offset - begin_), v_.data<T>() + (offset - begin_), n, lr, decay,
                   config_, bias1, bias2, grad_scale);
    };
    if (flat.dtype() == DType::f32)
      run(float{});
    else
      run(double{});
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
  if (!flat_grad.is_cpu()) {
    check_cuda_flat(flat_grad, "gradient_norm");
    double squares = 0;
    SSA_ON_CUDA("gradient_norm",
                squares = cuda::sum_squares(flat_grad.data<float>(), flat_grad.numel()));
    return std::sqrt(squares);
  }
  double squares = flat_grad.dtype() == DType::f32
                       ? sum_squares(flat_grad.data<float>(), flat_grad.numel())
                       : sum_squares(flat_grad.data<double>(), flat_grad.numel());
  return std::sqrt(squares);
}

double clip_factor(double norm, double max_norm) {
  return norm > max_norm && max_norm > 0 ? max_norm / norm : 1.0;
}

}  // namespace ssa
