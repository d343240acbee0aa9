#include "cuda/adamw.h"
#include "cuda/reduce.cuh"

namespace ssa::cuda {
namespace {

template <int W>
struct Update {
  float* param;
  const float* grad;
  float* m;
  float* v;
  const uint32_t* decay_bits;
  AdamWStep s;
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
      const double g = static_cast<float>(static_cast<double>(x.grad.v[j]) * s.grad_scale);
      const double p = x.param.v[j];
      const double m_j = s.beta1 * x.m.v[j] + (1 - s.beta1) * g;
      const double v_j = s.beta2 * x.v.v[j] + (1 - s.beta2) * g * g;
      new_m.v[j] = static_cast<float>(m_j);
      new_v.v[j] = static_cast<float>(v_j);
      const double update = (m_j / s.bias1) / (sqrt(v_j / s.bias2) + s.eps);
      const bool decays = (x.decay_word >> ((i * W + j) % 32)) & 1u;
      const double decay_rate = decays ? s.weight_decay : 0.0;
      new_param.v[j] = static_cast<float>(p - s.lr * (update + decay_rate * p));
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
    return Update<w.value>{param, grad, m, v, decay_bits, step, rounded};
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
