#include "cuda/adamw.h"
#include "cuda/reduce.cuh"

namespace ssa::cuda {
namespace {

struct Update {
  float* param;
  const float* grad;
  float* m;
  float* v;
  const uint32_t* decay_bits;
  AdamWStep s;
  __nv_bfloat16* bf16_param;
  struct Operands {
    float param, grad, m, v;
    uint32_t decay_word;
  };
  __device__ Operands load(int64_t i) const {
    return {param[i], grad[i], m[i], v[i], decay_bits[i / 32]};
  }
  __device__ void store(int64_t i, Operands x) const {
    const double g = x.grad;
    const double m_i = s.beta1 * x.m + (1 - s.beta1) * g;
    const double v_i = s.beta2 * x.v + (1 - s.beta2) * g * g;
    m[i] = static_cast<float>(m_i);
    v[i] = static_cast<float>(v_i);
    const double update = (m_i / s.bias1) / (sqrt(v_i / s.bias2) + s.eps);
    const bool decays = (x.decay_word >> (i % 32)) & 1u;
    const double decay_rate = decays ? s.weight_decay : 0.0;
    const float p = static_cast<float>(x.param - s.lr * (update + decay_rate * x.param));
    param[i] = p;
    if (bf16_param != nullptr) bf16_param[i] = __float2bfloat16(p);
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
  for_each(n, Update{param, grad, m, v, decay_bits, step, static_cast<__nv_bfloat16*>(bf16_param)});
}

double sum_squares(const float* x, int64_t n) {
  DeviceScratch total(sizeof(double));
  deterministic_sum(n, Square{x}, StoreTotal{total.as<double>()});
  double result = 0;
  copy(&result, false, total.as<void>(), true, sizeof(result));
  return result;
}

}  // namespace ssa::cuda
