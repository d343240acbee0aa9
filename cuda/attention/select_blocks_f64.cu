// Block selection with scores in double, as the CPU op computes them, so both pick the same
// blocks (cuda/attention/select_blocks_f64.h).
#include <climits>
#include <cmath>

#include "cuda/attention/flash_attention_common.cuh"
#include "cuda/attention/select_blocks_f64.h"
#include "cuda/attention/select_shape.cuh"
#include "cuda/device.cuh"

namespace ssa::cuda {
namespace {

using flash::ceil_div;

// One warp per query position t (of one KV head), four per CTA; the CTA streams the candidate
// block means through shared memory as doubles, 64 blocks per tile, two per lane. Two sweeps:
// the first gathers each query head's softmax max and normalizer over the candidates j < own
// block, the second sums the heads' probabilities into block scores and keeps the best
// top_k − 1 in a list per warp (score descending, then block ascending: the CPU's order).

constexpr int kSelectWarps = 4;
constexpr int kCandidates = 64;  // blocks per tile: lane and lane + 32
constexpr int kHeadChunk = 4;    // query heads whose dot products a lane holds at once
constexpr unsigned kFullMask = 0xffffffffu;

// Block-mean rows padded by two doubles: the 16-byte reads of 8 lanes (rows 8 apart in
// (D + 2) / 2 units of 16 bytes, an odd number) hit distinct banks.
template <int D>
constexpr int kKbarPitch = D + 2;

struct SelectProblem : SelectShape {
  int group, padded_group;  // query heads per KV head; rounded up to kHeadChunk
  int list_slots;           // per warp: top_k − 1 where any row ranks candidates
  double scale;
};

// Shared memory, in this order: the block-mean tile [64][D + 2] and per warp: the group's
// queries [padded_group][D] (doubles), per-lane softmax statistics [padded_group][32] and the
// heads' final ones [padded_group] (double2: max, then sum or 1/sum), the list's scores and
// blocks [list_slots].
template <int D>
struct SelectLayout {
  const SelectProblem& sp;
  __host__ __device__ size_t tile_doubles() const { return size_t{kCandidates} * kKbarPitch<D>; }
  __host__ __device__ size_t query_doubles() const { return size_t(sp.padded_group) * D; }
  __host__ __device__ size_t stat_pairs() const { return size_t(sp.padded_group) * 33; }
  __host__ __device__ size_t bytes() const {
    return sizeof(double) * (tile_doubles() + kSelectWarps * query_doubles()) +
           sizeof(double2) * kSelectWarps * stat_pairs() +
           (sizeof(double) + sizeof(int)) * kSelectWarps * size_t(sp.list_slots);
  }
};

// The warp's slices of shared memory.
template <int D>
struct SelectWarpMemory {
  double *tile, *queries;
  double2 *lane_stats, *head_stats;
  double* list_score;
  int* list_block;

