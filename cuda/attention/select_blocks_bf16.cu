// Block selection on tensor cores (cuda/attention/select_blocks_bf16.h).
//
// Rows are (query position, query head of the KV group) pairs. A warp owns 16 rows: 16 / G
// positions of G heads (row r is position r / G, head r % G); a CTA owns kWarps warps of
// consecutive positions, heaviest (last) positions first. The CTA streams the block means of
// the candidates 0 .. (its last own block − 1) through shared memory in tiles of 64 blocks,
// twice. The first sweep gathers each row's softmax statistics over its candidates (the blocks
// before its own): s = q·kbar (mma.sync, fp32 accumulation), x = s·scale·log2(e), running max
// and sum of 2^(x − max). The second turns the scores into probabilities 2^(x − lse2), sums the
// G heads of each position with shuffles across the lanes that hold them, and offers each
// candidate to a sorted list kept in the registers of the one lane that owns its column. A
// segmented warp merge of the owners' lists gives each position its top_k − 1 blocks: score
// descending, then block ascending, as on the CPU.
#include <climits>
#include <cmath>

#include "cuda/attention/flash_attention_common.cuh"
#include "cuda/attention/mma.cuh"
#include "cuda/attention/select_blocks_bf16.h"
#include "cuda/attention/select_shape.cuh"

namespace ssa::cuda {
namespace {

using flash::ceil_div;
using flash::kLog2e;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 64;         // candidate blocks per shared-memory tile (8 n-tiles of 8)
constexpr int kSlots = 16;        // list entries per lane: top_k − 1 ≤ 16
constexpr int kListPitch = 17;    // smem words per list: odd, so lanes read distinct banks
constexpr float kNoScore = -1.f;  // below every score (scores are sums of probabilities)
constexpr float kInf = INFINITY;

// Block-mean tile rows: D bf16 and 16 bytes of padding, so ldmatrix phases do not conflict.
template <int D>
constexpr int kPitch = D + 8;

struct Problem : SelectShape {
  float scale_log2;  // log2(e) / sqrt(head_dim)
};

// Which rows and lists a lane holds for G query heads per KV head. Lane 4·g + u holds rows g
// and g + 8 of its warp's 16 (the mma accumulator layout; "half" 0 and 1) and columns 2u, 2u + 1
// of each 8-column n-tile. The head sum splits a position's block scores among its lanes: the
// lane keeps the n-tiles nt with nt % kStride == sub(g) of the half it owns. G = 1 needs no sum and
// keeps both halves (two lists); G = 16 has one position, whose rows fill both halves.
template <int G>
struct Lanes {
  static_assert(G == 1 || G == 2 || G == 4 || G == 8 || G == 16, "G divides 16");
  static constexpr int kPositions = 16 / G;  // per warp
  static constexpr int kLists = G == 1 ? 2 : 1;
  static constexpr int kStride = G == 1 ? 1 : G / 2;
  // The lanes whose lists hold one position: aligned, contiguous, a power of two.
  static constexpr int kSegment = G == 1 ? 4 : 2 * G;
  static constexpr int kSegments = 32 / kSegment;

  __device__ static int half_of_list(int g, int list) {
    if constexpr (G == 1)
      return list;
    else if constexpr (G == 16)
      return 0;
    else
      return g % G / (G / 2);
  }
  __device__ static int sub(int g) { return G == 1 ? 0 : g % kStride; }
  // The warp-local position of the rows of `half`.
  __device__ static int position_of_half(int g, int half) { return (8 * half + g) / G; }
};

// The best candidates a lane has seen: score descending, then block ascending. Candidates are
// offered in ascending block order, so a newcomer ranks behind every equal score.
struct TopList {
  float score[kSlots];
  int block[kSlots];

  __device__ void clear() {
#pragma unroll
    for (int x = 0; x < kSlots; ++x) {
      score[x] = kNoScore;
      block[x] = INT_MAX;
    }
  }
  __device__ void offer(float s, int j) {
    if (!(s > score[kSlots - 1])) return;
    bool placed = false;
#pragma unroll
    for (int x = kSlots - 1; x > 0; --x) {
      const bool moves = !placed && s > score[x - 1];
      if (moves) {
        score[x] = score[x - 1];
        block[x] = block[x - 1];
      } else if (!placed) {
        score[x] = s;
        block[x] = j;
        placed = true;
      }
    }
    if (!placed) {
      score[0] = s;
      block[0] = j;
    }
  }
};

// The warp's queries as mma A fragments, one 16 × 16 block per 16 columns of head_dim: lane
// 4g + u holds row g and g + 8, columns 2u, 2u + 1 and 2u + 8, 2u + 9. Rows past q_len are 0.
template <int D, int G>
__device__ void load_queries(uint32_t (&a)[D / 16][4], const bf16_t* q, const Problem& pb, int b,
                             int kv, int t_first) {
  const int g = threadIdx.x % 32 / 4, u = threadIdx.x % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = g + 8 * half, t = t_first + row / G;
    const bf16_t* src =
        q + ((int64_t{b} * pb.q_len + t) * pb.heads + int64_t{kv} * G + row % G) * D + 2 * u;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int c = 0; c < 2; ++c)
        a[kk][half + 2 * c] =
            t < pb.q_len ? *reinterpret_cast<const uint32_t*>(src + 16 * kk + 8 * c) : 0u;
  }
}

