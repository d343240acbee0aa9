// Flash attention, bf16 path: tensor cores through mma.sync m16n8k16 (bf16 operands, fp32
// accumulation) fed by ldmatrix from shared memory, tiles staged by cp.async, double-buffered.
// Each warp owns whole 16-row blocks of the tile dimension it splits (queries in the forward
// and dQ kernels, keys in dK/dV); query/key tiles wholly above the causal diagonal are never
// visited.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/attention/flash_attention_bf16.h"
#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/flash_attention_wgmma.h"
#include "cuda/device.cuh"

namespace ssa::cuda::flash {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kKeyTile = 64;  // keys per step in the forward and dQ kernels, per CTA in dK/dV
// 16-row blocks of queries per warp in the forward and dQ kernels; the blocks of a warp share
// every K/V fragment load. Measured on an H100: two made the forward 11-48% faster; in dQ two
// were no faster at head_dim 64, and at 128 the accumulators would not fit in registers.
constexpr int kForwardBlocks = 2;
constexpr int kDqBlocks = 1;
// Query rows per step of the dK/dV kernel: 32 at head_dim 128 keeps its dK and dV
// accumulators (128 floats per thread) in registers.
template <int D>
constexpr int kQueryStep = D == 128 ? 32 : 64;

// Shared-memory tiles: rows of D bf16 padded by 8 (16 bytes), so the 8 rows one ldmatrix phase
// reads start 4 banks apart and never conflict.
template <int D>
constexpr int kPitch = D + 8;

// ------------------------------------------------------------------ tile loads

// Rows [row0, row0 + ROWS) of a [*, D] matrix whose rows lie `stride` elements apart; rows at
// or past `limit` read as zeros. Issues cp.async only (the caller commits and waits).
// Thread i copies 16-byte piece i % (D / 8) of rows i / (D / 8) + pass · kRowsPerPass.
template <int D, int ROWS>
__device__ void load_tile(bf16_t* tile, const bf16_t* src, int64_t stride, int row0, int limit) {
  constexpr int kChunks = D / 8, kRowsPerPass = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && ROWS % kRowsPerPass == 0, "whole rows per pass");
  const int r = threadIdx.x / kChunks, c = threadIdx.x % kChunks * 8;
  const bf16_t* from = src + (row0 + r) * stride + c;
  bf16_t* to = tile + r * kPitch<D> + c;
#pragma unroll
  for (int pass = 0; pass < ROWS / kRowsPerPass; ++pass) {
    const bool inside = row0 + r + pass * kRowsPerPass < limit;
    cp_async_16(to + pass * kRowsPerPass * kPitch<D>,
                inside ? from + pass * kRowsPerPass * stride : src, inside);
  }
}