  __device__ SelectWarpMemory(unsigned char* smem, const SelectProblem& sp, int warp) {
    const SelectLayout<D> layout{sp};
    tile = reinterpret_cast<double*>(smem);
    queries = tile + layout.tile_doubles() + warp * layout.query_doubles();
    double2* stats = reinterpret_cast<double2*>(tile + layout.tile_doubles() +
                                                kSelectWarps * layout.query_doubles());
    lane_stats = stats + warp * layout.stat_pairs();
    head_stats = lane_stats + sp.padded_group * 32;
    double* scores = reinterpret_cast<double*>(stats + kSelectWarps * layout.stat_pairs());
    list_score = scores + warp * sp.list_slots;
    list_block =
        reinterpret_cast<int*>(scores + kSelectWarps * sp.list_slots) + warp * sp.list_slots;
  }
};

// Candidates j0 .. j0 + 63 of the KV head (rows at or past `limit` read as zeros), as doubles.
template <typename T, int D>
__device__ void load_candidates(double* tile, const T* kbar_head, int64_t block_stride, int j0,
                                int limit) {
  for (int e = threadIdx.x; e < kCandidates * D; e += blockDim.x) {
    const int r = e / D, x = e % D, j = j0 + r;
    tile[r * kKbarPitch<D> + x] =
        j < limit ? double{to_float(kbar_head[j * block_stride + x])} : 0.0;
  }
}

// w[c][h] = q_{i0 + h} · kbar_{j0 + 32·c + lane} · scale.
template <int D>
__device__ void chunk_scores(double (&w)[2][kHeadChunk], const double* queries, int i0,
                             const double* tile, double scale) {
  const int lane = threadIdx.x % 32;
  const double* k0 = tile + lane * kKbarPitch<D>;
  const double* k1 = k0 + 32 * kKbarPitch<D>;
  const double* q = queries + i0 * D;
#pragma unroll
  for (int h = 0; h < kHeadChunk; ++h) w[0][h] = w[1][h] = 0.0;
#pragma unroll 4
  for (int x = 0; x < D; x += 2) {
    const double2 a = *reinterpret_cast<const double2*>(k0 + x);
    const double2 b = *reinterpret_cast<const double2*>(k1 + x);
#pragma unroll
    for (int h = 0; h < kHeadChunk; ++h) {
      const double2 qh = *reinterpret_cast<const double2*>(q + h * D + x);
      w[0][h] = fma(qh.x, a.x, w[0][h]);
      w[0][h] = fma(qh.y, a.y, w[0][h]);
      w[1][h] = fma(qh.x, b.x, w[1][h]);
      w[1][h] = fma(qh.y, b.y, w[1][h]);
    }
  }
#pragma unroll
  for (int h = 0; h < kHeadChunk; ++h) {
    w[0][h] *= scale;
    w[1][h] *= scale;
  }
}

// stat = (max, Σ exp(w − max)) over the weights seen so far.
__device__ void add_weight(double2& stat, double w) {
  if (w > stat.x) {
    stat.y = stat.y * exp(stat.x - w) + 1.0;
    stat.x = w;
  } else {
    stat.y += exp(w - stat.x);
  }
}

__device__ double warp_max_double(double x) {
  for (int lanes = 16; lanes > 0; lanes /= 2) x = fmax(x, __shfl_xor_sync(kFullMask, x, lanes));
  return x;
}
__device__ double warp_sum_double(double x) {
  for (int lanes = 16; lanes > 0; lanes /= 2) x += __shfl_xor_sync(kFullMask, x, lanes);
  return x;
}

// The warp's best candidates so far: score descending, then block ascending. Candidates arrive
// in ascending block order, so a newcomer goes behind every listed block of equal score.
struct TopList {
  double* score;
  int* block;
  int count, capacity;

  __device__ bool admits(double s) const { return count < capacity || s > score[capacity - 1]; }

