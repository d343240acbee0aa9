// Flash attention backward, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma,
// sm_90a): dK, dV and dQ in one pass per KV tile, on the warp-specialised CTA of
// wgmma_steps.cuh (a producer warpgroup with few registers issues every load and adds the dQ
// shares to their sums, in a fixed order, so results are deterministic).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "cuda/attention/wgmma_steps.cuh"
#include "cuda/device.cuh"

namespace ssa::cuda::flash {
namespace {

// dQ: each CTA's share of a 64-query tile's dQ, dQᵀ = Kᵀ·dS over the CTA's 128 keys (f32,
// before the scale), is added to that query tile's sum in global memory by one bulk copy. The
// KV tiles add their shares in decreasing order: a counter per query tile (its turn) says how
// many have, and KV tile j adds once it reads last − j, `last` being the last KV tile the query
// tile sees (which stores instead of adding, so the sums need no clearing). A CTA walks its
// query tiles upwards, so KV tile j + 1 reaches a query tile two steps before KV tile j does:
// in the steady state no CTA waits for its turn. The sums are the same on every run.
constexpr int kDqTileFloats = kStep * wg::kCols;
constexpr int kDqTileBytes = sizeof(float) * kDqTileFloats;
constexpr int kDsBuffers = 2, kStagingBuffers = 3;
struct DqSums {
  float* sums;  // [B, H, query tiles][kDqTileFloats], in the layout of DqShares::stage
  int* turns;   // [B, H, query tiles]: the KV tiles that have added theirs; zero before launch
  int query_tiles;
};
// The last KV tile (of kWgmmaRows keys) that the 64-query tile from m0 sees; −1 for none.
__device__ int last_key_tile(const Problem& pb, int m0) {
  return ceil_div(pb.key_end(m0, kStep), kWgmmaRows) - 1;
}

// A backward CTA's dQ traffic through shared memory. Per step: dS, written transposed by both
// warpgroups (both dQᵀ products read both tiles), and the step's dQᵀ, staged for the writer
// thread, which adds it to the sums.
struct DqShares {
  bf16_t* ds;                     // [kDsBuffers][2][64 queries][64 keys], swizzled
  float* staging;                 // [kStagingBuffers][kDqTileFloats]
  Slots<kDsBuffers> ds_slots;     // filled and emptied by every computing warp
  Slots<kStagingBuffers> staged;  // filled by every computing warp, emptied by the writer