// One CTA per (query tile of BM = 64·MB rows, head, batch), heaviest (last) query tiles first
// (TileOrder over heads and batch); warp w owns rows 16·MB·w .. 16·MB·(w + 1) − 1. K/V tiles
// double-buffered. smem: Q [BM][P], K [2][64][P], V [2][64][P].
template <int D>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(Problem pb, const bf16_t* q, const bf16_t* k, const bf16_t* v, bf16_t* out,
                   float* lse) {
  constexpr int P = kPitch<D>, MB = kForwardBlocks, BM = 16 * MB * kWarps, BN = kKeyTile;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* q_tile = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* k_tiles = q_tile + BM * P;
  bf16_t* v_tiles = k_tiles + 2 * BN * P;
  const TileOrder order(pb.heads * pb.batch);
  const int m0 = (ceil_div(pb.q_len, BM) - 1 - order.rank) * BM;
  const int h = order.unit % pb.heads, b = order.unit / pb.heads;
  const int warp_row0 = threadIdx.x / 32 * 16 * MB;  // within the tile
  const bf16_t* k_head = k + pb.kv_head(b, h / pb.group());
  const bf16_t* v_head = v + pb.kv_head(b, h / pb.group());
  const int tiles = ceil_div(pb.key_end(m0, BM), BN);

  load_tile<D, BM>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  load_tile<D, BN>(k_tiles, k_head, pb.kv_stride(), 0, pb.k_len);
  load_tile<D, BN>(v_tiles, v_head, pb.kv_stride(), 0, pb.k_len);
  cp_async_commit();

  OnlineSoftmax softmax[MB];
  float o[MB][D / 8][4] = {};
  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1, n0 = j * BN;
    if (j + 1 < tiles) {
      load_tile<D, BN>(k_tiles + (stage ^ 1) * BN * P, k_head, pb.kv_stride(), n0 + BN, pb.k_len);
      load_tile<D, BN>(v_tiles + (stage ^ 1) * BN * P, v_head, pb.kv_stride(), n0 + BN, pb.k_len);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float s[MB][BN / 8][4] = {};
    mma_a_bt<D / 16, BN / 8, P>(s, q_tile + warp_row0 * P, k_tiles + stage * BN * P);
    const bool partial = !pb.tile_unmasked(m0, BM, n0, BN);
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
      const int row0 = m0 + warp_row0 + 16 * mb;
      if (partial) mask_scores(s[mb], [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
      softmax[mb].update(s[mb], o[mb], pb.scale_log2);
    }
    mma_s_b<BN / 16, D / 8, P>(o, s, v_tiles + stage * BN * P);
    __syncthreads();  // the stage is refilled next step
  }

#pragma unroll
  for (int mb = 0; mb < MB; ++mb) {
    store_forward_rows<D>(pb, softmax[mb], o[mb], m0 + warp_row0 + 16 * mb, out + pb.q_head(b, h),
                          lse + pb.row_stats(b, h));
  }
}

// ------------------------------------------------------------------ backward

// dK, dV for one (KV tile of 64 keys, KV head and share of its query heads, batch): blockIdx.y
// = kv · head_splits + split, the split covering G / head_splits consecutive heads of the
// group. Steps run over those heads in order, and for each over its query tiles that see the
// KV tile, so the sum over the heads has a fixed order (and sum_head_splits adds the splits in
// order). Warps own 16 keys each; per step (BM queries):
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO,
// dK += dSᵀ·Q (times scale at the end). Q, dO, lse, delta double-buffered.
// smem: K [64][P], V [64][P], Q [2][BM][P], dO [2][BM][P], lse [2][BM], delta [2][BM].
template <int D>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(Problem pb, BackwardPointers ptr) {
  constexpr int P = kPitch<D>, BN = kKeyTile, BM = kQueryStep<D>;
  static_assert(BN == 16 * kWarps, "each warp owns 16 keys");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* k_tile = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* v_tile = k_tile + BN * P;
  bf16_t* q_tiles = v_tile + BN * P;
  bf16_t* do_tiles = q_tiles + 2 * BM * P;
  float* lse_rows = reinterpret_cast<float*>(do_tiles + 2 * BM * P);
  float* delta_rows = lse_rows + 2 * BM;
  const int warp = threadIdx.x / 32;
  const int n0 = blockIdx.x * BN, b = blockIdx.z;
  const int kv = blockIdx.y / ptr.head_splits, split = blockIdx.y % ptr.head_splits;
  const KeyTileSteps<BM> queries(pb, ptr.head_splits, kv, split, n0);
  const int steps = queries.steps;
  auto issue = [&](int step, int stage) {
    const int h = queries.head_of(step), m0 = queries.m0_of(step);
    load_tile<D, BM>(q_tiles + stage * BM * P, ptr.q + pb.q_head(b, h), pb.q_stride(), m0,
                     pb.q_len);
    load_tile<D, BM>(do_tiles + stage * BM * P, ptr.d_out + pb.q_head(b, h), pb.q_stride(), m0,
                     pb.q_len);
    load_row_values(lse_rows + stage * BM, ptr.lse + pb.row_stats(b, h), m0, BM, pb.q_len);
    load_row_values(delta_rows + stage * BM, ptr.delta + pb.row_stats(b, h), m0, BM, pb.q_len);
  };

  if (steps > 0) {  // with no queries (Tq = 0) dK and dV are zero
    load_tile<D, BN>(k_tile, ptr.k + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len);
    load_tile<D, BN>(v_tile, ptr.v + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len);
    issue(0, 0);
    cp_async_commit();
  }

  // One 16-row block per warp, in the [blocks][n-tiles][4] shape the tile products take.
  float dk[1][D / 8][4] = {}, dv[1][D / 8][4] = {};
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1, m0 = queries.m0_of(step);
    if (step + 1 < steps) {
      issue(step + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16_t* q_tile = q_tiles + stage * BM * P;
    const bf16_t* do_tile = do_tiles + stage * BM * P;
    const float* lse_tile = lse_rows + stage * BM;
    const float* delta_tile = delta_rows + stage * BM;
    float pt[1][BM / 8][4] = {}, dst[1][BM / 8][4] = {};
    mma_a_bt<D / 16, BM / 8, P>(pt, k_tile + warp * 16 * P, q_tile);
    mma_a_bt<D / 16, BM / 8, P>(dst, v_tile + warp * 16 * P, do_tile);
    if (!pb.tile_unmasked(m0, BM, n0, BN))
      mask_scores(pt[0], [&](int r, int c) { return !pb.visible(m0 + c, n0 + warp * 16 + r); });
    backward_probabilities(pt[0], dst[0], lse_tile, delta_tile, pb.scale_log2, AllSeen{});
    mma_s_b<BM / 16, D / 8, P>(dv, pt, do_tile);
    mma_s_b<BM / 16, D / 8, P>(dk, dst, q_tile);
    __syncthreads();  // the stage is refilled next step
  }
  store_dk_dv<D>(pb, ptr, b, kv, split, n0 + warp * 16, dk[0], dv[0]);
}

// out[i] = Σ over the splits s, in order, of parts[s · n + i], rounded to bf16.
__global__ void sum_head_splits(const float* parts, int splits, int64_t n, bf16_t* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float sum = 0.f;
    for (int s = 0; s < splits; ++s) sum += parts[s * n + i];
    out[i] = __float2bfloat16(sum);
  }
}

// dQ for one (query tile of BM = 64·MB rows, head, batch) over the KV tiles it sees, heaviest
// query tiles first (TileOrder over heads and batch): dS = P ∘ (dO·Vᵀ − delta), dQ += dS·K (times
// scale at the end); warp w owns rows 16·MB·w .. 16·MB·(w + 1) − 1. K/V double-buffered. smem: Q
// [BM][P], dO [BM][P], K [2][64][P], V [2][64][P].
template <int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(Problem pb, BackwardPointers ptr) {
  constexpr int P = kPitch<D>, MB = kDqBlocks, BM = 16 * MB * kWarps, BN = kKeyTile;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* q_tile = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* do_tile = q_tile + BM * P;
  bf16_t* k_tiles = do_tile + BM * P;
  bf16_t* v_tiles = k_tiles + 2 * BN * P;
  const TileOrder order(pb.heads * pb.batch);
  const int m0 = (ceil_div(pb.q_len, BM) - 1 - order.rank) * BM;
  const int h = order.unit % pb.heads, b = order.unit / pb.heads;
  const int warp_row0 = threadIdx.x / 32 * 16 * MB;  // within the tile
  const bf16_t* k_head = ptr.k + pb.kv_head(b, h / pb.group());
  const bf16_t* v_head = ptr.v + pb.kv_head(b, h / pb.group());
  const int tiles = ceil_div(pb.key_end(m0, BM), BN);

  load_tile<D, BM>(q_tile, ptr.q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  load_tile<D, BM>(do_tile, ptr.d_out + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  load_tile<D, BN>(k_tiles, k_head, pb.kv_stride(), 0, pb.k_len);
  load_tile<D, BN>(v_tiles, v_head, pb.kv_stride(), 0, pb.k_len);
  cp_async_commit();
  float row_lse_log2[MB][2], row_delta[MB][2];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int t = m0 + warp_row0 + 16 * mb + frag_row(2 * half);
      const bool inside = t < pb.q_len;
      row_lse_log2[mb][half] = inside ? ptr.lse[pb.row_stats(b, h) + t] * kLog2e : 0.f;
      row_delta[mb][half] = inside ? ptr.delta[pb.row_stats(b, h) + t] : 0.f;
    }
  }

  float dq[MB][D / 8][4] = {};
  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1, n0 = j * BN;
    if (j + 1 < tiles) {
      load_tile<D, BN>(k_tiles + (stage ^ 1) * BN * P, k_head, pb.kv_stride(), n0 + BN, pb.k_len);
      load_tile<D, BN>(v_tiles + (stage ^ 1) * BN * P, v_head, pb.kv_stride(), n0 + BN, pb.k_len);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16_t* k_tile = k_tiles + stage * BN * P;
    float s[MB][BN / 8][4] = {}, ds[MB][BN / 8][4] = {};
    mma_a_bt<D / 16, BN / 8, P>(s, q_tile + warp_row0 * P, k_tile);
    mma_a_bt<D / 16, BN / 8, P>(ds, do_tile + warp_row0 * P, v_tiles + stage * BN * P);
    const bool partial = !pb.tile_unmasked(m0, BM, n0, BN);
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
      const int row0 = m0 + warp_row0 + 16 * mb;
      if (partial) mask_scores(s[mb], [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int half = e >> 1;
          const float p = fast_exp2(fmaf(s[mb][nt][e], pb.scale_log2, -row_lse_log2[mb][half]));
          ds[mb][nt][e] = p * (ds[mb][nt][e] - row_delta[mb][half]);
        }
      }
    }
    mma_s_b<BN / 16, D / 8, P>(dq, ds, k_tile);
    __syncthreads();  // the stage is refilled next step
  }
#pragma unroll
  for (int mb = 0; mb < MB; ++mb)
    store_rows<D>(ptr.dq + pb.q_head(b, h), pb.q_stride(), m0 + warp_row0 + 16 * mb, pb.q_len,
                  dq[mb], pb.scale, ptr.add_dq);
}

