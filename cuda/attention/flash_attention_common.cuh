#pragma once
// Shared by the flash-attention kernels (f32 in flash_attention.cu, bf16 in
// flash_attention_bf16.cu) and the sparse ones: problem geometry, the causal mask, launching.
#include <cstdint>

#include "cuda/attention/flash_attention.h"
#include "cuda/device.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/stream.h"

namespace ssa::cuda::flash {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The problem as the kernels see it. Scores are kept in log2 units: x = q·k · scale · log2(e),
// so exp2(x − lse·log2(e)) is the probability.
struct Problem {
  int batch, q_len, k_len, heads, kv_heads, head_dim;
  float scale, scale_log2;

  __host__ __device__ int group() const { return heads / kv_heads; }
  __host__ __device__ int offset() const { return k_len - q_len; }
  // Rows of q/out/d_out lie q_stride elements apart, rows of k/v kv_stride apart.
  __host__ __device__ int64_t q_stride() const { return int64_t{heads} * head_dim; }
  __host__ __device__ int64_t kv_stride() const { return int64_t{kv_heads} * head_dim; }
  // Element offset of row 0 of head h of batch b.
  __host__ __device__ int64_t q_head(int b, int h) const {
    return (int64_t{b} * q_len * heads + h) * head_dim;
  }
  __host__ __device__ int64_t kv_head(int b, int kv) const {
    return (int64_t{b} * k_len * kv_heads + kv) * head_dim;
  }
  // Index of query row 0 of (b, h) in lse / delta ([B, H, Tq]).
  __host__ __device__ int64_t row_stats(int b, int h) const {
    return (int64_t{b} * heads + h) * q_len;
  }

  // Query row t sees key n: both exist and n ≤ offset + t.
  __host__ __device__ bool visible(int t, int n) const {
    return t < q_len && n < k_len && n <= offset() + t;
  }
  // Every (row, key) pair of the tile rows [m0, m0 + rows) × keys [n0, n0 + keys) is visible.
  __host__ __device__ bool tile_unmasked(int m0, int rows, int n0, int keys) const {
    return m0 + rows <= q_len && n0 + keys <= k_len && n0 + keys - 1 <= offset() + m0;
  }
  // Keys [0, key_end) are seen by some row of the query tile [m0, m0 + rows).
  __host__ __device__ int key_end(int m0, int rows) const {
    const int last_row = (m0 + rows < q_len ? m0 + rows : q_len) - 1;
    const int end = offset() + last_row + 1;
    return end < k_len ? end : k_len;
  }
  // The first query row that sees key n.
  __host__ __device__ int first_query(int n) const { return n - offset() > 0 ? n - offset() : 0; }
};

Problem make_problem(const FlashDims& dims);

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Causal tiles cost more the later their rows: a grid of `tiles` tiles of each of `units` units
// (heads and batch) runs them heaviest first across all units. One linear grid, tile slowest:
// rank 0 (every unit's heaviest tile) first and the lightest last, so that the grid ends on its
// shortest CTAs.
struct TileOrder {
  int rank, unit;  // the CTA's tile, counted from the heaviest, and its unit
  __device__ explicit TileOrder(int units)
      : rank(static_cast<int>(blockIdx.x) / units), unit(static_cast<int>(blockIdx.x) % units) {}
};
inline dim3 tile_order_grid(int tiles, int64_t units, const char* kernel) {
  const int64_t ctas = int64_t{tiles} * units;
  SSA_CHECK(ctas <= INT32_MAX, "attention: {} tiles of {} units exceed one grid of the {} kernel",
            tiles, units, kernel);
  return dim3(static_cast<unsigned>(ctas));
}

}  // namespace ssa::cuda::flash