  __device__ void init() const {
    ds_slots.init(kThreads / 32, kThreads / 32);
    staged.init(kThreads / 32, 1);
  }
  __device__ bf16_t* ds_tiles(int step) const { return ds + step % kDsBuffers * 2 * kTile; }
  __device__ bf16_t* own_ds(int step) const {
    return ds_tiles(step) + threadIdx.x / wg::kWarpgroup * kTile;
  }
  __device__ float* staged_tile(int step) const {
    return staging + step % kStagingBuffers * kDqTileFloats;
  }
  // The warp's dSᵀ block (16 keys × 64 queries, as A fragments) into its warpgroup's tile of the
  // step's dS, transposed.
  __device__ void store_ds(int step, const uint32_t (&frag)[4][4]) const {
    ds_slots.wait_emptied(step);
    const int lane = threadIdx.x % 32, matrix = lane / 8;
    const int key = threadIdx.x / 32 % 4 * 16 + (matrix & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      wg::stmatrix_x4_trans(
          own_ds(step) + wg::swizzled(kk * 16 + (matrix >> 1) * 8 + lane % 8, key), frag[kk]);
    wg::fence_async_shared();
    ds_slots.fill_by_warp(step);
  }
  // The warp's products reading the step's dS have completed.
  __device__ void release_ds(int step) const {
    if (threadIdx.x % 32 == 0) ds_slots.empty(step);
  }
  // The warpgroup's block of the step's dQᵀ (64 columns of dQ × its 32 queries): float4
  // w·512 + nt·128 + t holds dqt[nt][0..3] of thread t of warpgroup w (dq_from_sums reads it).
  __device__ void stage(int step, const float (&dqt)[4][4]) const {
    staged.wait_emptied(step);
    float4* dst = reinterpret_cast<float4*>(staged_tile(step)) +
                  threadIdx.x / wg::kWarpgroup * 512 + threadIdx.x % wg::kWarpgroup;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
      dst[nt * 128] = make_float4(dqt[nt][0], dqt[nt][1], dqt[nt][2], dqt[nt][3]);
    wg::fence_async_shared();
    staged.fill_by_warp(step);
  }
};

// dK, dV and dQ for one (KV tile of kWgmmaRows keys, KV head and share of its query heads,
// batch), with the head split of flash_attention_bf16.cu's dkdv_kernel. Per step (64 queries of
// one head; the share's heads in turn, each one's query tiles upwards):
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO,
// dK += dSᵀ·Q (times scale at the end), and the step's dQᵀ = Kᵀ·dS, warpgroup w taking queries
// 32w..32w+31. Step j issues K·Q_jᵀ and V·dO_jᵀ, then step j − 1's dV, dK and dQᵀ products, and
// computes Pᵀ_j and dSᵀ_j while those run. Warp-specialised: the producer warp loads the tiles
// and writes each step's lse and delta beside them; one more producer thread adds the staged
// dQᵀ to the sums. CTAs run KV tile fastest, from the last down, so that every CTA whose turn
// one waits for was launched before it, and a group's dQ sums stay in L2 while it runs.
// smem: K, V [rows][64]; dS [kDsBuffers][2][64][64]; staged dQᵀ [kStagingBuffers][64·64 f32];
// the Q/dO ring; the barriers of the ring, K/V, dS and the staging; lse and delta
// [kStages][64] each.
__global__ void __launch_bounds__(kSpecialisedThreads, 1)
    backward_kernel(Problem pb, const __grid_constant__ CUtensorMap q_map,
                    const __grid_constant__ CUtensorMap do_map,
                    const __grid_constant__ CUtensorMap k_map,
                    const __grid_constant__ CUtensorMap v_map, BackwardPointers ptr, DqSums dq) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* k_tile = aligned_tiles(smem_raw);
  bf16_t* v_tile = k_tile + kWgmmaRows * wg::kCols;
  bf16_t* ds_tiles = v_tile + kWgmmaRows * wg::kCols;
  float* staging = reinterpret_cast<float*>(ds_tiles + kDsBuffers * 2 * kTile);
  const TileRing ring =
      ring_at(reinterpret_cast<bf16_t*>(staging + kStagingBuffers * kDqTileFloats));
  const RowTiles rows{k_tile, v_tile, ring.slots.emptied + kStages};
  uint64_t* ds_barriers = rows.ready + 1;
  uint64_t* staging_barriers = ds_barriers + 2 * kDsBuffers;
  const DqShares shares{ds_tiles,
                        staging,
                        {ds_barriers, ds_barriers + kDsBuffers},
                        {staging_barriers, staging_barriers + kStagingBuffers}};
  float* lse_rows = reinterpret_cast<float*>(staging_barriers + 2 * kStagingBuffers);
  float* delta_rows = lse_rows + kStages * kStep;
  const int key_tiles = ceil_div(pb.k_len, kWgmmaRows);
  const int key_tile = key_tiles - 1 - static_cast<int>(blockIdx.x) % key_tiles;
  const int group = blockIdx.x / key_tiles;  // (b · kv_heads + kv) · head_splits + split
  const int split = group % ptr.head_splits, kv = group / ptr.head_splits % pb.kv_heads;
  const int b = group / ptr.head_splits / pb.kv_heads, n0 = key_tile * kWgmmaRows;
  const KeyTileSteps<kStep> queries(pb, ptr.head_splits, kv, split, n0);
  const int steps = queries.steps;