// ------------------------------------------------------------------ launchers

// Query rows per CTA of the forward and dQ kernels.
constexpr int kForwardRows = 16 * kWarps * kForwardBlocks;
constexpr int kDqRows = 16 * kWarps * kDqBlocks;

template <int D>
constexpr size_t kForwardSmem = sizeof(bf16_t) * (kForwardRows + 4 * kKeyTile) * kPitch<D>;
template <int D>
constexpr size_t kDkdvSmem = sizeof(bf16_t) * (2 * kKeyTile + 4 * kQueryStep<D>)*kPitch<D> +
                             sizeof(float) * 4 * kQueryStep<D>;
template <int D>
constexpr size_t kDqSmem = sizeof(bf16_t) * (2 * kDqRows + 4 * kKeyTile) * kPitch<D>;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int D>
void forward_for(const Problem& pb, const FlashForward& args) {
  launch(forward_kernel<D>,
         tile_order_grid(ceil_div(pb.q_len, kForwardRows), int64_t{pb.heads} * pb.batch, "forward"),
         kThreads, kForwardSmem<D>, pb, static_cast<const bf16_t*>(args.q),
         static_cast<const bf16_t*>(args.k), static_cast<const bf16_t*>(args.v),
         static_cast<bf16_t*>(args.out), args.lse);
}

