// Attention over the selected blocks (cuda/attention/sparse_attention.h): forward, dQ and dK/dV.
// One kernel body per pass serves both dtypes: bf16 tiles go through the tensor cores
// (cuda/attention/mma.cuh), f32 tiles through fp32 FMAs with the same fragment layout.
//
// Forward and dQ: a warp owns 16 rows of one KV group, the rows f = t·G + i (query t, head
// kv·G + i) in order, so the group's heads of one query share every key load and, for G < 16,
// 16 / G neighbouring queries fill the tile. It walks the union of its queries' selected
// blocks in 16-key chunks; a row sees a chunk's key n when its query selected the block and
// n ≤ its position.
//
// dK/dV without atomics: the selection entries are sorted by (batch, KV head, block), stably,
// so each block's list holds its queries in ascending order. The lists are cut into units of
// kMinUnitRows to kMaxUnitRows rows (query × head); a warp takes one unit and 16 keys of its
// block. A block with one unit gets its dK/dV written by that warp; otherwise the units write
// fp32 partial sums that a last pass adds up in unit order.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <type_traits>

#include "cuda/attention/flash_attention_common.cuh"
#include "cuda/attention/mma.cuh"
#include "cuda/attention/sparse_attention.h"
#include "cuda/device.cuh"

namespace ssa::cuda {
namespace {

using flash::ceil_div;
using flash::kLn2;
using flash::kLog2e;
using flash::launch;

constexpr int kWarps = 4;  // warps per CTA; each works on its own tile
constexpr int kWarpThreads = 32 * kWarps;
constexpr int kRows = 16;  // query rows per warp (forward, dQ); keys per warp (dK/dV)
constexpr int kKeys = 16;  // keys per step (forward, dQ)
constexpr unsigned kFullMask = 0xffffffffu;
// Rows (query × head) per dK/dV unit: at least kMinUnitRows, more once the lists hold over
// kTargetUnits units of that size.
constexpr int64_t kMinUnitRows = 512, kMaxUnitRows = 4096, kTargetUnits = 4096;

// Shared-memory tiles: rows of D elements padded so the rows one access phase reads start in
// distinct banks (16 bytes for bf16 ldmatrix, 16 bytes for the fp32 float4 reads).
template <typename T, int D>
constexpr int kPitch = std::is_same_v<T, float> ? D + 4 : D + 8;
// Query rows per dK/dV step: a tile row of at most 128 bytes allows 32 within the warp's
// shared-memory share.
template <typename T, int D>
constexpr int kQueryStep = sizeof(T) * D <= 128 ? 32 : 16;
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
__device__ void tile_a_bt(float (&acc)[1][NT][4], const bf16_t* a, const bf16_t* b) {
  mma_a_bt<KT, NT, P>(acc, a, b);
}
template <int KT, int NT, int P>
__device__ void tile_s_b(float (&acc)[1][NT][4], const float (&s)[1][2 * KT][4], const bf16_t* b,
                         float*) {
  mma_s_b<KT, NT, P>(acc, s, b);
}

__device__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ float dot4(float4 x, float4 y, float acc) {
  return fmaf(x.w, y.w, fmaf(x.z, y.z, fmaf(x.y, y.y, fmaf(x.x, y.x, acc))));
}

template <int KT, int NT, int P>
__device__ void tile_a_bt(float (&acc)[1][NT][4], const float* a, const float* b) {
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
__device__ void tile_s_b(float (&acc)[1][NT][4], const float (&s)[1][2 * KT][4], const float* b,
                         float* scratch) {
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

// ROWS rows of D elements into a warp's tile: row r from src + row_of(r)·D, zeros where
// row_of(r) < 0. Issues cp.async only (the caller commits and waits).
template <typename T, int D, int ROWS, typename RowOf>
__device__ void load_rows(T* tile, const T* src, RowOf row_of) {
  constexpr int kPieces = D * static_cast<int>(sizeof(T)) / 16, kPieceElems = 16 / sizeof(T);
  static_assert(ROWS * kPieces % 32 == 0, "whole passes of the warp");
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int pass = 0; pass < ROWS * kPieces / 32; ++pass) {
    const int piece = pass * 32 + lane, r = piece / kPieces, c = piece % kPieces * kPieceElems;
    const int64_t row = row_of(r);
    cp_async_16(tile + r * kPitch<T, D> + c, row >= 0 ? src + row * D + c : src, row >= 0);
  }
}

__device__ void store_pair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ void store_pair(bf16_t* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}

// Writes acc · factor (a warp's 16 × D block) to rows dst + row_of(r)·D where row_of(r) ≥ 0.
template <int D, typename T, typename RowOf>
__device__ void store_rows(T* dst, const float (&acc)[D / 8][4], float factor, RowOf row_of) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row_of(frag_row(2 * half));
    if (row < 0) continue;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
      store_pair(dst + row * D + frag_col(nt, 0), acc[nt][2 * half] * factor,
                 acc[nt][2 * half + 1] * factor);
  }
}

// ------------------------------------------------------------------ the walk over selected keys

__device__ int lane_index() { return static_cast<int>(threadIdx.x % 32); }

// This lane's two rows (fragment rows g and g + 8) of a 16-row group tile: their [B, Tq, H] row
// (−1 past the end), position, and bit in the walk's position mask.
struct LaneRows {
  int64_t row[2];
  int position[2], bit[2];

