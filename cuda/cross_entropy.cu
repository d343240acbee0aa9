#include "cuda/cross_entropy.h"
#include "cuda/reduce.cuh"

namespace ssa::cuda {
namespace {

// The log-sum-exp of a set of values as (max, Σ exp(value − max)).
struct RunningLse {
  float max = -INFINITY, sum = 0;

  __device__ void merge(float other_max, float other_sum) {
    const float top = fmaxf(max, other_max);
    if (top == -INFINITY) return;
    sum = sum * expf(max - top) + other_sum * expf(other_max - top);
    max = top;
  }
};

__device__ RunningLse warp_merge(RunningLse r) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other_max = __shfl_down_sync(0xffffffffu, r.max, offset);
    const float other_sum = __shfl_down_sync(0xffffffffu, r.sum, offset);
    r.merge(other_max, other_sum);
  }
  return r;
}

// Thread 0 gets the block's merged state; the merge tree is fixed.
__device__ RunningLse block_merge(RunningLse r) {
  __shared__ float maxes[kWarp], sums[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  r = warp_merge(r);
  if (lane == 0) {
    maxes[warp] = r.max;
    sums[warp] = r.sum;
  }
  __syncthreads();
  RunningLse total;
  if (warp == 0 && lane < int(blockDim.x / kWarp)) total = RunningLse{maxes[lane], sums[lane]};
  return warp == 0 ? warp_merge(total) : total;
}

// The block's row (blockIdx.x): its log-sum-exp and loss from the threads' running states.
template <typename T>
__device__ void finish_row(RunningLse running, const T* x, const int32_t* targets,
                           const CrossEntropyDims& d, float* lse, float* row_loss) {
  running = block_merge(running);
  if (threadIdx.x != 0) return;
  const float row_lse = running.max + logf(running.sum);
  const int32_t target = targets[blockIdx.x];
  lse[blockIdx.x] = row_lse;
  row_loss[blockIdx.x] = target == d.ignore_index ? 0.0f : row_lse - to_float(x[target]);
}

constexpr int kLoadsPerStep = 2;  // loads of P logits each thread issues before its exps
constexpr float kLog2e = 1.44269504f;

// P consecutive logits per load (1, or kPack<T> for 16-byte loads). Per step a thread loads
// kLoadsPerStep runs of P, takes their max with its running max, rescales its running Σ exp
// to the new max and adds the step's exps, each one fused multiply-add and one 2^x on the
// special-function unit (fewer instructions than expf: the loop is bound by issue, not bytes).
template <typename T, int P>
__global__ void row_loss_kernel(const T* logits, const int32_t* targets, CrossEntropyDims d,
                                float* lse, float* row_loss) {
  const T* x = logits + blockIdx.x * d.vocab;
  const int64_t stride = blockDim.x * int64_t{P};
  RunningLse running;
  for (int64_t v = threadIdx.x * int64_t{P}; v < d.vocab; v += kLoadsPerStep * stride) {
    float values[kLoadsPerStep][P];
#pragma unroll
    for (int u = 0; u < kLoadsPerStep; ++u) {
      if (v + u * stride < d.vocab)
        load_floats(x + v + u * stride, values[u]);
      else
#pragma unroll
        for (int j = 0; j < P; ++j) values[u][j] = -INFINITY;
    }
    float top = running.max;
#pragma unroll
    for (int u = 0; u < kLoadsPerStep; ++u)
#pragma unroll
      for (int j = 0; j < P; ++j) top = fmaxf(top, values[u][j]);
    if (top == -INFINITY) continue;
    const float top_log2 = top * kLog2e;  // exp(v − top) = 2^(v·log2 e − top·log2 e)
    float sum = running.sum * fast_exp2(running.max * kLog2e - top_log2);
#pragma unroll
    for (int u = 0; u < kLoadsPerStep; ++u)
#pragma unroll
      for (int j = 0; j < P; ++j) sum += fast_exp2(fmaf(values[u][j], kLog2e, -top_log2));
    running = {top, sum};
  }
  finish_row(running, x, targets, d, lse, row_loss);
}

struct RowLoss {
  const float* row_loss;
  __device__ double operator()(int64_t n) const { return row_loss[n]; }
};

template <typename Out>
struct StoreMean {
  Out* loss;
  double denominator;
  __device__ void operator()(double total) const {
    *loss = from_float<Out>(denominator == 0 ? 0.0f : static_cast<float>(total / denominator));
  }
};

// P consecutive logits per load and store, as in row_loss_kernel.
template <typename T, typename G, int P>
__global__ void gradient_kernel(const T* logits, const int32_t* targets, const float* lse,
                                const G* g, double inverse_denominator, T* dlogits,
                                CrossEntropyDims d) {
  const int64_t base = blockIdx.x * d.vocab;
  const int32_t target = targets[blockIdx.x];
  const bool ignored = target == d.ignore_index;
  const float factor = ignored ? 0.0f : static_cast<float>(to_float(*g) * inverse_denominator);
  const float row_lse = lse[blockIdx.x];
  for (int64_t v = threadIdx.x * int64_t{P}; v < d.vocab; v += blockDim.x * int64_t{P}) {
    float values[P];
    load_floats(logits + base + v, values);
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const float p = ignored ? 0.0f : expf(values[j] - row_lse) * factor;
      values[j] = v + j == target ? p - factor : p;
    }
    store_floats(dlogits + base + v, values);
  }
}

}  // namespace

void cross_entropy_forward(const void* logits, const int32_t* targets, DType dtype,
                           const CrossEntropyDims& dims, double denominator, float* lse, void* loss,
                           DType loss_dtype) {
  DeviceScratch row_loss(dims.rows * sizeof(float));
  with_storage_type(dtype, "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    if (dims.rows > 0) {
      const auto kernel = dims.vocab % kPack<T> == 0 && packs_aligned({logits})
                              ? row_loss_kernel<T, kPack<T>>
                              : row_loss_kernel<T, 1>;
      kernel<<<static_cast<unsigned>(dims.rows), kThreads, 0, compute_stream()>>>(
          static_cast<const T*>(logits), targets, dims, lse, row_loss.as<float>());
      check_launch();
    }
  });
  with_storage_type(loss_dtype, "cross_entropy", [&](auto zero) {
    using Out = decltype(zero);
    deterministic_sum(dims.rows, RowLoss{row_loss.as<float>()},
                      StoreMean<Out>{static_cast<Out*>(loss), denominator});
  });
}

void cross_entropy_backward(const void* logits, const int32_t* targets, const float* lse,
                            const void* g, DType g_dtype, double denominator, void* dlogits,
                            DType dtype, const CrossEntropyDims& dims) {
  if (dims.rows == 0) return;
  const double inverse = denominator == 0 ? 0.0 : 1.0 / denominator;
  with_storage_type(dtype, "cross_entropy backward", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(g_dtype, "cross_entropy backward", [&](auto g_zero) {
      using G = decltype(g_zero);
      const auto kernel = dims.vocab % kPack<T> == 0 && packs_aligned({logits, dlogits})
                              ? gradient_kernel<T, G, kPack<T>>
                              : gradient_kernel<T, G, 1>;
      kernel<<<static_cast<unsigned>(dims.rows), kThreads, 0, compute_stream()>>>(
          static_cast<const T*>(logits), targets, lse, static_cast<const G*>(g), inverse,
          static_cast<T*>(dlogits), dims);
      check_launch();
    });
  });
}

}  // namespace ssa::cuda