// CTAs of the dK/dV kernel the launch aims for (a few waves of 132 SMs at 3 CTAs each): the
// GQA group is split over the fewest CTAs per KV tile that reach it, so short sequences and one
// KV head still fill the GPU. Past that, the group is split further while the heaviest CTA (KV
// tile 0, which every query row of its heads reaches) would take more than kMaxCtaQueryRows
// query rows: the grid ends on such a CTA (a group's KV tiles run lightest first, for the dQ
// sums' order), and halving it saved more than the larger partial sums cost (T 16k, batch 2 on
// an H100: backward 6.0 -> 5.7 ms; docs/PERF.md).
constexpr int64_t kDkdvTargetCtas = 2048;
constexpr int64_t kMaxCtaQueryRows = 16384;

int head_splits_for(const Problem& pb, int key_tile) {
  const int64_t tile_ctas = int64_t{ceil_div(pb.k_len, key_tile)} * pb.kv_heads * pb.batch;
  auto wanted = [&](int splits) {
    return tile_ctas * splits < kDkdvTargetCtas ||
           int64_t{pb.q_len} * (pb.group() / splits) > kMaxCtaQueryRows;
  };
  int splits = 1;
  while (splits < pb.group() && wanted(splits)) {
    int next = splits + 1;
    while (pb.group() % next != 0) ++next;
    splits = next;
  }
  return splits;
}