  __device__ bool sees(int half, unsigned positions, int key) const {
    return key <= position[half] && (positions >> bit[half] & 1u);
  }
};

__device__ LaneRows lane_rows(const Geometry& geo, int b, int kv, int f0) {
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
  int width, slot, head;  // head: the block at slot, INT_MAX past the row's end
  int block_size, last_key;
  int key0 = 0, block_end = 0;
  unsigned positions = 0;

  __device__ ChunkWalk(const Geometry& geo, const int32_t* selection, int b, int kv, int first,
                       int last)
      : row(first + lane_index() <= last ? geo.selected(selection, b, first + lane_index(), kv)
                                         : nullptr),
        width(geo.width),
        slot(-1),
        head(INT_MAX),
        block_size(geo.block_size),
        last_key(geo.position(last)) {
    advance_lane();
  }

  __device__ void advance_lane() {
    ++slot;
    head = row != nullptr && slot < width && row[slot] >= 0 ? row[slot] : INT_MAX;
  }

  // Moves to the next chunk; false at the end.
  __device__ bool next() {
    if (key0 + kKeys < block_end && key0 + kKeys <= last_key) {
      key0 += kKeys;
      return true;
    }
    const int block = __reduce_min_sync(kFullMask, head);
    if (block == INT_MAX) return false;
    positions = __ballot_sync(kFullMask, head == block);
    if (head == block) advance_lane();
    key0 = block * block_size;
    block_end = key0 + block_size;
    return true;
  }
};

// Keys key0 .. key0 + 15 of K (or V) for (b, kv); keys past the end read as zeros.
template <typename T, int D>
__device__ void load_keys(T* tile, const T* src, const Geometry& geo, int b, int kv, int key0) {
  load_rows<T, D, kKeys>(tile, src, [&](int r) {
    return key0 + r < geo.k_len ? geo.kv_row(b, key0 + r, kv) : int64_t{-1};
  });
}

template <int NT>
__device__ void mask_unseen(float (&s)[NT][4], const LaneRows& rows, unsigned positions, int key0) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (!rows.sees(e >> 1, positions, key0 + frag_col(nt, e))) s[nt][e] = -INFINITY;
}

// ------------------------------------------------------------------ forward

template <typename T>
struct ForwardPointers {
  const T *q, *k, *v;
  const int32_t* selection;
  T* out;
  float* lse;
};

// Per warp: Q [16][P], K [2][16][P], V [2][16][P], fp32 scratch.
template <typename T, int D>
constexpr size_t kForwardWarpBytes = sizeof(T) * 5 * kRows* kPitch<T, D> +
                                     sizeof(float) * kScratchFloats<T>;

