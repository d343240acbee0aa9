#pragma once
// A deterministic global sum (included by .cu files only): a fixed-shape two-pass tree in double.
// Pass 1: a grid whose size depends on n only sums term(i) per block; pass 2: one block sums the
// per-block partials. No atomics, so the result is bit-identical from run to run.
#include "cuda/device.cuh"

namespace ssa::cuda {

constexpr int kMaxPartials = 1024;
constexpr int kTermsPerThread = 4;  // at least this many before another block is added

inline int partial_blocks(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>(
      (n + kThreads * kTermsPerThread - 1) / (kThreads * kTermsPerThread), 1, kMaxPartials));
}

template <typename Term>
__global__ void partial_sums_kernel(Term term, int64_t n, double* partials) {
  double sum = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) sum += term(i);
  sum = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

template <typename Finish>
__global__ void finish_sum_kernel(const double* partials, int count, Finish finish) {
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) finish(sum);
}

// finish(Σ_{i<n} term(i)) runs on the device, in one thread, after the sum.
// Term: double operator()(int64_t) const; Finish: void operator()(double) const.
template <typename Term, typename Finish>
void deterministic_sum(int64_t n, Term term, Finish finish) {
  const int blocks = partial_blocks(n);
  DeviceScratch partials(blocks * sizeof(double));
  partial_sums_kernel<<<blocks, kThreads, 0, compute_stream()>>>(term, n, partials.as<double>());
  check_launch();
  finish_sum_kernel<<<1, kThreads, 0, compute_stream()>>>(partials.as<double>(), blocks, finish);
  check_launch();
}

}  // namespace ssa::cuda
