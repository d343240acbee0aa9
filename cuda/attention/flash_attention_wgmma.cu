// Flash attention, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma, sm_90a).
// Each CTA is kWarpgroups warpgroups; each warpgroup owns 64 rows of the CTA's tile (queries in
// the forward and dQ kernels, keys in dK/dV) and keeps the operand it multiplies on every step
// (Q, dO; or K, V) in registers as A fragments, so only the streamed tiles are read from shared
// memory. Streamed tiles are loaded by TMA into a ring of three stages, in wgmma's swizzled
// layout, and each step's second products run while the next step's exponentials are computed.
// The same steps and sums as flash_attention_bf16.cu, so results are deterministic too.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/flash_attention_wgmma.h"
#include "cuda/attention/wgmma.cuh"
#include "cuda/device.cuh"

namespace ssa::cuda::flash {
namespace {

constexpr int kWarpgroups = 2;
constexpr int kThreads = kWarpgroups * wg::kWarpgroup;
constexpr int kStep = 64;                 // keys per step (forward, dQ) or queries per step (dK/dV)
constexpr int kTile = kStep * wg::kCols;  // elements of one 64-row tile
constexpr int kStages = 3;
static_assert(kWgmmaRows == 64 * kWarpgroups, "a warpgroup owns 64 rows");

// The first 1024-byte boundary of dynamic shared memory (kSmemSlack bytes are reserved for it).
constexpr size_t kSmemSlack = wg::kTileAlign;
__device__ bf16_t* aligned_tiles(unsigned char* smem_raw) {
  const uint32_t address = smem_address(smem_raw);
  const uint32_t pad = (wg::kTileAlign - address % wg::kTileAlign) % wg::kTileAlign;
  return reinterpret_cast<bf16_t*>(smem_raw + pad);
}

// The warp's first row within the CTA's tile: warpgroup · 64 + warp-in-group · 16.
__device__ int warp_row0() { return threadIdx.x / wg::kWarpgroup * 64 + threadIdx.x / 32 % 4 * 16; }

template <typename... Blocks>
__device__ void fence_all(Blocks&... blocks) {
  (wg::fence_operands(blocks), ...);
}

// The streamed tiles: per step two 64-row tiles (K and V, or Q and dO) loaded by TMA into a
// ring of kStages stages, each with the barrier its loads complete on.
struct TileRing {
  bf16_t* tiles;   // [kStages][2][64][64]
  uint64_t* full;  // [kStages]

  // Thread 0, once, before the CTA barrier that precedes the first load.
  __device__ void init() const {
    for (int stage = 0; stage < kStages; ++stage) wg::barrier_init(full + stage);
    wg::barrier_init_fence();
  }
  __device__ const bf16_t* first(int step) const { return tiles + 2 * (step % kStages) * kTile; }
  __device__ const bf16_t* second(int step) const { return first(step) + kTile; }
  // Thread 0: starts the step's tiles, rows [row0, row0 + 64) of `head` in both tensors.
  __device__ void issue(int step, const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                        int batch) const {
    uint64_t* bar = full + step % kStages;
    wg::barrier_expect(bar, 2 * wg::kBoxBytes);
    wg::load_box(tiles + 2 * (step % kStages) * kTile, a, head, row0, batch, bar);
    wg::load_box(tiles + (2 * (step % kStages) + 1) * kTile, b, head, row0, batch, bar);
  }
  // The step's tiles have landed (the stage's (step / kStages)-th phase).
  __device__ void wait(int step) const {
    wg::barrier_wait(full + step % kStages, step / kStages & 1);
  }
};
constexpr size_t kRingBytes = sizeof(bf16_t) * 2 * kStages * kTile + sizeof(uint64_t) * kStages;

// Step j starts with a CTA barrier: every warpgroup is then done with step j − 2's stage (its
// products were waited for in step j − 1), which thread 0 refills with step j + 1's tiles;
// then every thread waits for step j's.
template <typename Issue>
__device__ void start_step(const TileRing& ring, int step, int steps, Issue issue) {
  __syncthreads();
  if (threadIdx.x == 0 && step + 1 < steps) issue(step + 1);
  ring.wait(step);
}

// Each kernel's step j issues its own first products, then the second products of step j − 1
// (their A fragments kept from then), and computes its exponentials while the second group
// runs (as far as ptxas keeps them ahead of the wait: it may move the wait up). Step 0
// (body(0, std::true_type), with no earlier products) is peeled off the loop so that every
// wgmma issue and wait is unconditional: behind a branch, ptxas adds fences of its own
// (warning C7519) around the products.
template <typename Body>
__device__ void pipelined_steps(int steps, Body body) {
  if (steps == 0) return;
  body(0, std::true_type{});
  for (int step = 1; step < steps; ++step) body(step, std::false_type{});
}
template <typename First>
constexpr bool kFirst = First::value;

// One CTA per (query tile of kWgmmaRows, head, batch), heaviest (last) query tiles first.
// Step j: S_j = Q·K_jᵀ, then O += P_{j−1}·V_{j−1} while P_j is exponentiated; O is rescaled
// to step j's running max once that product is done.
// smem: Q [rows][64], then the K/V ring.
__global__ void __launch_bounds__(kThreads)
    forward_kernel(Problem pb, const __grid_constant__ CUtensorMap k_map,
                   const __grid_constant__ CUtensorMap v_map, const bf16_t* q, bf16_t* out,
                   float* lse) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* q_tile = aligned_tiles(smem_raw);
  bf16_t* ring_tiles = q_tile + kWgmmaRows * wg::kCols;
  const TileRing ring{ring_tiles, reinterpret_cast<uint64_t*>(ring_tiles + 2 * kStages * kTile)};
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgmmaRows, h = blockIdx.y, b = blockIdx.z;
  const int row0 = m0 + warp_row0();
  const int kv = h / pb.group();
  const int steps = ceil_div(pb.key_end(m0, kWgmmaRows), kStep);
  auto issue = [&](int step) { ring.issue(step, k_map, v_map, kv, step * kStep, b); };

