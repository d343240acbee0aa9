#pragma once
// Pieces shared by the block-sparse attention kernels (sparse_attention.cu: forward and dQ;
// sparse_attention_dkdv.cu: dK/dV): their geometry, the bf16 / fp32 tile products, row loads
// and stores, and the walk over a tile's selected keys (included by .cu files only).
#include <cstdint>
#include <type_traits>

#include "cuda/attention/flash_attention_common.cuh"
#include "cuda/attention/mma.cuh"
#include "cuda/device.cuh"

namespace ssa::cuda::sparse {

using flash::ceil_div;
using flash::kLn2;
using flash::kLog2e;

constexpr int kWarps = 4;  // warps per CTA; each works on its own tile
constexpr int kWarpThreads = 32 * kWarps;
constexpr int kRows = 16;  // query rows per warp (forward, dQ); keys per warp (dK/dV)
constexpr int kKeys = 16;  // keys per step (forward, dQ)
constexpr unsigned kFullMask = 0xffffffffu;

// Shared-memory tiles: rows of D elements padded so the rows one access phase reads start in
// distinct banks (16 bytes for bf16 ldmatrix, 16 bytes for the fp32 float4 reads).
template <typename T, int D>
constexpr int kPitch = std::is_same_v<T, float> ? D + 4 : D + 8;
// The fp32 path stages a 16 × 32 score block here for its products: [16][36] floats.
constexpr int kScratchPitch = 36;
template <typename T>
constexpr int kScratchFloats = std::is_same_v<T, float> ? 16 * kScratchPitch : 0;

struct Geometry {
  int batch, q_len, k_len, heads, kv_heads, block_size, width;
  float scale, scale_log2;

  __host__ __device__ int group() const { return heads / kv_heads; }
  __host__ __device__ int position(int t) const { return k_len - q_len + t; }
  // Row of [B, Tq, H] (q, out, lse) for query t, head h; row of [B, Tk, Hkv] for key s.
  __host__ __device__ int64_t q_row(int b, int t, int h) const {
    return (int64_t{b} * q_len + t) * heads + h;
  }
  __host__ __device__ int64_t kv_row(int b, int s, int kv) const {
    return (int64_t{b} * k_len + s) * kv_heads + kv;
  }
  __host__ __device__ const int32_t* selected(const int32_t* selection, int b, int t,
                                              int kv) const {
    return selection + ((int64_t{b} * q_len + t) * kv_heads + kv) * width;
  }
  // Rows f = t·G + i of one KV group.
  __host__ __device__ int group_rows() const { return q_len * group(); }
  // Row of [B, Tq, H] for group row f of (b, kv), −1 past the end.
  __host__ __device__ int64_t group_row(int b, int kv, int f) const {
    const int g = group();
    return f < group_rows() ? q_row(b, f / g, kv * g + f % g) : -1;
  }
};

// ------------------------------------------------------------------ tile products
// tile_a_bt: acc (16 × 8·NT) += A · Bᵀ over K = 16·KT, A 16 rows at a, B 8·NT rows at b (K along
// the row, pitch P). tile_s_b: acc (16 × 8·NT) += S · B, S (16 × 16·KT) in accumulator
// fragments, B a row-major tile of 16·KT rows. bf16: mma.sync (S rounded to bf16); fp32: FMAs,
// S staged in the warp's scratch.

template <int KT, int NT, int P>
__device__ inline void tile_a_bt(float (&acc)[1][NT][4], const bf16_t* a, const bf16_t* b) {
  mma_a_bt<KT, NT, P>(acc, a, b);
}
template <int KT, int NT, int P>
__device__ inline void tile_s_b(float (&acc)[1][NT][4], const float (&s)[1][2 * KT][4],
                                const bf16_t* b, float*) {
  mma_s_b<KT, NT, P>(acc, s, b);
}

__device__ inline float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline float dot4(float4 x, float4 y, float acc) {
  return fmaf(x.w, y.w, fmaf(x.z, y.z, fmaf(x.y, y.y, fmaf(x.x, y.x, acc))));
}

template <int KT, int NT, int P>
__device__ inline void tile_a_bt(float (&acc)[1][NT][4], const float* a, const float* b) {
  const float* a0 = a + frag_row(0) * P;
  const float* a1 = a + frag_row(2) * P;
#pragma unroll 4
  for (int k = 0; k < 16 * KT; k += 4) {
    const float4 x0 = load4(a0 + k), x1 = load4(a1 + k);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const float4 y0 = load4(b + frag_col(nt, 0) * P + k), y1 = load4(b + frag_col(nt, 1) * P + k);
      acc[0][nt][0] = dot4(x0, y0, acc[0][nt][0]);
      acc[0][nt][1] = dot4(x0, y1, acc[0][nt][1]);
      acc[0][nt][2] = dot4(x1, y0, acc[0][nt][2]);
      acc[0][nt][3] = dot4(x1, y1, acc[0][nt][3]);
    }
  }
}