// Grid (tiles of 4 × 16 group rows, KV heads, batch). K/V chunks double-buffered.
template <typename T, int D>
__global__ void __launch_bounds__(kWarpThreads)
    forward_kernel(Geometry geo, ForwardPointers<T> ptr) {
  constexpr int P = kPitch<T, D>, kTile = kRows * P;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, kv = blockIdx.y, b = blockIdx.z;
  const int f0 = (blockIdx.x * kWarps + warp) * kRows;
  if (f0 >= geo.group_rows()) return;  // the whole warp; warps never wait for each other
  T* q_tile = reinterpret_cast<T*>(smem_raw + warp * kForwardWarpBytes<T, D>);
  T* k_tiles = q_tile + kTile;
  T* v_tiles = k_tiles + 2 * kTile;
  float* scratch = reinterpret_cast<float*>(v_tiles + 2 * kTile);
  const int g = geo.group();
  const int last_f = min(f0 + kRows, geo.group_rows()) - 1;
  ChunkWalk walk(geo, ptr.selection, b, kv, f0 / g, last_f / g);
  const LaneRows rows = lane_rows(geo, b, kv, f0);

  load_rows<T, D, kRows>(q_tile, ptr.q, [&](int r) { return geo.group_row(b, kv, f0 + r); });
  bool more = walk.next();
  if (more) {
    load_keys<T, D>(k_tiles, ptr.k, geo, b, kv, walk.key0);
    load_keys<T, D>(v_tiles, ptr.v, geo, b, kv, walk.key0);
  }
  cp_async_commit();

  OnlineSoftmax softmax;
  float o[1][D / 8][4] = {};
  for (int stage = 0; more; stage ^= 1) {
    const int key0 = walk.key0;
    const unsigned positions = walk.positions;
    more = walk.next();
    if (more) {
      load_keys<T, D>(k_tiles + (stage ^ 1) * kTile, ptr.k, geo, b, kv, walk.key0);
      load_keys<T, D>(v_tiles + (stage ^ 1) * kTile, ptr.v, geo, b, kv, walk.key0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    float s[1][2][4] = {};
    tile_a_bt<D / 16, 2, P>(s, q_tile, k_tiles + stage * kTile);
    mask_unseen(s[0], rows, positions, key0);
    softmax.update(s[0], o[0], geo.scale_log2);
    tile_s_b<1, D / 8, P>(o, s, v_tiles + stage * kTile, scratch);
    __syncwarp();  // the stage is refilled next step
  }

  float inverse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float total = quad_sum(softmax.sum[half]);
    inverse[half] = 1.f / total;
    if (rows.row[half] >= 0 && threadIdx.x % 4 == 0)
      ptr.lse[rows.row[half]] = (softmax.max[half] * geo.scale_log2 + log2f(total)) * kLn2;
  }
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[0][dt][e] *= inverse[e >> 1];
  store_rows<D>(ptr.out, o[0], 1.f, [&](int r) { return geo.group_row(b, kv, f0 + r); });
}

// ------------------------------------------------------------------ backward

template <typename T>
struct BackwardPointers {
  const T *q, *k, *v, *out, *d_out;
  const int32_t* selection;
  const float* lse;
  float* delta;  // rowsum(dO ∘ O), [B, Tq, H]
  T *dq, *dk, *dv;
};

// delta[row] = Σ_x dO[row, x] · O[row, x], one warp per row of [B, Tq, H].
template <typename T>
__global__ void delta_kernel(const T* out, const T* d_out, float* delta, int64_t rows,
                             int head_dim) {
  const int64_t row = int64_t{blockIdx.x} * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  float sum = 0.f;
  for (int x = threadIdx.x % 32; x < head_dim; x += 32)
    sum += to_float(out[row * head_dim + x]) * to_float(d_out[row * head_dim + x]);
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) delta[row] = sum;
}

// Per warp: Q, dO [16][P], K [2][16][P], V [2][16][P], fp32 scratch.
template <typename T, int D>
constexpr size_t kDqWarpBytes = sizeof(T) * 6 * kRows* kPitch<T, D> +
                                sizeof(float) * kScratchFloats<T>;