  wg::load_tile<kWgmmaRows, kThreads>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  cp_async_commit();
  if (threadIdx.x == 0) {
    ring.init();
    if (steps > 0) issue(0);
  }
  cp_async_wait<0>();
  __syncthreads();
  uint32_t q_frag[4][4], p[4][4];
  wg::load_a(q_frag, q_tile, warp_row0());

  OnlineSoftmax softmax;
  float o[8][4] = {};
  pipelined_steps(steps, [&](int step, auto first) {
    start_step(ring, step, steps, issue);
    const int n0 = step * kStep;
    float s[8][4];
    fence_all(s, o);
    wg::fence();
    wg::issue_a_bt(s, q_frag, ring.first(step), false);
    wg::commit();
    if constexpr (!kFirst<decltype(first)>) {
      wg::issue_a_b(o, p, ring.second(step - 1));
      wg::commit();
      wg::wait<1>();
    } else {
      wg::wait<0>();
    }
    fence_all(s);
    if (!pb.tile_unmasked(row0, 16, n0, kStep))
      mask_scores(s, [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
    float correction[2];
    softmax.exponentiate(s, pb.scale_log2, correction);
    if constexpr (!kFirst<decltype(first)>) {  // step 0: O is still zero
      fence_all(s);
      wg::wait<0>();
      fence_all(o);
      OnlineSoftmax::rescale(o, correction);
    }
    wg::to_a(p, s);
  });
  if (steps > 0) {
    fence_all(o);
    wg::fence();
    wg::issue_a_b(o, p, ring.second(steps - 1));
    wg::commit();
    wg::wait<0>();
    fence_all(o);
  }

  float inverse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float total = quad_sum(softmax.sum[half]);
    inverse[half] = 1.f / total;
    const int t = row0 + frag_row(2 * half);
    if (t < pb.q_len && threadIdx.x % 4 == 0)
      lse[pb.row_stats(b, h) + t] = (softmax.max[half] * pb.scale_log2 + log2f(total)) * kLn2;
  }
  OnlineSoftmax::rescale(o, inverse);
  store_rows<64>(out + pb.q_head(b, h), pb.q_stride(), row0, pb.q_len, o, 1.f);
}

// dQ in the backward: each KV tile's share of a 64-query tile's dQ (64 × 64, f32, before the
// scale) is staged in shared memory and added to that query tile's sum in global memory by one
// bulk copy. The KV tiles add theirs in increasing order: a counter per query tile says how many
// have, and KV tile n waits until it reads n (KV tile 0 stores instead of adding, so the sums need
// no clearing). The sums are therefore the same on every run.
constexpr int kDqTileFloats = kStep * wg::kCols;
constexpr int kDqTileBytes = sizeof(float) * kDqTileFloats;
struct DqSums {
  float* sums;  // [B, H, query tiles][kDqTileFloats], in the layout of stage_dq
  int* turns;   // [B, H, query tiles]: the KV tiles that have added theirs; zero before launch
  int query_tiles;
};

// The warp's dSᵀ block (16 keys × 64 queries, as A fragments) into its warpgroup's tile of the
// step's dS ([64 queries][64 keys], swizzled), transposed.
__device__ void store_ds(bf16_t* ds_tiles, const uint32_t (&ds)[4][4]) {
  const int lane = threadIdx.x % 32, matrix = lane / 8;
  bf16_t* tile = ds_tiles + threadIdx.x / wg::kWarpgroup * kTile;
  const int key = threadIdx.x / 32 % 4 * 16 + (matrix & 1) * 8;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    wg::stmatrix_x4_trans(tile + wg::swizzled(kk * 16 + (matrix >> 1) * 8 + lane % 8, key), ds[kk]);
}

// The warpgroup's dQᵀ block (64 columns of dQ × its 32 queries) into the staging tile: float4
// nt·128 + thread of the warpgroup's half holds dqt[nt][0..3] (dq_from_sums reads it back).
__device__ void stage_dq(float* staging, const float (&dqt)[4][4]) {
  float4* dst = reinterpret_cast<float4*>(staging) + threadIdx.x / wg::kWarpgroup * 512 +
                threadIdx.x % wg::kWarpgroup;
#pragma unroll
  for (int nt = 0; nt < 4; ++nt)
    dst[nt * 128] = make_float4(dqt[nt][0], dqt[nt][1], dqt[nt][2], dqt[nt][3]);
}

constexpr int kDsBuffers = 3, kStagingBuffers = 3;

// The backward for one (KV tile of kWgmmaRows keys, KV head and share of its query heads,
// batch), with the head split of flash_attention_bf16.cu's dkdv_kernel. Per step (64 queries of
// one head; query tiles from the last down, the heads of the share inside):
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO,
// dK += dSᵀ·Q (times scale at the end), and dQᵀ = Kᵀ·dS for the step's queries, warpgroup w
// taking queries 32w..32w+31 (dS read back from shared memory), added to the dQ sums.
// Step j stages step j − 2's dQᵀ (its product ran through the step boundary), issues K·Q_jᵀ
// and V·dO_jᵀ, then step j − 1's dV, dK and dQᵀ products, and computes Pᵀ_j and dSᵀ_j while
// those run; the dQᵀ product runs on past the step's end. At the end of step j thread 0 sends
// step j − 3's staged dQ (staged in step j − 1) and ends the turn of step j − 4's.
// smem: K, V [rows][64]; dS [kDsBuffers][2][64][64]; dQ staging [kStagingBuffers][64·64 f32];
// the Q/dO ring; lse and delta [kStages][64] each (cp.async).
__global__ void __launch_bounds__(kThreads)
    backward_kernel(Problem pb, const __grid_constant__ CUtensorMap q_map,
                    const __grid_constant__ CUtensorMap do_map, BackwardPointers ptr, DqSums dq) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* k_tile = aligned_tiles(smem_raw);
  bf16_t* v_tile = k_tile + kWgmmaRows * wg::kCols;
  bf16_t* ds_tiles = v_tile + kWgmmaRows * wg::kCols;
  float* staging = reinterpret_cast<float*>(ds_tiles + kDsBuffers * 2 * kTile);
  bf16_t* ring_tiles = reinterpret_cast<bf16_t*>(staging + kStagingBuffers * kDqTileFloats);
  const TileRing ring{ring_tiles, reinterpret_cast<uint64_t*>(ring_tiles + 2 * kStages * kTile)};
  float* lse_rows = reinterpret_cast<float*>(ring.full + kStages);
  float* delta_rows = lse_rows + kStages * kStep;
  // Block order: KV tile slowest, so every KV tile a CTA waits for was launched before it.
  const int groups = pb.kv_heads * ptr.head_splits * pb.batch;
  const int key_tile = blockIdx.x / groups, group = blockIdx.x % groups;
  const int b = group / (pb.kv_heads * ptr.head_splits);
  const int kv = group % (pb.kv_heads * ptr.head_splits) / ptr.head_splits;
  const int split = group % ptr.head_splits;
  const int n0 = key_tile * kWgmmaRows, key0 = n0 + warp_row0();
  const int split_heads = pb.group() / ptr.head_splits;
  const int first_tile = pb.first_query(n0) / kStep;
  const int steps = (dq.query_tiles - first_tile) * split_heads;
  auto head_of = [&](int step) {
    return kv * pb.group() + split * split_heads + step % split_heads;
  };
  auto m0_of = [&](int step) { return (dq.query_tiles - 1 - step / split_heads) * kStep; };
  auto issue = [&](int step) { ring.issue(step, q_map, do_map, head_of(step), m0_of(step), b); };
  auto issue_rows = [&](int step) {
    const int h = head_of(step), m0 = m0_of(step), stage = step % kStages;
    load_row_values(lse_rows + stage * kStep, ptr.lse + pb.row_stats(b, h), m0, kStep, pb.q_len);
    load_row_values(delta_rows + stage * kStep, ptr.delta + pb.row_stats(b, h), m0, kStep,
                    pb.q_len);
    cp_async_commit();
  };
  auto ds_buffer = [&](int step) { return ds_tiles + step % kDsBuffers * 2 * kTile; };
  auto staged = [&](int step) { return staging + step % kStagingBuffers * kDqTileFloats; };
  // Thread 0: the step's staged dQ joins the sums in this KV tile's turn (`seen`: the turn
  // counter as read earlier); the turn ends once the copy has landed.
  auto turn_of = [&](int step) {
    return dq.turns + (int64_t{b} * pb.heads + head_of(step)) * dq.query_tiles +
           m0_of(step) / kStep;
  };
  auto send_dq = [&](int step, int seen) {
    const int* turn = turn_of(step);
    float* sum = dq.sums + (turn - dq.turns) * int64_t{kDqTileFloats};
    wg::wait_turn(turn, key_tile, seen);
    if (key_tile == 0)
      wg::bulk_store(sum, staged(step), kDqTileBytes);
    else
      wg::bulk_add(sum, staged(step), kDqTileBytes);
    wg::bulk_commit();
  };
  const int dq_row0 = threadIdx.x / wg::kWarpgroup * 32;  // the warpgroup's queries in dQᵀ

