#include "cuda/device.cuh"
#include "cuda/gate.h"

namespace ssa::cuda {
namespace {

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

// A group of `lanes` consecutive lanes (a power of two ≤ 32) per row, each taking every
// lanes-th run of P elements (P = 1, or kPack<T> for 16-byte loads and stores); the group's first
// lane gets the row's dot product.
template <typename T, int P>
__global__ void backward_kernel(const T* o, const T* logits, const T* dout, T* d_o, T* d_logits,
                                int64_t heads, int64_t head_dim, int lanes) {
  const int64_t thread = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, row = thread / lanes;
  const bool inside = row < heads;  // no return: every lane takes part in the shuffles
  const float s = inside ? sigmoid(to_float(logits[row])) : 0.f;
  float dot = 0;
  for (int64_t j = thread % lanes * P; inside && j < head_dim; j += lanes * int64_t{P}) {
    float g[P], v[P];
    load_floats(dout + row * head_dim + j, g);
    load_floats(o + row * head_dim + j, v);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      dot += g[k] * v[k];
      g[k] = g[k] * s;
    }
    store_floats(d_o + row * head_dim + j, g);
  }
  for (int offset = lanes / 2; offset > 0; offset /= 2)
    dot += __shfl_down_sync(0xffffffffu, dot, offset, lanes);
  if (inside && thread % lanes == 0) d_logits[row] = from_float<T>(dot * s * (1.0f - s));
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
    const int64_t packs = head_dim / kPack<T>;  // per row
    const bool by_packs = head_dim % kPack<T> == 0 && packs <= kWarp &&
                          (packs & (packs - 1)) == 0 && packs_aligned({o, dout, d_o});
    const int lanes = by_packs ? static_cast<int>(packs) : kWarp;
    const auto kernel = by_packs ? backward_kernel<T, kPack<T>> : backward_kernel<T, 1>;
    const int64_t blocks = (heads * lanes + kThreads - 1) / kThreads;
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(o), static_cast<const T*>(logits), static_cast<const T*>(dout),
        static_cast<T*>(d_o), static_cast<T*>(d_logits), heads, head_dim, lanes);
    check_launch();
  });
}

}  // namespace ssa::cuda