// dQ for 16 group rows per warp over the chunks they read: dS = P ∘ (dO·Vᵀ − delta),
// dQ += dS·K (times scale at the end). Grid as the forward's.
template <typename T, int D>
__global__ void __launch_bounds__(kWarpThreads) dq_kernel(Geometry geo, BackwardPointers<T> ptr) {
  constexpr int P = kPitch<T, D>, kTile = kRows * P;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, kv = blockIdx.y, b = blockIdx.z;
  const int f0 = (blockIdx.x * kWarps + warp) * kRows;
  if (f0 >= geo.group_rows()) return;
  T* q_tile = reinterpret_cast<T*>(smem_raw + warp * kDqWarpBytes<T, D>);
  T* do_tile = q_tile + kTile;
  T* k_tiles = do_tile + kTile;
  T* v_tiles = k_tiles + 2 * kTile;
  float* scratch = reinterpret_cast<float*>(v_tiles + 2 * kTile);
  const int g = geo.group();
  const int last_f = min(f0 + kRows, geo.group_rows()) - 1;
  ChunkWalk walk(geo, ptr.selection, b, kv, f0 / g, last_f / g);
  const LaneRows rows = lane_rows(geo, b, kv, f0);
  auto row_of = [&](int r) { return geo.group_row(b, kv, f0 + r); };

  load_rows<T, D, kRows>(q_tile, ptr.q, row_of);
  load_rows<T, D, kRows>(do_tile, ptr.d_out, row_of);
  bool more = walk.next();
  if (more) {
    load_keys<T, D>(k_tiles, ptr.k, geo, b, kv, walk.key0);
    load_keys<T, D>(v_tiles, ptr.v, geo, b, kv, walk.key0);
  }
  cp_async_commit();
  float lse_log2[2], delta[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = rows.row[half];
    lse_log2[half] = row >= 0 ? ptr.lse[row] * kLog2e : 0.f;
    delta[half] = row >= 0 ? ptr.delta[row] : 0.f;
  }

  float dq[1][D / 8][4] = {};
  for (int stage = 0; more; stage ^= 1) {
    const int key0 = walk.key0;
    const unsigned positions = walk.positions;
    more = walk.next();
    if (more) {
      load_keys<T, D>(k_tiles + (stage ^ 1) * kTile, ptr.k, geo, b, kv, walk.key0);
      load_keys<T, D>(v_tiles + (stage ^ 1) * kTile, ptr.v, geo, b, kv, walk.key0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const T* k_tile = k_tiles + stage * kTile;
    float s[1][2][4] = {}, ds[1][2][4] = {};
    tile_a_bt<D / 16, 2, P>(s, q_tile, k_tile);
    tile_a_bt<D / 16, 2, P>(ds, do_tile, v_tiles + stage * kTile);
    mask_unseen(s[0], rows, positions, key0);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1;
        const float p = fast_exp2(fmaf(s[0][nt][e], geo.scale_log2, -lse_log2[half]));
        ds[0][nt][e] = p * (ds[0][nt][e] - delta[half]);
      }
    }
    tile_s_b<1, D / 8, P>(dq, ds, k_tile, scratch);
    __syncwarp();  // the stage is refilled next step
  }
  store_rows<D>(ptr.dq, dq[0], geo.scale, row_of);
}

// The key lists: entries (query t of a selection row) sorted by block g = (b·Hkv + kv)·blocks + j.
struct KeyLists {
  const int32_t* query;            // [entries], sorted by block, queries ascending within a block
  const int* entry_start;          // [groups + 1]: the block's first entry
  const int* unit_start;           // [groups + 1]: the block's first unit (exclusive scan)
  const int* partial_start;        // [groups + 1]: its first partial slot (blocks of ≥ 2 units)
  float *partial_dk, *partial_dv;  // [slots][block_size / 16][16][D]
  int groups, blocks, unit_entries;
};

// Per warp: K [16][P], V [16][P], Q [2][NQ][P], dO [2][NQ][P]; per stage and row its
// [B, Tq, H] row (int64), position (int), lse·log2e and delta (floats); fp32 scratch.
template <typename T, int D>
constexpr size_t kDkdvWarpBytes = sizeof(T) * (2 * kRows + 4 * kQueryStep<T, D>)*kPitch<T, D> +
                                  2 * kQueryStep<T, D>*(sizeof(int64_t) + sizeof(int) +
                                                        2 * sizeof(float)) +
                                  sizeof(float) * kScratchFloats<T>;