  auto load = [&] {
    if (steps <= 0) return;
    if (threadIdx.x % 32 == 0) rows.load(k_map, v_map, kv, n0, b);
    auto load_step = [&](int step) {
      ring.load(step, q_map, do_map, queries.head_of(step), queries.m0_of(step), b);
    };
    auto write_rows = [&](int step) {
      const int64_t stats = pb.row_stats(b, queries.head_of(step));
      const int stage = step % kStages;
      for (int i = threadIdx.x % 32; i < kStep; i += 32) {
        const int t = queries.m0_of(step) + i;
        const bool inside = t < pb.q_len;
        lse_rows[stage * kStep + i] = inside ? ptr.lse[stats + t] : 0.f;
        delta_rows[stage * kStep + i] = inside ? ptr.delta[stats + t] : 0.f;
      }
    };
    ring.produce(steps, load_step, write_rows);
  };

  auto turn_of = [&](int step) {
    return dq.turns + (int64_t{b} * pb.heads + queries.head_of(step)) * dq.query_tiles +
           queries.m0_of(step) / kStep;
  };
  // Once the step's bulk copy has landed: the next KV tile's turn, and the staging is free.
  auto landed = [&](int step) {
    wg::fence_async_global();
    wg::pass_turn(turn_of(step));
    shares.staged.empty(step);
  };
  auto write = [&] {
    for (int step = 0; step < steps; ++step) {
      shares.staged.wait_filled(step);
      int* turn = turn_of(step);
      const int mine = last_key_tile(pb, queries.m0_of(step)) - key_tile;
      wg::wait_turn(turn, mine);
      wg::fence_async_global();
      float* sum = dq.sums + (turn - dq.turns) * int64_t{kDqTileFloats};
      if (mine == 0)
        wg::bulk_store(sum, shares.staged_tile(step), kDqTileBytes);
      else
        wg::bulk_add(sum, shares.staged_tile(step), kDqTileBytes);
      wg::bulk_commit();
      if (step > 0) {
        wg::bulk_wait<1>();
        landed(step - 1);
      }
    }
    if (steps > 0) {
      wg::bulk_wait<0>();
      landed(steps - 1);
    }
  };