  wg::load_tile<kWgmmaRows, kThreads>(k_tile, ptr.k + pb.kv_head(b, kv), pb.kv_stride(), n0,
                                      pb.k_len);
  wg::load_tile<kWgmmaRows, kThreads>(v_tile, ptr.v + pb.kv_head(b, kv), pb.kv_stride(), n0,
                                      pb.k_len);
  issue_rows(0);
  if (threadIdx.x == 0) {
    ring.init();
    issue(0);
  }
  cp_async_wait<0>();
  wg::fence_async_shared();  // K is also read by wgmma
  __syncthreads();
  float dk[8][4] = {}, dv[8][4] = {}, dqt[4][4];
  uint32_t k_frag[4][4], v_frag[4][4], p_frag[4][4], ds_frag[4][4];
  wg::load_a(k_frag, k_tile, warp_row0());
  wg::load_a(v_frag, v_tile, warp_row0());
  auto issue_dv_dk = [&](int step) {
    wg::issue_a_b(dv, p_frag, ring.second(step));
    wg::issue_a_b(dk, ds_frag, ring.first(step));
    wg::commit();
  };
  auto issue_dq = [&](int step) {
    fence_all(dqt);
    wg::fence();
    wg::issue_at_bt_n32(dqt, k_tile, ds_buffer(step), dq_row0);
    wg::commit();
  };
  // Once step's dQᵀ product is done (the caller waited for it).
  auto stage = [&](int step) {
    fence_all(dqt);
    stage_dq(staged(step), dqt);
  };
  pipelined_steps(steps, [&](int step, auto first) {
    cp_async_wait<0>();  // this step's lse and delta
    start_step(ring, step, steps, issue);
    if (step + 1 < steps) issue_rows(step + 1);
    int seen = -1;
    if (threadIdx.x == 0 && step >= 3) seen = wg::read_turn(turn_of(step - 3));
    const int m0 = m0_of(step);
    float pt[8][4], dst[8][4];
    wg::wait<0>();  // step j − 2's dQᵀ, which ran through the step boundary
    if (step >= 2) stage(step - 2);
    fence_all(pt, dst, dk, dv, dqt);
    wg::fence();
    wg::issue_a_bt(pt, k_frag, ring.first(step), false);
    wg::issue_a_bt(dst, v_frag, ring.second(step), false);
    wg::commit();
    if constexpr (!kFirst<decltype(first)>) {
      issue_dv_dk(step - 1);
      issue_dq(step - 1);
      wg::wait<2>();
    } else {
      wg::wait<0>();
    }
    fence_all(pt, dst);
    if (!pb.tile_unmasked(m0, kStep, key0, 16))
      mask_scores(pt, [&](int r, int c) { return !pb.visible(m0 + c, key0 + r); });
    const float* lse_tile = lse_rows + step % kStages * kStep;
    const float* delta_tile = delta_rows + step % kStages * kStep;
#pragma unroll
    for (int qt = 0; qt < 8; ++qt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = frag_col(qt, e);
        const float p = fast_exp2(fmaf(pt[qt][e], pb.scale_log2, -lse_tile[col] * kLog2e));
        pt[qt][e] = p;
        dst[qt][e] = p * (dst[qt][e] - delta_tile[col]);
      }
    }
    if constexpr (!kFirst<decltype(first)>) {
      fence_all(pt, dst);
      wg::wait<1>();  // dV and dK: their A fragments are free
      fence_all(dk, dv);
    }
    wg::to_a(p_frag, pt);
    wg::to_a(ds_frag, dst);
    store_ds(ds_buffer(step), ds_frag);
    wg::fence_async_shared();
    if (threadIdx.x == 0 && step >= 3) {
      send_dq(step - 3, seen);
      wg::bulk_wait<1>();  // step j − 4's copy has landed (its staging tile is free)
      if (step >= 4) wg::pass_turn(turn_of(step - 4));
    }
  });
  // The last step's dV and dK, the last two dQᵀ products, then the dQ tiles not yet sent.
  if (threadIdx.x == 0) wg::bulk_wait_read<0>();  // the staging tile of step steps − 1 is free
  __syncthreads();
  fence_all(dk, dv);
  wg::fence();
  issue_dv_dk(steps - 1);
  wg::wait<1>();
  if (steps >= 2) stage(steps - 2);
  issue_dq(steps - 1);
  wg::wait<0>();
  fence_all(dk, dv);
  stage(steps - 1);
  wg::fence_async_shared();
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int step = steps < 3 ? 0 : steps - 3; step < steps; ++step) send_dq(step, -1);
    wg::bulk_wait<0>();
    for (int step = steps < 4 ? 0 : steps - 4; step < steps; ++step) wg::pass_turn(turn_of(step));
  }

  store_dk_dv<64>(pb, ptr, b, kv, split, key0, dk, dv);
}