// dK, dV of 16 keys (sub-chunk `sub` of block g) from one unit of g's list. Steps of NQ rows:
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO, dK += dSᵀ·Q
// (times scale when written). Grid: ⌈(upper bound on units) · (block_size / 16) / 4⌉ CTAs.
template <typename T, int D>
__global__ void __launch_bounds__(kWarpThreads)
    dkdv_kernel(Geometry geo, BackwardPointers<T> ptr, KeyLists lists) {
  constexpr int P = kPitch<T, D>, NQ = kQueryStep<T, D>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int subs = geo.block_size / kRows;
  const int64_t task = int64_t{blockIdx.x} * kWarps + warp;
  const int64_t unit = task / subs;
  const int sub = static_cast<int>(task % subs);
  if (unit >= lists.unit_start[lists.groups]) return;
  int g = 0;  // the last block whose first unit is ≤ unit
  for (int high = lists.groups; high - g > 1;) {
    const int mid = (g + high) / 2;
    if (lists.unit_start[mid] <= unit)
      g = mid;
    else
      high = mid;
  }
  const int units = lists.unit_start[g + 1] - lists.unit_start[g];
  const int chunk = static_cast<int>(unit - lists.unit_start[g]);
  const int first_entry = lists.entry_start[g] + chunk * lists.unit_entries;
  const int entries = min(lists.entry_start[g + 1] - first_entry, lists.unit_entries);
  const int b = g / (lists.blocks * geo.kv_heads), kv = g / lists.blocks % geo.kv_heads;
  const int key0 = g % lists.blocks * geo.block_size + sub * kRows;
  if (key0 >= geo.k_len) return;  // the block's last keys lie past the end

  T* k_tile = reinterpret_cast<T*>(smem_raw + warp * kDkdvWarpBytes<T, D>);
  T* v_tile = k_tile + kRows * P;
  T* q_tiles = v_tile + kRows * P;
  T* do_tiles = q_tiles + 2 * NQ * P;
  int64_t* step_rows = reinterpret_cast<int64_t*>(do_tiles + 2 * NQ * P);  // [2][NQ]
  int* step_positions = reinterpret_cast<int*>(step_rows + 2 * NQ);        // [2][NQ]
  float* step_lse = reinterpret_cast<float*>(step_positions + 2 * NQ);     // [2][NQ]
  float* step_delta = step_lse + 2 * NQ;                                   // [2][NQ]
  float* scratch = step_delta + 2 * NQ;
  const int g_heads = geo.group(), rows = entries * g_heads, steps = ceil_div(rows, NQ);

  // Row r of the unit: entry first_entry + r / G, head kv·G + r % G.
  auto issue = [&](int step, int stage) {
    int64_t* row_of = step_rows + stage * NQ;
    for (int r = lane; r < NQ; r += 32) {
      const int unit_row = step * NQ + r;
      const bool inside = unit_row < rows;
      const int t = inside ? lists.query[first_entry + unit_row / g_heads] : 0;
      const int64_t row = inside ? geo.q_row(b, t, kv * g_heads + unit_row % g_heads) : -1;
      row_of[r] = row;
      step_positions[stage * NQ + r] = inside ? geo.position(t) : -1;
      cp_async_4(step_lse + stage * NQ + r, inside ? ptr.lse + row : ptr.lse, inside);
      cp_async_4(step_delta + stage * NQ + r, inside ? ptr.delta + row : ptr.delta, inside);
    }
    __syncwarp();
    load_rows<T, D, NQ>(q_tiles + stage * NQ * P, ptr.q, [&](int r) { return row_of[r]; });
    load_rows<T, D, NQ>(do_tiles + stage * NQ * P, ptr.d_out, [&](int r) { return row_of[r]; });
  };

  load_keys<T, D>(k_tile, ptr.k, geo, b, kv, key0);
  load_keys<T, D>(v_tile, ptr.v, geo, b, kv, key0);
  issue(0, 0);
  cp_async_commit();

  float dk[1][D / 8][4] = {}, dv[1][D / 8][4] = {};
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    if (step + 1 < steps) {
      issue(step + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const T* q_tile = q_tiles + stage * NQ * P;
    const T* do_tile = do_tiles + stage * NQ * P;
    const int* positions = step_positions + stage * NQ;
    const float* lse = step_lse + stage * NQ;
    const float* delta = step_delta + stage * NQ;
    float pt[1][NQ / 8][4] = {}, dst[1][NQ / 8][4] = {};
    tile_a_bt<D / 16, NQ / 8, P>(pt, k_tile, q_tile);
    tile_a_bt<D / 16, NQ / 8, P>(dst, v_tile, do_tile);
#pragma unroll
    for (int qt = 0; qt < NQ / 8; ++qt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = frag_col(qt, e);
        const bool seen = key0 + frag_row(e) <= positions[col];
        const float p =
            seen ? fast_exp2(fmaf(pt[0][qt][e], geo.scale_log2, -lse[col] * kLog2e)) : 0.f;
        pt[0][qt][e] = p;
        dst[0][qt][e] = p * (dst[0][qt][e] - delta[col]);
      }
    }
    tile_s_b<NQ / 16, D / 8, P>(dv, pt, do_tile, scratch);
    tile_s_b<NQ / 16, D / 8, P>(dk, dst, q_tile, scratch);
    __syncwarp();  // the stage is refilled next step
  }

  if (units == 1) {  // the block's only unit: the final values
    auto key_row = [&](int r) {
      return key0 + r < geo.k_len ? geo.kv_row(b, key0 + r, kv) : int64_t{-1};
    };
    store_rows<D>(ptr.dk, dk[0], geo.scale, key_row);
    store_rows<D>(ptr.dv, dv[0], 1.f, key_row);
    return;
  }
  const int64_t slot = (int64_t{lists.partial_start[g]} + chunk) * subs + sub;
  auto partial_row = [&](int r) { return slot * kRows + r; };
  store_rows<D>(lists.partial_dk, dk[0], 1.f, partial_row);
  store_rows<D>(lists.partial_dv, dv[0], 1.f, partial_row);
}