// Candidates j0 .. j0 + 63 of the KV head (rows at or past `limit` read as zeros), by cp.async.
template <int D>
__device__ void load_candidates(bf16_t* tile, const bf16_t* kbar_head, int64_t stride, int j0,
                                int limit) {
  constexpr int kChunks = D / 8;  // 16-byte pieces per row
  for (int e = threadIdx.x; e < kTile * kChunks; e += kThreads) {
    const int r = e / kChunks, c = e % kChunks * 8, j = j0 + r;
    const bool inside = j < limit;
    cp_async_16(tile + r * kPitch<D> + c, inside ? kbar_head + int64_t{j} * stride + c : kbar_head,
                inside);
  }
}

// s = Q · tileᵀ for the warp's 16 rows and the tile's 64 candidates.
template <int D>
__device__ void tile_scores(float (&s)[8][4], const uint32_t (&a)[D / 16][4], const bf16_t* tile) {
  const int lane = threadIdx.x % 32;
  const bf16_t* b_lane = tile + nk_row(lane) * kPitch<D> + nk_col(lane);
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nt][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b_frag[4];
      ldmatrix_x4(b_frag, b_lane + np * 16 * kPitch<D> + kk * 16);
      mma(s[2 * np], a[kk], b_frag[0], b_frag[1]);
      mma(s[2 * np + 1], a[kk], b_frag[2], b_frag[3]);
    }
  }
}

// Per thread and row half: the running max of x over the candidates seen and the sum of
// 2^(x − max) over this thread's columns; lse2 once the first sweep is complete.
struct RowStats {
  float max[2] = {-kInf, -kInf}, sum[2] = {0.f, 0.f}, lse2[2];

  // s: raw scores of one tile; own: the rows' own blocks (candidates are the blocks before);
  // masked: whether some column of the tile is not a candidate of some row.
  __device__ void add(float (&s)[8][4], int j0, const int (&own)[2], bool masked,
                      float scale_log2) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tile_max = -kInf;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          const bool candidate = !masked || j0 + frag_col(nt, e) < own[half];
          s[nt][e] = candidate ? s[nt][e] * scale_log2 : -kInf;
          tile_max = fmaxf(tile_max, s[nt][e]);
        }
      if (tile_max > max[half]) {
        sum[half] *= fast_exp2(max[half] - tile_max);
        max[half] = tile_max;
      }
      if (max[half] == -kInf) continue;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) sum[half] += fast_exp2(s[nt][e] - max[half]);
    }
  }
  // The quad of lanes sharing the rows combines its columns; rows without candidates get
  // lse2 = +inf (every probability 0).
  __device__ void finish() {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float row_max = quad_max(max[half]);
      const float part = max[half] == -kInf ? 0.f : sum[half] * fast_exp2(max[half] - row_max);
      const float total = quad_sum(part);
      lse2[half] = total > 0.f ? row_max + log2f(total) : kInf;
    }
  }
};

// The scores of one tile's columns that the lane offers: p = 2^(x − lse2) summed over the G heads
// of each position, by a reduce-scatter across the lanes that hold them. The lane's values are
// x[(half · 8 + nt) · 2 + c] (G = 16: x[nt · 2 + c], its two halves added first); at shuffle level
// l (partner lane 4·2^l away) a lane keeps the half of its live values whose split bit matches
// bit l of its g, adding the partner's copies of them, so the additions pair as a butterfly's
// would (the same bits). The split bits are the n-tile's low bits, then (G < 16) the half:
// owned[list][k][c] ends as the column c of n-tile sub(g) + k · kStride of the lane's list.
template <int G>
constexpr int kSumLevels = G == 16 || G == 8 ? 3
                           : G == 4          ? 2
                           : G == 2          ? 1
                                             : 0;