// dQ = sum · scale as bf16 for one (64-query tile, head, batch): the staged layout of stage_dq
// is turned into rows through shared memory, so each thread writes 16 consecutive columns.
__global__ void __launch_bounds__(kThreads)
    dq_from_sums(Problem pb, const float* sums, bf16_t* dq) {
  __shared__ float rows[kStep][wg::kCols + 1];
  const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const float4* src = reinterpret_cast<const float4*>(
      sums + ((int64_t{b} * pb.heads + h) * gridDim.x + tile) * kDqTileFloats);
  const int half = threadIdx.x / wg::kWarpgroup, column0 = threadIdx.x % wg::kWarpgroup / 32 * 16;
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) {
    const float4 v = src[half * 512 + nt * 128 + threadIdx.x % wg::kWarpgroup];
    const float values[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int e = 0; e < 4; ++e)
      rows[half * 32 + frag_col(nt, e)][column0 + frag_row(e)] = values[e];
  }
  __syncthreads();
  const int row = threadIdx.x / 4, col0 = threadIdx.x % 4 * 16, t = tile * kStep + row;
  if (t >= pb.q_len) return;
  alignas(16) bf16_t out[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) out[i] = __float2bfloat16_rn(rows[row][col0 + i] * pb.scale);
  uint4* dst = reinterpret_cast<uint4*>(dq + pb.q_head(b, h) + t * pb.q_stride() + col0);
  dst[0] = reinterpret_cast<const uint4*>(out)[0];
  dst[1] = reinterpret_cast<const uint4*>(out)[1];
}