template <int KT, int NT, int P>
__device__ inline void tile_s_b(float (&acc)[1][NT][4], const float (&s)[1][2 * KT][4],
                                const float* b, float* scratch) {
  static_assert(16 * KT + 4 <= kScratchPitch, "the score block fits the scratch");
  __syncwarp();  // earlier readers of the scratch are done
#pragma unroll
  for (int nt = 0; nt < 2 * KT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      scratch[frag_row(e) * kScratchPitch + frag_col(nt, e)] = s[0][nt][e];
  __syncwarp();
  const float* s0 = scratch + frag_row(0) * kScratchPitch;
  const float* s1 = scratch + frag_row(2) * kScratchPitch;
#pragma unroll 2
  for (int k = 0; k < 16 * KT; k += 4) {
    const float4 x0 = load4(s0 + k), x1 = load4(s1 + k);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const float* column = b + k * P + frag_col(nt, 0);
      float2 y[4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) y[kk] = *reinterpret_cast<const float2*>(column + kk * P);
      acc[0][nt][0] = dot4(x0, make_float4(y[0].x, y[1].x, y[2].x, y[3].x), acc[0][nt][0]);
      acc[0][nt][1] = dot4(x0, make_float4(y[0].y, y[1].y, y[2].y, y[3].y), acc[0][nt][1]);
      acc[0][nt][2] = dot4(x1, make_float4(y[0].x, y[1].x, y[2].x, y[3].x), acc[0][nt][2]);
      acc[0][nt][3] = dot4(x1, make_float4(y[0].y, y[1].y, y[2].y, y[3].y), acc[0][nt][3]);
    }
  }
}

// ------------------------------------------------------------------ loads and stores

// A warp copies a tile's rows in 16-byte pieces: lane l takes piece l % kPerRow of rows
// l / kPerRow + pass · kRowsPerPass, at element column `col`.
template <typename T, int D>
struct Pieces {
  static constexpr int kPerRow = D * static_cast<int>(sizeof(T)) / 16;
  static constexpr int kRowsPerPass = 32 / kPerRow;
  static_assert(32 % kPerRow == 0, "a pass covers whole rows");
  int row0 = static_cast<int>(threadIdx.x % 32) / kPerRow;
  int col = static_cast<int>(threadIdx.x % 32) % kPerRow * (16 / static_cast<int>(sizeof(T)));
  __device__ int row(int pass) const { return row0 + pass * kRowsPerPass; }
};

// A warp's shared-memory tile and the global rows it is filled from.
template <typename T>
struct TileSource {
  T* tile;
  const T* src;
};

// ROWS rows of D elements into each source's tile: row r from src + row_of(r)·D, zeros where
// row_of(r) < 0. Issues cp.async only (the caller commits and waits). All of the lane's rows
// are looked up before the first copy: each cp.async is a memory clobber, so a lookup that
// reads memory (dK/dV's rows in shared memory) placed between two copies waits on its own.
template <typename T, int D, int ROWS, typename RowOf, typename... Sources>
__device__ inline void load_rows(RowOf row_of, Sources... sources) {
  using L = Pieces<T, D>;
  constexpr int kPasses = ROWS / L::kRowsPerPass;
  static_assert(ROWS % L::kRowsPerPass == 0, "whole passes of the warp");
  const L lane;
  int64_t rows[kPasses];
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) rows[pass] = row_of(lane.row(pass));
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const bool inside = rows[pass] >= 0;
    const int64_t at = inside ? rows[pass] * D + lane.col : 0;
    const int to = lane.row(pass) * kPitch<T, D> + lane.col;
    (cp_async_16(sources.tile + to, sources.src + at, inside), ...);
  }
}

// Writes acc · factor (a warp's 16 × D block) to rows dst + row_of(r)·D where row_of(r) ≥ 0,
// or with `add` adds it there (add_pair).
template <int D, typename T, typename RowOf>
__device__ inline void store_rows(T* dst, const float (&acc)[D / 8][4], float factor, RowOf row_of,
                                  bool add = false) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row_of(frag_row(2 * half));
    if (row < 0) continue;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      T* at = dst + row * D + frag_col(nt, 0);
      const float a = acc[nt][2 * half] * factor, b = acc[nt][2 * half + 1] * factor;
      add ? add_pair(at, a, b) : store_pair(at, a, b);
    }
  }
}

// ------------------------------------------------------------------ the walk over selected keys