// Entry e of the selection: key (b·Hkv + kv)·blocks + block, or `none` for −1 padding; value t.
struct ListEntry {
  const int32_t* selection;
  uint32_t* keys;
  int32_t* queries;
  int64_t q_len, kv_heads, width, blocks;
  uint32_t none;
  __device__ void operator()(int64_t e) const {
    const int64_t row = e / width, kv = row % kv_heads, t = row / kv_heads % q_len;
    const int64_t b = row / (kv_heads * q_len);
    const int32_t block = selection[e];
    keys[e] = block >= 0 ? static_cast<uint32_t>((b * kv_heads + kv) * blocks + block) : none;
    queries[e] = static_cast<int32_t>(t);
  }
};

// For block g ≤ groups: its first sorted entry, units and partial slots (g = groups: the end).
struct ListBounds {
  const uint32_t* sorted_keys;
  int entries, groups, unit_entries;
  int *entry_start, *unit_count, *partial_count;
  __device__ int lower_bound(uint32_t key) const {
    int low = 0, high = entries;
    while (low < high) {
      const int mid = (low + high) / 2;
      if (sorted_keys[mid] < key)
        low = mid + 1;
      else
        high = mid;
    }
    return low;
  }
  __device__ void operator()(int64_t i) const {
    const int g = static_cast<int>(i), start = lower_bound(g);
    const int units = g < groups ? ceil_div(lower_bound(g + 1) - start, unit_entries) : 0;
    entry_start[g] = start;
    unit_count[g] = units;
    partial_count[g] = units >= 2 ? units : 0;
  }
};

// dK, dV of blocks with no unit (zeros) or several (their partial sums, in unit order).
template <typename T>
struct SumPartials {
  KeyLists lists;
  T *dk, *dv;
  int64_t k_len, kv_heads, block_size, head_dim;
  float scale;
  __device__ void operator()(int64_t i) const {
    const int64_t x = i % head_dim, key_row = i / head_dim;  // key_row = (b·Tk + key)·Hkv + kv
    const int64_t kv = key_row % kv_heads, key = key_row / kv_heads % k_len;
    const int64_t b = key_row / (kv_heads * k_len);
    const int64_t g = (b * kv_heads + kv) * lists.blocks + key / block_size;
    const int units = lists.unit_start[g + 1] - lists.unit_start[g];
    if (units == 1) return;  // written by its unit
    const int64_t subs = block_size / kRows, in_block = key % block_size;
    const int64_t stride = subs * kRows * head_dim;  // between a block's consecutive slots
    const int64_t first = (lists.partial_start[g] * subs + in_block / kRows) * kRows * head_dim +
                          in_block % kRows * head_dim + x;
    float sum_k = 0.f, sum_v = 0.f;
    for (int c = 0; c < units; ++c) {
      sum_k += lists.partial_dk[first + c * stride];
      sum_v += lists.partial_dv[first + c * stride];
    }
    dk[i] = from_float<T>(sum_k * scale);
    dv[i] = from_float<T>(sum_v);
  }
};

// Device memory of the key lists for one backward call.
struct KeyListStorage {
  int64_t entries, groups, unit_entries, slot_floats, max_slots;
  DeviceScratch keys, sorted_keys, queries, sorted_queries, bounds, partials;

  KeyListStorage(int64_t entries_, int64_t groups_, int64_t unit_entries_, int64_t slot_floats_)
      : entries(entries_),
        groups(groups_),
        unit_entries(unit_entries_),
        slot_floats(slot_floats_),
        max_slots(2 * ceil_div64(entries_, unit_entries_) + 1),
        keys(entries_ * sizeof(uint32_t)),
        sorted_keys(entries_ * sizeof(uint32_t)),
        queries(entries_ * sizeof(int32_t)),
        sorted_queries(entries_ * sizeof(int32_t)),
        bounds(5 * (groups_ + 1) * sizeof(int)),
        partials(2 * max_slots * slot_floats_ * sizeof(float)) {}
  static int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }
  int* bound(int which) const { return bounds.as<int>() + which * (groups + 1); }
};

