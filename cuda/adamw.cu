#include "cuda/adamw.h"
#include "cuda/reduce.cuh"

namespace ssa::cuda {
namespace {

// The step's constants as the kernel uses them: in float, but for the gradient's scale (the
// product is rounded once, as on the CPU).
struct FloatStep {
  float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
  float inverse_bias1, inverse_bias2;
  double grad_scale;

  explicit FloatStep(const AdamWStep& s)
      : lr(static_cast<float>(s.lr)),
        beta1(static_cast<float>(s.beta1)),
        one_minus_beta1(static_cast<float>(1 - s.beta1)),
        beta2(static_cast<float>(s.beta2)),
        one_minus_beta2(static_cast<float>(1 - s.beta2)),
        eps(static_cast<float>(s.eps)),
        weight_decay(static_cast<float>(s.weight_decay)),
        inverse_bias1(static_cast<float>(1 / s.bias1)),
        inverse_bias2(static_cast<float>(1 / s.bias2)),
        grad_scale(s.grad_scale) {}
};

template <int W>
struct Update {
  float* param;
  const float* grad;
  float* m;
  float* v;
  const uint32_t* decay_bits;
  FloatStep s;
  __nv_bfloat16* bf16_param;
  struct Operands {
    Values<float, W> param, grad, m, v;
    uint32_t decay_word;  // W divides 32: one word holds the run's bits
  };
  __device__ Operands load(int64_t i) const {
    return {values_at<W>(param, i), values_at<W>(grad, i), values_at<W>(m, i), values_at<W>(v, i),
            decay_bits[i * W / 32]};
  }
  __device__ void store(int64_t i, const Operands& x) const {
    Values<float, W> new_param, new_m, new_v;
    Values<__nv_bfloat16, W> rounded;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float g = static_cast<float>(static_cast<double>(x.grad.v[j]) * s.grad_scale);
      const float p = x.param.v[j];
      new_m.v[j] = fmaf(s.beta1, x.m.v[j], s.one_minus_beta1 * g);
      new_v.v[j] = fmaf(s.beta2, x.v.v[j], s.one_minus_beta2 * g * g);
      const float update =
          new_m.v[j] * s.inverse_bias1 / (sqrtf(new_v.v[j] * s.inverse_bias2) + s.eps);
      const bool decays = (x.decay_word >> ((i * W + j) % 32)) & 1u;
      new_param.v[j] = p - s.lr * (update + (decays ? s.weight_decay : 0.f) * p);
      rounded.v[j] = __float2bfloat16(new_param.v[j]);
    }
    values_at<W>(param, i) = new_param;
    values_at<W>(m, i) = new_m;
    values_at<W>(v, i) = new_v;
    if (bf16_param != nullptr) values_at<W>(bf16_param, i) = rounded;
  }
};

struct Square {
  const float* x;
  __device__ double operator()(int64_t i) const { return static_cast<double>(x[i]) * x[i]; }
};

struct StoreTotal {
  double* out;
  __device__ void operator()(double total) const { *out = total; }
};

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, const uint32_t* decay_bits,
                  int64_t n, const AdamWStep& step, void* bf16_param) {
  auto* rounded = static_cast<__nv_bfloat16*>(bf16_param);
  for_each_run<kPack<float>>(n, {param, grad, m, v, bf16_param}, [&](auto w) {
    return Update<w.value>{param, grad, m, v, decay_bits, FloatStep(step), rounded};
  });
}

double sum_squares(const float* x, int64_t n) {
  DeviceScratch total(sizeof(double));
  deterministic_sum(n, Square{x}, StoreTotal{total.as<double>()});
  double result = 0;
  copy(&result, false, total.as<void>(), true, sizeof(result));
  return result;
}

}  // namespace ssa::cuda