__device__ inline int lane_index() { return static_cast<int>(threadIdx.x % 32); }

// This lane's two rows (fragment rows g and g + 8) of a 16-row group tile: their [B, Tq, H] row
// (−1 past the end), position, and bit in the walk's position mask.
struct LaneRows {
  int64_t row[2];
  int position[2], bit[2];

  __device__ bool sees(int half, unsigned positions, int key) const {
    return key <= position[half] && (positions >> bit[half] & 1u);
  }
};

__device__ inline LaneRows lane_rows(const Geometry& geo, int b, int kv, int f0) {
  LaneRows rows;
  const int g = geo.group(), first_query = f0 / g;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int f = f0 + frag_row(2 * half);
    const bool inside = f < geo.group_rows();
    rows.row[half] = geo.group_row(b, kv, f);
    rows.position[half] = inside ? geo.position(f / g) : -1;
    rows.bit[half] = inside ? f / g - first_query : 0;
  }
  return rows;
}

// The 16-key chunks read by the queries first .. last (at most 16) of one KV head, in
// ascending order: the union of their selected blocks, each cut at the last query's position.
// Lane p follows query first + p; `positions` has bit p set when that query selected the
// current chunk's block.
struct ChunkWalk {
  const int32_t* row;     // this lane's selection row, or null
  int width, slot, head;  // head: the entry at slot as read, −1 for padding or past the end
  int block_size, last_key;
  int key0 = 0, block_end = 0;
  unsigned positions = 0;

  __device__ ChunkWalk(const Geometry& geo, const int32_t* selection, int b, int kv, int first,
                       int last)
      : row(first + lane_index() <= last ? geo.selected(selection, b, first + lane_index(), kv)
                                         : nullptr),
        width(geo.width),
        slot(-1),
        head(-1),
        block_size(geo.block_size),
        last_key(geo.position(last)) {
    advance_lane();
  }

  // The entry is only compared at the next block boundary, so its read's latency hides behind
  // the chunks in between.
  __device__ void advance_lane() {
    ++slot;
    head = row != nullptr && slot < width ? row[slot] : -1;
  }

  // Moves to the next chunk; false at the end.
  __device__ bool next() {
    if (key0 + kKeys < block_end && key0 + kKeys <= last_key) {
      key0 += kKeys;
      return true;
    }
    const int mine = head >= 0 ? head : INT_MAX;
    const int block = __reduce_min_sync(kFullMask, mine);
    if (block == INT_MAX) return false;
    positions = __ballot_sync(kFullMask, mine == block);
    if (mine == block) advance_lane();
    key0 = block * block_size;
    block_end = key0 + block_size;
    return true;
  }
};

// Keys key0 .. key0 + 15 of (b, kv) into both tiles (K and V); keys past the end read as
// zeros. Consecutive keys lie kv_heads·D elements apart, so a lane's later rows are its first
// plus whole passes. Through L1 (cp.async.ca): neighbouring queries share their own block (and
// in a trained model more), and the forward and dQ ran faster so than through L2 alone
// (docs/PERF.md).
template <typename T, int D>
__device__ inline void load_keys(TileSource<T> k, TileSource<T> v, const Geometry& geo, int b,
                                 int kv, int key0) {
  using L = Pieces<T, D>;
  const L lane;
  const int64_t first = geo.kv_row(b, key0 + lane.row0, kv) * D + lane.col;
  const int64_t pass_stride = int64_t{geo.kv_heads} * D * L::kRowsPerPass;
#pragma unroll
  for (int pass = 0; pass < kKeys / L::kRowsPerPass; ++pass) {
    const bool inside = key0 + lane.row(pass) < geo.k_len;
    const int64_t at = inside ? first + pass * pass_stride : 0;
    const int to = lane.row(pass) * kPitch<T, D> + lane.col;
    cp_async_16_cached(k.tile + to, k.src + at, inside);
    cp_async_16_cached(v.tile + to, v.src + at, inside);
  }
}

template <int NT>
__device__ inline void mask_unseen(float (&s)[NT][4], const LaneRows& rows, unsigned positions,
                                   int key0) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (!rows.sees(e >> 1, positions, key0 + frag_col(nt, e))) s[nt][e] = -INFINITY;
}

template <typename T>
struct BackwardPointers {
  const T *q, *k, *v, *out, *d_out;
  const int32_t* selection;
  const float* lse;
  float* delta;  // rowsum(dO ∘ O), [B, Tq, H]: written by the dQ pass, read by dK/dV
  T *dq, *dk, *dv;
  bool add_dq;  // dq added into (SparseBackward::add_dq)
};

}  // namespace ssa::cuda::sparse