  // Inserts (s, j) at its rank, dropping the last entry when full. Needs admits(s).
  __device__ void insert(double s, int j) {
    const int lane = threadIdx.x % 32;
    int ahead = 0;  // entries of score ≥ s
    for (int x0 = 0; x0 < count; x0 += 32) {
      const int x = x0 + lane;
      ahead += __popc(__ballot_sync(kFullMask, x < count && score[x] >= s));
    }
    const int last = min(count, capacity - 1);      // the slot the shifted entries end at
    for (int top = last; top > ahead; top -= 32) {  // entries x − 1 move to x, top chunk first
      const int x = top - lane;
      const bool moves = x > ahead;
      double moved_score = 0;
      int moved_block = 0;
      if (moves) {
        moved_score = score[x - 1];
        moved_block = block[x - 1];
      }
      __syncwarp();
      if (moves) {
        score[x] = moved_score;
        block[x] = moved_block;
      }
      __syncwarp();
    }
    if (lane == 0) {
      score[ahead] = s;
      block[ahead] = j;
    }
    __syncwarp();
    count = min(count + 1, capacity);
  }
};

template <int D>
__device__ void gather_softmax_stats(const SelectWarpMemory<D>& mem, const SelectProblem& sp,
                                     int j0, int own) {
  const int lane = threadIdx.x % 32;
  for (int i0 = 0; i0 < sp.group; i0 += kHeadChunk) {
    double w[2][kHeadChunk];
    chunk_scores<D>(w, mem.queries, i0, mem.tile, sp.scale);
#pragma unroll
    for (int h = 0; h < kHeadChunk; ++h) {
      if (i0 + h >= sp.group) break;
      double2 stat = mem.lane_stats[(i0 + h) * 32 + lane];
#pragma unroll
      for (int c = 0; c < 2; ++c)
        if (j0 + 32 * c + lane < own) add_weight(stat, w[c][h]);
      mem.lane_stats[(i0 + h) * 32 + lane] = stat;
    }
  }
}

// head_stats[i] = (max, 1 / Σ exp(w − max)) over all candidates, from the lanes' partial ones.
template <int D>
__device__ void combine_softmax_stats(const SelectWarpMemory<D>& mem, const SelectProblem& sp) {
  const int lane = threadIdx.x % 32;
  for (int i = 0; i < sp.group; ++i) {
    const double2 stat = mem.lane_stats[i * 32 + lane];
    const double max = warp_max_double(stat.x);
    const double sum = warp_sum_double(stat.x == -INFINITY ? 0.0 : stat.y * exp(stat.x - max));
    if (lane == 0) mem.head_stats[i] = make_double2(max, 1.0 / sum);
  }
  __syncwarp();
}

// Scores of the tile's candidates (Σ over the group's heads, in head order, of the softmax
// probability), merged into the list in ascending block order.
template <int D>
__device__ void rank_candidates(const SelectWarpMemory<D>& mem, const SelectProblem& sp, int j0,
                                int own, TopList& list) {
  const int lane = threadIdx.x % 32;
  double score[2] = {0.0, 0.0};
  for (int i0 = 0; i0 < sp.group; i0 += kHeadChunk) {
    double w[2][kHeadChunk];
    chunk_scores<D>(w, mem.queries, i0, mem.tile, sp.scale);
#pragma unroll
    for (int h = 0; h < kHeadChunk; ++h) {
      if (i0 + h >= sp.group) break;
      const double2 stat = mem.head_stats[i0 + h];
#pragma unroll
      for (int c = 0; c < 2; ++c) score[c] += exp(w[c][h] - stat.x) * stat.y;
    }
  }
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const int first = j0 + 32 * c;
    unsigned pending = __ballot_sync(kFullMask, first + lane < own && list.admits(score[c]));
    while (pending) {
      const int from = __ffs(pending) - 1;
      pending &= pending - 1;
      const double s = __shfl_sync(kFullMask, score[c], from);
      if (list.admits(s)) list.insert(s, first + from);
    }
  }
}

// The listed blocks in ascending order, then the own block.
__device__ void write_ranked_row(const TopList& list, int own, int32_t* row) {
  const int lane = threadIdx.x % 32;
  for (int x = lane; x < list.capacity; x += 32) {
    const int j = list.block[x];
    int rank = 0;
    for (int y = 0; y < list.capacity; ++y) rank += list.block[y] < j;
    row[rank] = j;
  }
  if (lane == 0) row[list.capacity] = own;
}

// Grid (query groups of 4, KV heads, batch), heaviest (last) queries first.
template <typename T, int D>
__global__ void __launch_bounds__(32 * kSelectWarps)
    select_kernel(SelectProblem sp, const T* q, const T* kbar, int32_t* selection) {
  extern __shared__ __align__(16) unsigned char select_smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int b = blockIdx.z, kv = blockIdx.y;
  const int t0 = (gridDim.x - 1 - blockIdx.x) * kSelectWarps, t = t0 + warp;
  const bool exists = t < sp.q_len;
  const int own = exists ? sp.own_block(t) : 0;
  int32_t* row = selection + ((int64_t{b} * sp.q_len + t) * sp.kv_heads + kv) * sp.width;
  if (exists && own < sp.top_k) {  // every block up to the own one
    for (int slot = lane; slot < sp.width; slot += 32) row[slot] = slot <= own ? slot : -1;
  } else if (exists && sp.top_k == 1 && lane == 0) {
    row[0] = own;
  }
  const int own_last = sp.own_block(min(t0 + kSelectWarps, sp.q_len) - 1);
  if (sp.top_k == 1 || own_last < sp.top_k) return;  // no warp of the CTA ranks

  const bool ranks = exists && own >= sp.top_k;
  const SelectWarpMemory<D> mem(select_smem, sp, warp);
  if (ranks) {
    const T* q_group = q + ((int64_t{b} * sp.q_len + t) * sp.heads + int64_t{kv} * sp.group) * D;
    for (int e = lane; e < sp.padded_group * D; e += 32)
      mem.queries[e] = e < sp.group * D ? double{to_float(q_group[e])} : 0.0;
    for (int i = 0; i < sp.padded_group; ++i)
      mem.lane_stats[i * 32 + lane] = make_double2(-INFINITY, 0.0);
  }
  const T* kbar_head = kbar + (int64_t{b} * sp.kbar_blocks * sp.kv_heads + kv) * D;
  const int64_t block_stride = int64_t{sp.kv_heads} * D;
  const int tiles = ceil_div(own_last, kCandidates);
  for (int tile = 0; tile < tiles; ++tile) {
    __syncthreads();  // the last tile's readers are done
    load_candidates<T, D>(mem.tile, kbar_head, block_stride, tile * kCandidates, own_last);
    __syncthreads();
    if (ranks && tile * kCandidates < own) gather_softmax_stats(mem, sp, tile * kCandidates, own);
  }
  if (ranks) combine_softmax_stats(mem, sp);
  TopList list{mem.list_score, mem.list_block, 0, sp.top_k - 1};
  for (int tile = 0; tile < tiles; ++tile) {
    __syncthreads();
    load_candidates<T, D>(mem.tile, kbar_head, block_stride, tile * kCandidates, own_last);
    __syncthreads();
    if (ranks && tile * kCandidates < own) rank_candidates(mem, sp, tile * kCandidates, own, list);
  }
  if (ranks) write_ranked_row(list, own, row);
}

template <int D, typename T>
void launch_select(const SelectProblem& sp, int64_t batch, const void* q, const void* kbar,
                   int32_t* selection) {
  const size_t bytes = SelectLayout<D>{sp}.bytes();
  int limit = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  if (bytes > static_cast<size_t>(limit))
    fail(
        "select_blocks: {} query heads per KV head at head_dim {} with top_k {} need {} bytes "
        "of GPU shared memory, over the {} available",
        sp.group, D, sp.top_k, bytes, limit);
  const dim3 grid(ceil_div(sp.q_len, kSelectWarps), sp.kv_heads, static_cast<unsigned>(batch));
  launch(select_kernel<T, D>, grid, 32 * kSelectWarps, bytes, sp, static_cast<const T*>(q),
         static_cast<const T*>(kbar), selection);
}

}  // namespace

void select_blocks_f64(const SparseDims& dims, DType dtype, const void* q, const void* kbar,
                       int64_t kbar_blocks, int64_t top_k, int32_t* selection) {
  const int group = static_cast<int>(dims.heads / dims.kv_heads);
  const int64_t last_own = (dims.k_len - 1) / dims.block_size;
  const SelectProblem sp{select_shape(dims, kbar_blocks, top_k), group,
                         ceil_div(group, kHeadChunk) * kHeadChunk,
                         static_cast<int>(std::min(top_k - 1, last_own)),
                         1.0 / std::sqrt(static_cast<double>(dims.head_dim))};
  with_storage_type(dtype, "select_blocks", [&](auto zero) {
    using T = decltype(zero);
    if (dims.head_dim == 64)
      launch_select<64, T>(sp, dims.batch, q, kbar, selection);
    else
      launch_select<128, T>(sp, dims.batch, q, kbar, selection);
  });
}

}  // namespace ssa::cuda