constexpr size_t kRowsBytes = sizeof(bf16_t) * kWgmmaRows * wg::kCols;
constexpr size_t kForwardSmem = kSmemSlack + kRowsBytes + kRingBytes;
constexpr size_t kBackwardSmem =
    kSmemSlack + 2 * kRowsBytes + sizeof(bf16_t) * kDsBuffers * 2 * kTile +
    kStagingBuffers * kDqTileBytes + kRingBytes + sizeof(float) * 2 * kStages * kStep;

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                 const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                 const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver's cuTensorMapEncodeTiled, found through the runtime (no link to libcuda).
EncodeTiled encode_tiled() {
  static const EncodeTiled encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                cudaEnableDefault, &found));
    SSA_CHECK(found == cudaDriverEntryPointSuccess && fn != nullptr,
              "attention: the CUDA driver has no cuTensorMapEncodeTiled (TMA)");
    return reinterpret_cast<EncodeTiled>(fn);
  }();
  return encode;
}

// The TMA map of a [batch, rows, heads, 64] bf16 tensor: boxes of 64 rows × 64 columns of one
// head, 128-byte swizzled (wg::load_box).
CUtensorMap rows_map(const void* base, int batch, int rows, int heads) {
  const cuuint64_t dims[4] = {64, cuuint64_t(heads), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[3] = {wg::kRowBytes, cuuint64_t(heads) * wg::kRowBytes,
                                 cuuint64_t(rows) * heads * wg::kRowBytes};
  const cuuint32_t box[4] = {64, 1, kStep, 1}, element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map{};
  const CUresult status = encode_tiled()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), dims, strides, box,
      element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  SSA_CHECK(status == CUDA_SUCCESS, "attention: cuTensorMapEncodeTiled failed ({})",
            static_cast<int>(status));
  return map;
}

}  // namespace