  auto consume = [&] {
    const int key0 = n0 + warp_row0(), queries0 = threadIdx.x / wg::kWarpgroup * 32;
    float dk[8][4] = {}, dv[8][4] = {}, dqt[4][4];
    uint32_t k_frag[4][4], v_frag[4][4], p_frag[4][4], ds_frag[4][4];
    if (steps > 0) {  // with no queries (Tq = 0) dK and dV are zero
      rows.wait();
      wg::load_a(k_frag, k_tile, warp_row0());
      wg::load_a(v_frag, v_tile, warp_row0());
    }
    // The step's second products; both warpgroups have stored its dS.
    auto issue_dv_dk_dq = [&](int step) {
      wg::issue_a_b(dv, p_frag, ring.second(step));
      wg::issue_a_b(dk, ds_frag, ring.first(step));
      wg::issue_at_bt_n32(dqt, k_tile, shares.ds_tiles(step), queries0);
    };
    pipelined_steps(steps, [&](int step, auto first) {
      ring.wait(step);
      if constexpr (!kFirst<decltype(first)>) shares.ds_slots.wait_filled(step - 1);
      const int m0 = queries.m0_of(step);
      float pt[8][4], dst[8][4];
      fence_all(pt, dst, dk, dv, dqt);
      issue_products(
          first,
          [&] {
            wg::issue_a_bt(pt, k_frag, ring.first(step), false);
            wg::issue_a_bt(dst, v_frag, ring.second(step), false);
          },
          [&] { issue_dv_dk_dq(step - 1); });
      fence_all(pt, dst);
      if (!pb.tile_unmasked(m0, kStep, key0, 16))
        mask_scores(pt, [&](int r, int c) { return !pb.visible(m0 + c, key0 + r); });
      const float* lse_tile = lse_rows + step % kStages * kStep;
      const float* delta_tile = delta_rows + step % kStages * kStep;
      backward_probabilities(pt, dst, lse_tile, delta_tile, pb.scale_log2, AllSeen{});
      if constexpr (!kFirst<decltype(first)>) {
        fence_all(pt, dst);
        wg::wait<0>();
        fence_all(dk, dv, dqt);
        ring.release(step - 1);
        shares.release_ds(step - 1);
        shares.stage(step - 1, dqt);
      }
      wg::to_a(p_frag, pt);
      wg::to_a(ds_frag, dst);
      shares.store_ds(step, ds_frag);
    });
    if (steps > 0) shares.ds_slots.wait_filled(steps - 1);
    last_products(
        steps, [&] { issue_dv_dk_dq(steps - 1); }, dk, dv, dqt);
    if (steps > 0) shares.stage(steps - 1, dqt);
    store_dk_dv<64>(pb, ptr, b, kv, split, key0, dk, dv);
  };
  specialised(
      [&] {
        ring.init(32);  // the producer warp's lanes
        rows.init();
        shares.init();
      },
      load, write, consume);
}

// dQ = sum · scale as bf16 for one (64-query tile, head, batch), zero where the tile sees no
// key: the staged layout of DqShares::stage is turned into rows through shared memory, so each
// thread writes 16 consecutive columns.
__global__ void __launch_bounds__(kThreads)
    dq_from_sums(Problem pb, const float* sums, bf16_t* dq) {
  __shared__ float rows[kStep][wg::kCols + 1];
  const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const bool seen = last_key_tile(pb, tile * kStep) >= 0;
  const float4* src = reinterpret_cast<const float4*>(
      sums + ((int64_t{b} * pb.heads + h) * gridDim.x + tile) * kDqTileFloats);
  const int half = threadIdx.x / wg::kWarpgroup, column0 = threadIdx.x % wg::kWarpgroup / 32 * 16;
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) {
    const float4 v = seen ? src[half * 512 + nt * 128 + threadIdx.x % wg::kWarpgroup] : float4{};
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

constexpr size_t kBackwardSmem = kSmemSlack + 2 * kRowsBytes +
                                 sizeof(bf16_t) * kDsBuffers * 2 * kTile +
                                 kStagingBuffers * kDqTileBytes + kRingBytes +
                                 sizeof(uint64_t) * (1 + 2 * kDsBuffers + 2 * kStagingBuffers) +
                                 sizeof(float) * 2 * kStages * kStep;

}  // namespace

void backward_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  const int query_tiles = ceil_div(pb.q_len, kStep);
  const int64_t tiles = int64_t{pb.batch} * pb.heads * query_tiles;
  // Freed on return, the kernels using them already queued.
  DeviceScratch sums(sizeof(float) * tiles * kDqTileFloats), turns(sizeof(int) * tiles);
  CUDA_CHECK(cudaMemsetAsync(turns.as<int>(), 0, sizeof(int) * tiles, compute_stream()));
  const int64_t ctas =
      int64_t{ceil_div(pb.k_len, kWgmmaRows)} * pb.kv_heads * ptr.head_splits * pb.batch;
  launch(backward_kernel, dim3(static_cast<unsigned>(ctas)), kSpecialisedThreads, kBackwardSmem, pb,
         rows_map(ptr.q, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.d_out, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.k, pb.batch, pb.k_len, pb.kv_heads),
         rows_map(ptr.v, pb.batch, pb.k_len, pb.kv_heads), ptr,
         DqSums{sums.as<float>(), turns.as<int>(), query_tiles});
  launch(dq_from_sums, dim3(query_tiles, pb.heads, pb.batch), kThreads, 0, pb,
         static_cast<const float*>(sums.as<float>()), ptr.dq);
}

}  // namespace ssa::cuda::flash