// dK/dV (with dQ on the wgmma kernels, where they apply), the sum of their head splits, then
// dQ on the mma.sync kernels.
template <int D>
void backward_for(const Problem& pb, BackwardPointers ptr) {
  const bool wgmma = wgmma_path(pb);
  ptr.head_splits = head_splits_for(pb, wgmma ? kWgmmaRows : kKeyTile);
  const int64_t n = int64_t{pb.batch} * pb.k_len * pb.kv_stride();
  // Partial sums for head_splits > 1: freed on return, the kernels using them already queued.
  const size_t part_bytes = ptr.head_splits > 1 ? sizeof(float) * ptr.head_splits * n : 0;
  DeviceScratch dk_parts(part_bytes), dv_parts(part_bytes);
  ptr.dk_parts = dk_parts.as<float>();
  ptr.dv_parts = dv_parts.as<float>();
  if (wgmma)
    backward_wgmma(pb, ptr);
  else
    launch(dkdv_kernel<D>,
           dim3(ceil_div(pb.k_len, kKeyTile), pb.kv_heads * ptr.head_splits, pb.batch), kThreads,
           kDkdvSmem<D>, pb, ptr);
  if (ptr.head_splits > 1) {
    const int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 4096));
    launch(sum_head_splits, dim3(blocks), 256, 0, ptr.dk_parts, ptr.head_splits, n, ptr.dk);
    launch(sum_head_splits, dim3(blocks), 256, 0, ptr.dv_parts, ptr.head_splits, n, ptr.dv);
  }
  if (!wgmma)
    launch(dq_kernel<D>,
           tile_order_grid(ceil_div(pb.q_len, kDqRows), int64_t{pb.heads} * pb.batch, "dQ"),
           kThreads, kDqSmem<D>, pb, ptr);
}

}  // namespace

void forward_bf16(const Problem& pb, const FlashForward& args) {
  SSA_CHECK(aligned16(args.q) && aligned16(args.k) && aligned16(args.v),
            "attention: bf16 q, k, v must start on 16-byte boundaries");
  if (wgmma_path(pb))
    forward_wgmma(pb, args);
  else if (pb.head_dim == 64)
    forward_for<64>(pb, args);
  else
    forward_for<128>(pb, args);
}

void backward_bf16(const Problem& pb, const FlashBackward& args) {
  SSA_CHECK(aligned16(args.q) && aligned16(args.k) && aligned16(args.v) && aligned16(args.d_out),
            "attention: bf16 q, k, v and the output gradient must start on 16-byte boundaries");
  const BackwardPointers ptr{static_cast<const bf16_t*>(args.q),
                             static_cast<const bf16_t*>(args.k),
                             static_cast<const bf16_t*>(args.v),
                             static_cast<const bf16_t*>(args.d_out),
                             args.lse,
                             args.delta,
                             static_cast<bf16_t*>(args.dq),
                             static_cast<bf16_t*>(args.dk),
                             static_cast<bf16_t*>(args.dv),
                             nullptr,
                             nullptr,
                             1,
                             args.add_dq};
  if (pb.head_dim == 64)
    backward_for<64>(pb, ptr);
  else
    backward_for<128>(pb, ptr);
}

}  // namespace ssa::cuda::flash
