#pragma once
// A deterministic global sum (included by .cu files only): a fixed-shape two-level tree in double,
// in one kernel. A grid whose size depends on n only sums term(i) per block; the block that
// finishes last (an atomic count) then sums the per-block partials in index order. The order of
// every addition is fixed, so the result is bit-identical from run to run.
#include "cuda/device.cuh"

namespace ssa::cuda {

constexpr int kMaxPartials = 1024;
constexpr int kTermsPerThread = 4;  // at least this many before another block is added
constexpr int kTermsAhead = 4;      // terms whose loads a thread issues before it adds them
static_assert(kMaxPartials % kThreads == 0);

inline int partial_blocks(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>(
      (n + kThreads * kTermsPerThread - 1) / (kThreads * kTermsPerThread), 1, kMaxPartials));
}

// Blocks of the running sum kernel that have stored their partial; the last resets it to 0.
// Sums run one at a time on the compute stream, so one counter per translation unit serves.
namespace {
__device__ unsigned int finished_partials = 0;
}

// This thread's terms i, i + stride, ... added in that order, kTermsAhead evaluated at a time.
template <typename Term>
__device__ double thread_sum(const Term& term, int64_t n) {
  const int64_t stride = grid_stride();
  int64_t i = first_index();
  double sum = 0;
  for (; i + (kTermsAhead - 1) * stride < n; i += kTermsAhead * stride) {
    double terms[kTermsAhead];
#pragma unroll
    for (int u = 0; u < kTermsAhead; ++u) terms[u] = term(i + u * stride);
#pragma unroll
    for (int u = 0; u < kTermsAhead; ++u) sum += terms[u];
  }
  for (; i < n; i += stride) sum += term(i);
  return sum;
}

template <typename Term, typename Finish>
__global__ void deterministic_sum_kernel(Term term, int64_t n, double* partials, Finish finish) {
  const double sum = block_sum(thread_sum(term, n));
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = sum;
    __threadfence();  // the partial is visible before the count says so
    last = atomicAdd(&finished_partials, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // This thread's partials i = threadIdx.x + u·kThreads, all loaded (from L2, where the other
  // blocks wrote them) before the first is added, then added in index order.
  constexpr int kPerThread = kMaxPartials / kThreads;
  double partial[kPerThread];
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const unsigned i = threadIdx.x + u * kThreads;
    partial[u] = i < gridDim.x ? __ldcg(partials + i) : 0.0;
  }
  double total = 0;
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) total += partial[u];  // +0.0 past the last: no change
  total = block_sum(total);
  if (threadIdx.x == 0) {
    finished_partials = 0;
    finish(total);
  }
}

// finish(Σ_{i<n} term(i)) runs on the device, in one thread, after the sum.
// Term: double operator()(int64_t) const; Finish: void operator()(double) const.
template <typename Term, typename Finish>
void deterministic_sum(int64_t n, Term term, Finish finish) {
  const int blocks = partial_blocks(n);
  DeviceScratch partials(blocks * sizeof(double));
  deterministic_sum_kernel<<<blocks, kThreads, 0, compute_stream()>>>(
      term, n, partials.as<double>(), finish);
  check_launch();
}

}  // namespace ssa::cuda