bool wgmma_path(const Problem& pb) {
#if defined(SSA_CUDA_SM90A)
  if (pb.head_dim != 64 || pb.q_len == 0 || pb.k_len == 0 || std::getenv("SSA_NO_WGMMA") != nullptr)
    return false;
  int device = 0, major = 0, minor = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major == 9 && minor == 0;
#else
  (void)pb;
  return false;
#endif
}

void forward_wgmma(const Problem& pb, const FlashForward& args) {
  launch(forward_kernel, dim3(ceil_div(pb.q_len, kWgmmaRows), pb.heads, pb.batch), kThreads,
         kForwardSmem, pb, rows_map(args.k, pb.batch, pb.k_len, pb.kv_heads),
         rows_map(args.v, pb.batch, pb.k_len, pb.kv_heads), static_cast<const bf16_t*>(args.q),
         static_cast<bf16_t*>(args.out), args.lse);
}

void backward_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  const int query_tiles = ceil_div(pb.q_len, kStep);
  const int64_t tiles = int64_t{pb.batch} * pb.heads * query_tiles;
  // Freed on return, the kernels using them already queued.
  DeviceScratch sums(sizeof(float) * tiles * kDqTileFloats), turns(sizeof(int) * tiles);
  CUDA_CHECK(cudaMemsetAsync(turns.as<int>(), 0, sizeof(int) * tiles, compute_stream()));
  const int64_t ctas =
      int64_t{ceil_div(pb.k_len, kWgmmaRows)} * pb.kv_heads * ptr.head_splits * pb.batch;
  launch(backward_kernel, dim3(static_cast<unsigned>(ctas)), kThreads, kBackwardSmem, pb,
         rows_map(ptr.q, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.d_out, pb.batch, pb.q_len, pb.heads), ptr,
         DqSums{sums.as<float>(), turns.as<int>(), query_tiles});
  launch(dq_from_sums, dim3(query_tiles, pb.heads, pb.batch), kThreads, 0, pb,
         static_cast<const float*>(sums.as<float>()), ptr.dq);
}

}  // namespace ssa::cuda::flash