template <int G>
__host__ __device__ constexpr int split_bit(int level) {
  return G == 16 || level < kSumLevels<G> - 1 ? 2 << level : 16;
}
template <int G>
using OwnedSums = float[Lanes<G>::kLists][8 / Lanes<G>::kStride][2];

template <int G>
__device__ void head_sums(OwnedSums<G>& owned, const float (&s)[8][4], int j0, const int (&own)[2],
                          bool masked, const RowStats& stats, float scale_log2) {
  using L = Lanes<G>;
  constexpr int kValues = G == 16 ? 16 : 32;
  float x[kValues];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int half = e >> 1, c = e & 1;
      const float p = !masked || j0 + frag_col(nt, e) < own[half]
                          ? fast_exp2(fmaf(s[nt][e], scale_log2, -stats.lse2[half]))
                          : 0.f;
      if constexpr (G == 16)
        x[nt * 2 + c] = half == 0 ? p : x[nt * 2 + c] + p;
      else
        x[(half * 8 + nt) * 2 + c] = p;
    }
  const int g = threadIdx.x % 32 / 4;
  int split = 0;  // the bits split so far: values with one of them set are no longer live
#pragma unroll
  for (int level = 0; level < kSumLevels<G>; ++level) {
    const int bit = split_bit<G>(level);
    const bool upper = (g >> level & 1) != 0;
#pragma unroll
    for (int i = 0; i < kValues; ++i) {
      if ((i & (bit | split)) != 0) continue;
      const float keep = upper ? x[i | bit] : x[i];
      const float send = upper ? x[i] : x[i | bit];
      x[i] = keep + __shfl_xor_sync(0xffffffffu, send, 4 << level);
    }
    split |= bit;
  }
#pragma unroll
  for (int list = 0; list < L::kLists; ++list)
#pragma unroll
    for (int k = 0; k < 8 / L::kStride; ++k)
#pragma unroll
      for (int c = 0; c < 2; ++c) owned[list][k][c] = x[(list * 8 + k * L::kStride) * 2 + c];
}

// Offers the tile's candidates in the columns the lane owns to its lists, in block order.
template <int G>
__device__ void offer_tile(TopList (&lists)[Lanes<G>::kLists], const OwnedSums<G>& owned, int j0,
                           const int (&own)[2], bool masked) {
  using L = Lanes<G>;
  const int g = threadIdx.x % 32 / 4, u = threadIdx.x % 4, sub = L::sub(g);
#pragma unroll
  for (int list = 0; list < L::kLists; ++list) {
    const int own_block = L::half_of_list(g, list) == 0 ? own[0] : own[1];
#pragma unroll
    for (int k = 0; k < 8 / L::kStride; ++k)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int j = j0 + 8 * (sub + k * L::kStride) + 2 * u + c;
        if (!masked || j < own_block) lists[list].offer(owned[list][k][c], j);
      }
  }
}

// The block of the segment's best (score, block): score descending, then block ascending.
// A whole warp reduces in two steps on the scores' bits, which order as the scores do for
// scores ≥ 0 (sums of probabilities; kNoScore counts as 0 there and loses on its block,
// INT_MAX). Smaller segments go through a shuffle butterfly.
template <int kSegment>
__device__ int segment_best(float s, int j) {
  if constexpr (kSegment == 32) {
    const unsigned key = s > 0.f ? __float_as_uint(s) : 0u;
    const unsigned best = __reduce_max_sync(0xffffffffu, key);
    return __reduce_min_sync(0xffffffffu, key == best ? j : INT_MAX);
  } else {
    float best_s = s;
    int best_j = j;
#pragma unroll
    for (int lanes = 1; lanes < kSegment; lanes *= 2) {
      const float other_s = __shfl_xor_sync(0xffffffffu, best_s, lanes);
      const int other_j = __shfl_xor_sync(0xffffffffu, best_j, lanes);
      if (other_s > best_s || (other_s == best_s && other_j < best_j)) {
        best_s = other_s;
        best_j = other_j;
      }
    }
    return best_j;
  }
}

// The `count` best candidates over the lists of the lane's segment (one list per lane at
// `mine`, kSlots entries, sorted), in order, into chosen[0 .. count) (written by the segment's
// first lane). Each round every lane proposes its best unused entry and the segment's best
// advances its owner: blocks are unique within a position, so (score, block) names the lane.
template <int kSegment>
__device__ void merge_lists(const float* mine_score, const int* mine_block, int count,
                            int* chosen) {
  const int lane = threadIdx.x % 32;
  int next = 0;
  for (int round = 0; round < count; ++round) {
    const float s = next < kSlots ? mine_score[next] : kNoScore;
    const int j = next < kSlots ? mine_block[next] : INT_MAX;
    const int best_j = segment_best<kSegment>(s, j);
    if (best_j == j && next < kSlots) ++next;
    if (lane % kSegment == 0) chosen[round] = best_j;
  }
  __syncwarp();
}