int bits_for(int64_t value) {
  int bits = 1;
  while ((int64_t{1} << bits) <= value) ++bits;
  return bits;
}

// cub's two-phase calls: the first asks for the temporary bytes (a null buffer would ask again).
template <typename Call>
void with_cub_temp(Call call) {
  size_t bytes = 0;
  CUDA_CHECK(call(nullptr, bytes));
  bytes = std::max<size_t>(bytes, 16);
  DeviceScratch temp(bytes);
  CUDA_CHECK(call(temp.as<void>(), bytes));
}

// Sorts the selection entries into per-block lists and cuts them into units.
KeyLists build_key_lists(const SparseDims& dims, const int32_t* selection,
                         const KeyListStorage& storage) {
  const int entries = static_cast<int>(storage.entries), groups = static_cast<int>(storage.groups);
  const int64_t blocks = ceil_div(static_cast<int>(dims.k_len), static_cast<int>(dims.block_size));
  for_each(entries,
           ListEntry{selection, storage.keys.as<uint32_t>(), storage.queries.as<int32_t>(),
                     dims.q_len, dims.kv_heads, dims.width, blocks, static_cast<uint32_t>(groups)});
  const int bits = bits_for(groups);
  with_cub_temp([&](void* temp, size_t& bytes) {
    return cub::DeviceRadixSort::SortPairs(
        temp, bytes, storage.keys.as<uint32_t>(), storage.sorted_keys.as<uint32_t>(),
        storage.queries.as<int32_t>(), storage.sorted_queries.as<int32_t>(), entries, 0, bits,
        compute_stream());
  });
  for_each(groups + 1, ListBounds{storage.sorted_keys.as<uint32_t>(), entries, groups,
                                  static_cast<int>(storage.unit_entries), storage.bound(0),
                                  storage.bound(1), storage.bound(2)});
  for (int which = 1; which <= 2; ++which) {
    with_cub_temp([&](void* temp, size_t& bytes) {
      return cub::DeviceScan::ExclusiveSum(temp, bytes, storage.bound(which),
                                           storage.bound(which + 2), groups + 1, compute_stream());
    });
  }
  float* partials = storage.partials.as<float>();
  return {storage.sorted_queries.as<int32_t>(),
          storage.bound(0),
          storage.bound(3),
          storage.bound(4),
          partials,
          partials + storage.max_slots * storage.slot_floats,
          groups,
          static_cast<int>(blocks),
          static_cast<int>(storage.unit_entries)};
}

// ------------------------------------------------------------------ launchers

Geometry make_geometry(const SparseDims& dims) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(dims.head_dim));
  return {static_cast<int>(dims.batch),
          static_cast<int>(dims.q_len),
          static_cast<int>(dims.k_len),
          static_cast<int>(dims.heads),
          static_cast<int>(dims.kv_heads),
          static_cast<int>(dims.block_size),
          static_cast<int>(dims.width),
          static_cast<float>(scale),
          static_cast<float>(scale * 1.4426950408889634)};
}

// Grid of the forward and dQ kernels: 4 tiles of 16 group rows per CTA.
dim3 row_tile_grid(const Geometry& geo) {
  return dim3(ceil_div(ceil_div(geo.group_rows(), kRows), kWarps), geo.kv_heads, geo.batch);
}

template <typename T, int D>
void forward_for(const Geometry& geo, const SparseForward& args) {
  const ForwardPointers<T> ptr{static_cast<const T*>(args.q), static_cast<const T*>(args.k),
                               static_cast<const T*>(args.v), args.selection,
                               static_cast<T*>(args.out),     args.lse};
  launch(forward_kernel<T, D>, row_tile_grid(geo), kWarpThreads, kWarps * kForwardWarpBytes<T, D>,
         geo, ptr);
}

// Query rows per dK/dV unit, as entries of a block list (each entry is G rows).
int64_t unit_entries(int64_t entries, int64_t group) {
  const int64_t rows = std::clamp(entries * group / kTargetUnits, kMinUnitRows, kMaxUnitRows);
  return std::max<int64_t>(1, rows / group);
}

