#include <climits>

#include "cuda/attention/attention_delta.h"
#include "cuda/device.cuh"

namespace ssa::cuda {
namespace {

// A row is summed by kRowLanes neighbouring lanes, each over every kRowLanes-th 16-byte pack of
// it (or element, where the rows are not in whole packs), then across the lanes by a fixed tree.
constexpr int kRowLanes = 8;
constexpr unsigned kAllLanes = 0xffffffffu;

// Where row r's delta goes (32-bit indices: the host checks the row count fits).
struct DeltaIndex {
  uint32_t q_len, heads;
  bool heads_first;
  __device__ uint32_t operator()(uint32_t row) const {
    if (!heads_first) return row;
    const uint32_t h = row % heads, bt = row / heads;
    return (bt / q_len * heads + h) * q_len + bt % q_len;
  }
};

template <typename T, bool kPacks>
__global__ void delta_kernel(const T* out, const T* d_out, float* delta, uint32_t rows,
                             int head_dim, DeltaIndex index) {
  constexpr int P = kPacks ? kPack<T> : 1;
  const uint32_t row = (blockIdx.x * uint32_t{kThreads} + threadIdx.x) / kRowLanes;
  const int lane = static_cast<int>(threadIdx.x) % kRowLanes;
  float sum = 0;
  if (row < rows) {
    const int64_t base = int64_t{row} * head_dim;
    for (int c = lane * P; c < head_dim; c += kRowLanes * P) {
      float o[P], g[P];
      load_floats(out + base + c, o);
      load_floats(d_out + base + c, g);
#pragma unroll
      for (int j = 0; j < P; ++j) sum += o[j] * g[j];
    }
  }
  for (int lanes = kRowLanes / 2; lanes > 0; lanes /= 2)
    sum += __shfl_xor_sync(kAllLanes, sum, lanes);
  if (lane == 0 && row < rows) delta[index(row)] = sum;
}

}  // namespace

void attention_delta(const void* out, const void* d_out, float* delta, DType dtype,
                     const DeltaRows& r) {
  const int64_t rows = r.batch * r.q_len * r.heads;
  if (rows == 0) return;
  SSA_CHECK(rows * kRowLanes <= UINT_MAX, "attention backward: {} query rows (at most {})", rows,
            UINT_MAX / kRowLanes);
  const DeltaIndex index{static_cast<uint32_t>(r.q_len), static_cast<uint32_t>(r.heads),
                         r.heads_first};
  const unsigned blocks = static_cast<unsigned>((rows * kRowLanes + kThreads - 1) / kThreads);
  with_storage_type(dtype, "attention backward", [&](auto zero) {
    using T = decltype(zero);
    const auto* o = static_cast<const T*>(out);
    const auto* g = static_cast<const T*>(d_out);
    const auto n = static_cast<uint32_t>(rows);
    const int dim = static_cast<int>(r.head_dim);
    if (r.head_dim % kPack<T> == 0 && packs_aligned({out, d_out}))
      delta_kernel<T, true><<<blocks, kThreads, 0, compute_stream()>>>(o, g, delta, n, dim, index);
    else
      delta_kernel<T, false><<<blocks, kThreads, 0, compute_stream()>>>(o, g, delta, n, dim, index);
    check_launch();
  });
}

}  // namespace ssa::cuda