// Row = the chosen blocks ascending (each lane of the segment ranks some), then the own block.
template <int kSegment>
__device__ void write_selected(const int* chosen, int count, int own, int32_t* row) {
  const int lane = threadIdx.x % 32;
  for (int x = lane % kSegment; x < count; x += kSegment) {
    int rank = 0;
    for (int y = 0; y < count; ++y) rank += chosen[y] < chosen[x];
    row[rank] = chosen[x];
  }
  if (lane % kSegment == 0) row[count] = own;
}

// Shared memory: the candidate tiles [2][64][D + 8] bf16, reused after the sweeps for the
// lanes' lists (per warp [kLists][32] lists of kListPitch floats and as many ints), then per
// warp the chosen blocks [kLists][kSegments][kSlots].
template <int D, int G>
struct SelectSmem {
  static constexpr size_t kTiles = sizeof(bf16_t) * 2 * kTile * kPitch<D>;
  static constexpr size_t kListWords = size_t{Lanes<G>::kLists} * 32 * kListPitch;
  static constexpr size_t kLists = sizeof(float) * 2 * kWarps * kListWords;
  static constexpr size_t kChosenInts = size_t{Lanes<G>::kLists} * Lanes<G>::kSegments * kSlots;
  static constexpr size_t kArena = kTiles > kLists ? kTiles : kLists;
  static constexpr size_t kBytes = kArena + sizeof(int) * kWarps * kChosenInts;
};

// Writes every row of the warp's positions that needs no ranking (own block < top_k: all
// blocks up to the own one; top_k = 1: the own block). Returns whether some position ranks.
template <int G>
__device__ bool write_unranked_rows(const Problem& pb, int b, int kv, int t_first,
                                    int32_t* selection) {
  const int lane = threadIdx.x % 32;
  bool ranks = false;
  for (int p = 0; p < Lanes<G>::kPositions; ++p) {
    const int t = t_first + p;
    if (t >= pb.q_len) break;
    const int own = pb.own_block(t);
    if (own >= pb.top_k && pb.top_k > 1) {
      ranks = true;
      continue;
    }
    int32_t* row = selection + ((int64_t{b} * pb.q_len + t) * pb.kv_heads + kv) * pb.width;
    for (int slot = lane; slot < pb.width; slot += 32)
      row[slot] = own >= pb.top_k ? own : slot <= own ? slot : -1;
  }
  return ranks;
}

