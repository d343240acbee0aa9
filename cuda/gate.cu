#include "cuda/device.cuh"
#include "cuda/gate.h"

namespace ssa::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// P consecutive elements of one row per index: P = 1, or kPack<T> for 16-byte loads and stores
// (head_dim a multiple of it).
template <typename T, int P>
struct Forward {
  const T* o;
  const T* logits;
  T* out;
  int64_t head_dim;
  __device__ void operator()(int64_t index) const {
    const float gate = sigmoid(to_float(logits[index * P / head_dim]));
    float v[P];
    load_floats(o + index * P, v);
#pragma unroll
    for (int j = 0; j < P; ++j) v[j] = v[j] * gate;
    store_floats(out + index * P, v);
  }
};

// A group of `lanes` consecutive lanes (a power of two ≤ 32) per row, kPack<T> elements each;
// the group's first lane gets the row's dot product.
template <typename T>
__global__ void backward_packs_kernel(const T* o, const T* logits, const T* dout, T* d_o,
                                      T* d_logits, int64_t heads, int lanes) {
  constexpr int P = kPack<T>;
  const int64_t thread = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, row = thread / lanes;
  const bool inside = row < heads;  // no return: every lane takes part in the shuffles
  const float s = inside ? sigmoid(to_float(logits[row])) : 0.f;
  float dot = 0;
  if (inside) {
    float g[P], v[P];
    load_floats(dout + thread * P, g);
    load_floats(o + thread * P, v);
#pragma unroll
    for (int j = 0; j < P; ++j) {
      dot += g[j] * v[j];
      g[j] = g[j] * s;
    }
    store_floats(d_o + thread * P, g);
  }
  for (int offset = lanes / 2; offset > 0; offset /= 2)
    dot += __shfl_down_sync(0xffffffffu, dot, offset, lanes);
  if (inside && thread % lanes == 0) d_logits[row] = from_float<T>(dot * s * (1.0f - s));
}

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
    const Forward<T, 1> elements{static_cast<const T*>(o), static_cast<const T*>(logits),
                                 static_cast<T*>(out), head_dim};
    if (head_dim % kPack<T> == 0 && packs_aligned({o, out}))
      return for_each(heads * (head_dim / kPack<T>),
                      Forward<T, kPack<T>>{elements.o, elements.logits, elements.out, head_dim});
    for_each(heads * head_dim, elements);
  });
}

void head_gate_backward(const void* o, const void* logits, const void* dout, void* d_o,
                        void* d_logits, DType dtype, int64_t heads, int64_t head_dim) {
  if (heads == 0) return;
  with_storage_type(dtype, "head_gate backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t lanes = head_dim / kPack<T>;  // per row, in the packs kernel
    if (head_dim % kPack<T> == 0 && lanes <= kWarp && (lanes & (lanes - 1)) == 0 &&
        packs_aligned({o, dout, d_o})) {
      const int64_t blocks = (heads * lanes + kThreads - 1) / kThreads;
      backward_packs_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, compute_stream()>>>(
          static_cast<const T*>(o), static_cast<const T*>(logits), static_cast<const T*>(dout),
          static_cast<T*>(d_o), static_cast<T*>(d_logits), heads, static_cast<int>(lanes));
      return check_launch();
    }
    const int64_t blocks = (heads * kWarp + kThreads - 1) / kThreads;
    backward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(o), static_cast<const T*>(logits), static_cast<const T*>(dout),
        static_cast<T*>(d_o), static_cast<T*>(d_logits), heads, head_dim);
    check_launch();
  });
}

}  // namespace ssa::cuda