template <typename T, int D>
void backward_for(const SparseDims& dims, const Geometry& geo, const SparseBackward& args) {
  const int64_t rows = dims.batch * dims.q_len * dims.heads;
  DeviceScratch delta(rows * sizeof(float));
  const BackwardPointers<T> ptr{static_cast<const T*>(args.q),
                                static_cast<const T*>(args.k),
                                static_cast<const T*>(args.v),
                                static_cast<const T*>(args.out),
                                static_cast<const T*>(args.d_out),
                                args.selection,
                                args.lse,
                                delta.as<float>(),
                                static_cast<T*>(args.dq),
                                static_cast<T*>(args.dk),
                                static_cast<T*>(args.dv)};
  launch(delta_kernel<T>, dim3(static_cast<unsigned>((rows + kWarps - 1) / kWarps)), kWarpThreads,
         0, ptr.out, ptr.d_out, ptr.delta, rows, D);
  launch(dq_kernel<T, D>, row_tile_grid(geo), kWarpThreads, kWarps * kDqWarpBytes<T, D>, geo, ptr);

  const int64_t entries = dims.batch * dims.q_len * dims.kv_heads * dims.width;
  const int64_t blocks = (dims.k_len + dims.block_size - 1) / dims.block_size;
  const int64_t groups = dims.batch * dims.kv_heads * blocks;
  const int64_t subs = dims.block_size / kRows;
  const KeyListStorage storage(entries, groups, unit_entries(entries, geo.group()),
                               subs * kRows * D);
  const KeyLists lists = build_key_lists(dims, args.selection, storage);
  const int64_t tasks = (storage.max_slots / 2 + groups) * subs;  // ≥ units · subs
  launch(dkdv_kernel<T, D>, dim3(static_cast<unsigned>((tasks + kWarps - 1) / kWarps)),
         kWarpThreads, kWarps * kDkdvWarpBytes<T, D>, geo, ptr, lists);
  for_each(dims.batch * dims.k_len * dims.kv_heads * D,
           SumPartials<T>{lists, ptr.dk, ptr.dv, dims.k_len, dims.kv_heads, dims.block_size, D,
                          geo.scale});
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void check_supported(const SparseDims& dims, DType dtype, const char* op,
                     std::initializer_list<const void*> pointers) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    fail("{}: the CUDA kernels take f32 or bf16 tensors, got {}", op, dtype_name(dtype));
  if (dims.head_dim != 64 && dims.head_dim != 128)
    fail("{}: the CUDA kernels take head_dim 64 or 128, got {}", op, dims.head_dim);
  if (dims.block_size % kRows != 0)
    fail("{}: the CUDA kernels take a block size that is a multiple of 16, got {}", op,
         dims.block_size);
  if (dims.batch > 65535 || dims.kv_heads > 65535 ||
      dims.batch * dims.q_len * dims.kv_heads * dims.width > INT_MAX ||
      dims.q_len * dims.heads > INT_MAX || dims.k_len > INT_MAX / 2)
    fail("{}: batch {}, {} KV heads, {} queries or {} keys are over the CUDA kernels' range", op,
         dims.batch, dims.kv_heads, dims.q_len, dims.k_len);
  for (const void* p : pointers)
    SSA_CHECK(aligned16(p), "{}: CUDA tensors must start on 16-byte boundaries", op);
}

}  // namespace

void sparse_attention_forward(const SparseDims& dims, DType dtype, const SparseForward& args) {
  check_supported(dims, dtype, "sparse_attention", {args.q, args.k, args.v, args.out});
  const Geometry geo = make_geometry(dims);
  with_storage_type(dtype, "sparse_attention", [&](auto zero) {
    using T = decltype(zero);
    if (dims.head_dim == 64)
      forward_for<T, 64>(geo, args);
    else
      forward_for<T, 128>(geo, args);
  });
}

void sparse_attention_backward(const SparseDims& dims, DType dtype, const SparseBackward& args) {
  check_supported(dims, dtype, "sparse_attention backward",
                  {args.q, args.k, args.v, args.out, args.d_out, args.dq, args.dk, args.dv});
  if (dims.batch * dims.q_len == 0) {  // no query reads a key
    fill(args.dk, dtype, 0.0, dims.batch * dims.k_len * dims.kv_heads * dims.head_dim);
    fill(args.dv, dtype, 0.0, dims.batch * dims.k_len * dims.kv_heads * dims.head_dim);
    return;
  }
  const Geometry geo = make_geometry(dims);
  with_storage_type(dtype, "sparse_attention backward", [&](auto zero) {
    using T = decltype(zero);
    if (dims.head_dim == 64)
      backward_for<T, 64>(dims, geo, args);
    else
      backward_for<T, 128>(dims, geo, args);
  });
}

}  // namespace ssa::cuda