// Grid (CTAs of kWarps · 16 / G positions, KV heads, batch), heaviest first.
template <int D, int G>
__global__ void __launch_bounds__(kThreads)
    select_kernel(Problem pb, const bf16_t* q, const bf16_t* kbar, int32_t* selection) {
  using L = Lanes<G>;
  using Smem = SelectSmem<D, G>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
  const int b = blockIdx.z, kv = blockIdx.y;
  const int cta_positions = kWarps * L::kPositions;
  const int t_cta = (gridDim.x - 1 - blockIdx.x) * cta_positions;
  const int t_first = t_cta + warp * L::kPositions;
  const int count = pb.top_k - 1;  // candidates each ranked position keeps

  const bool warp_ranks = write_unranked_rows<G>(pb, b, kv, t_first, selection);
  const int cta_last_own = pb.own_block(min(t_cta + cta_positions, pb.q_len) - 1);
  if (count == 0 || cta_last_own < pb.top_k) return;  // no position of the CTA ranks

  int own[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int t = t_first + L::position_of_half(g, half);
    own[half] = t < pb.q_len ? pb.own_block(t) : 0;
  }
  const int warp_last_own = pb.own_block(min(t_first + L::kPositions, pb.q_len) - 1);
  // Tiles wholly below every row's own block need no mask (rows past q_len have own 0).
  const int warp_first_own = __reduce_min_sync(0xffffffffu, min(own[0], own[1]));
  uint32_t a[D / 16][4];
  load_queries<D, G>(a, q, pb, b, kv, t_first);

  bf16_t* tiles = reinterpret_cast<bf16_t*>(smem_raw);
  const bf16_t* kbar_head = kbar + (int64_t{b} * pb.kbar_blocks * pb.kv_heads + kv) * D;
  const int64_t stride = int64_t{pb.kv_heads} * D;
  const int tile_count = ceil_div(cta_last_own, kTile), steps = 2 * tile_count;
  RowStats stats;
  TopList lists[L::kLists];
#pragma unroll
  for (int list = 0; list < L::kLists; ++list) lists[list].clear();

  load_candidates<D>(tiles, kbar_head, stride, 0, cta_last_own);
  cp_async_commit();
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1, j0 = step % tile_count * kTile;
    if (step + 1 < steps) {
      load_candidates<D>(tiles + (stage ^ 1) * kTile * kPitch<D>, kbar_head, stride,
                         (step + 1) % tile_count * kTile, cta_last_own);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (step == tile_count) stats.finish();
    if (warp_ranks && j0 < warp_last_own) {
      const bool masked = j0 + kTile > warp_first_own;
      float s[8][4];
      tile_scores<D>(s, a, tiles + stage * kTile * kPitch<D>);
      if (step < tile_count) {
        stats.add(s, j0, own, masked, pb.scale_log2);
      } else {
        OwnedSums<G> owned;
        head_sums<G>(owned, s, j0, own, masked, stats, pb.scale_log2);
        offer_tile<G>(lists, owned, j0, own, masked);
      }
    }
    __syncthreads();  // the stage is refilled next step; after the last, the arena is reused
  }

  float* warp_scores = reinterpret_cast<float*>(smem_raw) + warp * 2 * Smem::kListWords;
  int* warp_blocks = reinterpret_cast<int*>(warp_scores + Smem::kListWords);
  int* warp_chosen = reinterpret_cast<int*>(smem_raw + Smem::kArena) + warp * Smem::kChosenInts;
#pragma unroll
  for (int list = 0; list < L::kLists; ++list) {
    float* mine_score = warp_scores + (list * 32 + lane) * kListPitch;
    int* mine_block = warp_blocks + (list * 32 + lane) * kListPitch;
#pragma unroll
    for (int x = 0; x < kSlots; ++x) {
      mine_score[x] = lists[list].score[x];
      mine_block[x] = lists[list].block[x];
    }
    int* chosen = warp_chosen + (list * L::kSegments + lane / L::kSegment) * kSlots;
    merge_lists<L::kSegment>(mine_score, mine_block, count, chosen);
    const int t = t_first + L::position_of_half(g, L::half_of_list(g, list));
    if (t < pb.q_len && pb.own_block(t) >= pb.top_k)
      write_selected<L::kSegment>(
          chosen, count, pb.own_block(t),
          selection + ((int64_t{b} * pb.q_len + t) * pb.kv_heads + kv) * pb.width);
  }
}

template <int D, int G>
void launch_select(const Problem& pb, int batch, const void* q, const void* kbar,
                   int32_t* selection) {
  const int cta_positions = kWarps * Lanes<G>::kPositions;
  launch(select_kernel<D, G>, dim3(ceil_div(pb.q_len, cta_positions), pb.kv_heads, batch), kThreads,
         SelectSmem<D, G>::kBytes, pb, static_cast<const bf16_t*>(q),
         static_cast<const bf16_t*>(kbar), selection);
}

template <int D>
void launch_for_group(const Problem& pb, int group, int batch, const void* q, const void* kbar,
                      int32_t* selection) {
  switch (group) {
    case 1:
      return launch_select<D, 1>(pb, batch, q, kbar, selection);
    case 2:
      return launch_select<D, 2>(pb, batch, q, kbar, selection);
    case 4:
      return launch_select<D, 4>(pb, batch, q, kbar, selection);
    case 8:
      return launch_select<D, 8>(pb, batch, q, kbar, selection);
    default:
      return launch_select<D, 16>(pb, batch, q, kbar, selection);
  }
}

}  // namespace

bool select_blocks_bf16_takes(const SparseDims& dims, int64_t top_k) {
  const int64_t group = dims.heads / dims.kv_heads;
  const bool group_ok = group == 1 || group == 2 || group == 4 || group == 8 || group == 16;
  return group_ok && (dims.head_dim == 64 || dims.head_dim == 128) && top_k <= kSlots + 1;
}

void select_blocks_bf16(const SparseDims& dims, const void* q, const void* kbar,
                        int64_t kbar_blocks, int64_t top_k, int32_t* selection) {
  const Problem pb{select_shape(dims, kbar_blocks, top_k),
                   static_cast<float>(kLog2e / std::sqrt(static_cast<double>(dims.head_dim)))};
  const int group = static_cast<int>(dims.heads / dims.kv_heads);
  const int batch = static_cast<int>(dims.batch);
  if (dims.head_dim == 64)
    launch_for_group<64>(pb, group, batch, q, kbar, selection);
  else
    launch_for_group<128>(pb, group, batch, q, kbar, selection);
}

}  // namespace ssa::cuda
