#include "cuda/device.cuh"
#include "cuda/gate.h"

namespace ssa::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
struct Forward {
  const T* o;
  const T* logits;
  T* out;
  int64_t head_dim;
  struct Operands {
    T value, logit;
  };
  __device__ Operands load(int64_t i) const { return {o[i], logits[i / head_dim]}; }
  __device__ void store(int64_t i, Operands v) const {
    out[i] = from_float<T>(to_float(v.value) * sigmoid(to_float(v.logit)));
  }
};

template <typename T>
__global__ void backward_kernel(const T* o, const T* logits, const T* dout, T* d_o, T* d_logits,
                                int64_t heads, int64_t head_dim) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= heads) return;  // whole warps leave together
  const float s = sigmoid(to_float(logits[row]));
  const int64_t base = row * head_dim;
  float dot = 0;
  for (int64_t j = lane; j < head_dim; j += kWarp) {
    const float g = to_float(dout[base + j]);
    d_o[base + j] = from_float<T>(g * s);
    dot += g * to_float(o[base + j]);
  }
  dot = warp_sum(dot);
  if (lane == 0) d_logits[row] = from_float<T>(dot * s * (1.0f - s));
}

}  // namespace

void head_gate_forward(const void* o, const void* logits, void* out, DType dtype, int64_t heads,
                       int64_t head_dim) {
  with_storage_type(dtype, "head_gate", [&](auto zero) {
    using T = decltype(zero);
    for_each(heads * head_dim, Forward<T>{static_cast<const T*>(o), static_cast<const T*>(logits),
                                          static_cast<T*>(out), head_dim});
  });
}

void head_gate_backward(const void* o, const void* logits, const void* dout, void* d_o,
                        void* d_logits, DType dtype, int64_t heads, int64_t head_dim) {
  if (heads == 0) return;
  with_storage_type(dtype, "head_gate backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t blocks = (heads * kWarp + kThreads - 1) / kThreads;
    backward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(o), static_cast<const T*>(logits), static_cast<const T*>(dout),
        static_cast<T*>(d_o), static_cast<T*>(d_logits), heads, head_dim);
    check_launch();
  });
}

}  // namespace ssa::cuda
