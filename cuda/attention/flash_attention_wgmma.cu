// Flash attention, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma, sm_90a).
// Each CTA is kWarpgroups warpgroups; each warpgroup owns 64 rows of the CTA's tile (queries in
// the forward and dQ kernels, keys in dK/dV) and keeps the operand it multiplies on every step
// (Q, dO; or K, V) in registers as A fragments, so only the streamed tiles are read from shared
// memory. Streamed tiles are staged by cp.async, double-buffered, in wgmma's swizzled layout.
// The same steps and sums as flash_attention_bf16.cu, so results are deterministic too.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/flash_attention_wgmma.h"
#include "cuda/attention/wgmma.cuh"

namespace ssa::cuda::flash {
namespace {

constexpr int kWarpgroups = 2;
constexpr int kThreads = kWarpgroups * wg::kWarpgroup;
constexpr int kStep = 64;                 // keys per step (forward, dQ) or queries per step (dK/dV)
constexpr int kTile = kStep * wg::kCols;  // elements of one 64-row tile
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

// Waits for the tiles of this step (the next step's are still in flight when `more`) and makes
// them visible to every thread and to the tensor cores.
__device__ void await_stage(bool more) {
  if (more)
    cp_async_wait<1>();
  else
    cp_async_wait<0>();
  wg::fence_shared();
  __syncthreads();
}

// d = A·Bᵀ (and d2 = A2·B2ᵀ when given) over k = 64, waited for.
__device__ void product_bt(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16_t* b) {
  wg::fence_operands(d);
  wg::fence();
  wg::issue_a_bt(d, a, b, false);
  wg::commit();
  wg::wait<0>();
  wg::fence_operands(d);
}
__device__ void products_bt(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16_t* b,
                            float (&d2)[8][4], const uint32_t (&a2)[4][4], const bf16_t* b2) {
  wg::fence_operands(d);
  wg::fence_operands(d2);
  wg::fence();
  wg::issue_a_bt(d, a, b, false);
  wg::issue_a_bt(d2, a2, b2, false);
  wg::commit();
  wg::wait<0>();
  wg::fence_operands(d);
  wg::fence_operands(d2);
}
// d += A·B over k = 64 (and d2 += A2·B2 when given), waited for.
__device__ void product_b(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16_t* b) {
  wg::fence_operands(d);
  wg::fence();
  wg::issue_a_b(d, a, b);
  wg::commit();
  wg::wait<0>();
  wg::fence_operands(d);
}
__device__ void products_b(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16_t* b,
                           float (&d2)[8][4], const uint32_t (&a2)[4][4], const bf16_t* b2) {
  wg::fence_operands(d);
  wg::fence_operands(d2);
  wg::fence();
  wg::issue_a_b(d, a, b);
  wg::issue_a_b(d2, a2, b2);
  wg::commit();
  wg::wait<0>();
  wg::fence_operands(d);
  wg::fence_operands(d2);
}

// Streams the 64-row tiles of one or two matrices through two stages, a step at a time.
struct KeyValueStream {
  const bf16_t *k, *v;
  int64_t stride;
  int limit;
  bf16_t *k_tiles, *v_tiles;  // [2][64][64] each

  __device__ void issue(int step) const {
    const int stage = step & 1;
    wg::load_tile<kStep, kThreads>(k_tiles + stage * kTile, k, stride, step * kStep, limit);
    wg::load_tile<kStep, kThreads>(v_tiles + stage * kTile, v, stride, step * kStep, limit);
  }
  __device__ const bf16_t* k_tile(int step) const { return k_tiles + (step & 1) * kTile; }
  __device__ const bf16_t* v_tile(int step) const { return v_tiles + (step & 1) * kTile; }
};

// Starts step 0's tiles after whatever the caller issued; at each step, issues the next
// step's and waits for this one's.
__device__ void begin_stream(const KeyValueStream& s) {
  s.issue(0);
  cp_async_commit();
}
__device__ void advance_stream(const KeyValueStream& s, int step, int steps) {
  const bool more = step + 1 < steps;
  if (more) {
    s.issue(step + 1);
    cp_async_commit();
  }
  await_stage(more);
}

// One CTA per (query tile of kWgmmaRows, head, batch), heaviest (last) query tiles first.
// smem: Q [rows][64], K [2][64][64], V [2][64][64].
__global__ void __launch_bounds__(kThreads)
    forward_kernel(Problem pb, const bf16_t* q, const bf16_t* k, const bf16_t* v, bf16_t* out,
                   float* lse) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* q_tile = aligned_tiles(smem_raw);
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgmmaRows, h = blockIdx.y, b = blockIdx.z;
  const int row0 = m0 + warp_row0();
  const int kv = h / pb.group();
  const KeyValueStream stream{k + pb.kv_head(b, kv),
                              v + pb.kv_head(b, kv),
                              pb.kv_stride(),
                              pb.k_len,
                              q_tile + kWgmmaRows * wg::kCols,
                              q_tile + kWgmmaRows * wg::kCols + 2 * kTile};
  const int steps = ceil_div(pb.key_end(m0, kWgmmaRows), kStep);

  wg::load_tile<kWgmmaRows, kThreads>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  cp_async_commit();
  begin_stream(stream);
  cp_async_wait<1>();
  __syncthreads();
  uint32_t q_frag[4][4];
  wg::load_a(q_frag, q_tile, warp_row0());

  OnlineSoftmax softmax;
  float o[8][4] = {};
  for (int step = 0; step < steps; ++step) {
    advance_stream(stream, step, steps);
    const int n0 = step * kStep;
    float s[8][4];
    product_bt(s, q_frag, stream.k_tile(step));
    if (!pb.tile_unmasked(row0, 16, n0, kStep))
      mask_scores(s, [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
    softmax.update(s, o, pb.scale_log2);
    uint32_t p[4][4];
    wg::to_a(p, s);
    product_b(o, p, stream.v_tile(step));
    __syncthreads();  // the stage is refilled next step
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
#pragma unroll
  for (int dt = 0; dt < 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] *= inverse[e >> 1];
  store_rows<64>(out + pb.q_head(b, h), pb.q_stride(), row0, pb.q_len, o, 1.f);
}

// dQ for one (query tile of kWgmmaRows, head, batch) over the KV tiles it sees:
// dS = P ∘ (dO·Vᵀ − delta), dQ += dS·K (times scale at the end).
// smem: Q [rows][64], dO [rows][64], K [2][64][64], V [2][64][64].
__global__ void __launch_bounds__(kThreads) dq_kernel(Problem pb, BackwardPointers ptr) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* q_tile = aligned_tiles(smem_raw);
  bf16_t* do_tile = q_tile + kWgmmaRows * wg::kCols;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgmmaRows, h = blockIdx.y, b = blockIdx.z;
  const int row0 = m0 + warp_row0();
  const int kv = h / pb.group();
  const KeyValueStream stream{ptr.k + pb.kv_head(b, kv),
                              ptr.v + pb.kv_head(b, kv),
                              pb.kv_stride(),
                              pb.k_len,
                              do_tile + kWgmmaRows * wg::kCols,
                              do_tile + kWgmmaRows * wg::kCols + 2 * kTile};
  const int steps = ceil_div(pb.key_end(m0, kWgmmaRows), kStep);

  wg::load_tile<kWgmmaRows, kThreads>(q_tile, ptr.q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  wg::load_tile<kWgmmaRows, kThreads>(do_tile, ptr.d_out + pb.q_head(b, h), pb.q_stride(), m0,
                                      pb.q_len);
  cp_async_commit();
  begin_stream(stream);
  float row_lse_log2[2], row_delta[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int t = row0 + frag_row(2 * half);
    const bool inside = t < pb.q_len;
    row_lse_log2[half] = inside ? ptr.lse[pb.row_stats(b, h) + t] * kLog2e : 0.f;
    row_delta[half] = inside ? ptr.delta[pb.row_stats(b, h) + t] : 0.f;
  }
  cp_async_wait<1>();
  __syncthreads();
  uint32_t q_frag[4][4], do_frag[4][4];
  wg::load_a(q_frag, q_tile, warp_row0());
  wg::load_a(do_frag, do_tile, warp_row0());

  float dq[8][4] = {};
  for (int step = 0; step < steps; ++step) {
    advance_stream(stream, step, steps);
    const int n0 = step * kStep;
    float s[8][4], ds[8][4];
    products_bt(s, q_frag, stream.k_tile(step), ds, do_frag, stream.v_tile(step));
    if (!pb.tile_unmasked(row0, 16, n0, kStep))
      mask_scores(s, [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1;
        const float p = fast_exp2(fmaf(s[nt][e], pb.scale_log2, -row_lse_log2[half]));
        ds[nt][e] = p * (ds[nt][e] - row_delta[half]);
      }
    }
    uint32_t ds_frag[4][4];
    wg::to_a(ds_frag, ds);
    product_b(dq, ds_frag, stream.k_tile(step));
    __syncthreads();  // the stage is refilled next step
  }
  store_rows<64>(ptr.dq + pb.q_head(b, h), pb.q_stride(), row0, pb.q_len, dq, pb.scale);
}

// dK, dV for one (KV tile of kWgmmaRows keys, KV head and share of its query heads, batch),
// with the steps and the head split of flash_attention_bf16.cu's dkdv_kernel: per step (64
// queries of one head) Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta),
// dV += Pᵀ·dO, dK += dSᵀ·Q (times scale at the end). Q, dO, lse, delta double-buffered.
// smem: K [rows][64], V [rows][64], Q [2][64][64], dO [2][64][64], lse [2][64], delta [2][64].
__global__ void __launch_bounds__(kThreads) dkdv_kernel(Problem pb, BackwardPointers ptr) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* k_tile = aligned_tiles(smem_raw);
  bf16_t* v_tile = k_tile + kWgmmaRows * wg::kCols;
  bf16_t* q_tiles = v_tile + kWgmmaRows * wg::kCols;
  bf16_t* do_tiles = q_tiles + 2 * kTile;
  float* lse_rows = reinterpret_cast<float*>(do_tiles + 2 * kTile);
  float* delta_rows = lse_rows + 2 * kStep;
  const int n0 = blockIdx.x * kWgmmaRows, b = blockIdx.z;
  const int key0 = n0 + warp_row0();
  const int kv = blockIdx.y / ptr.head_splits, split = blockIdx.y % ptr.head_splits;
  const int split_heads = pb.group() / ptr.head_splits;
  const int first_m0 = pb.first_query(n0) / kStep * kStep;
  const int tiles_per_head = ceil_div(pb.q_len - first_m0, kStep);
  const int steps = tiles_per_head * split_heads;
  auto head_of = [&](int step) {
    return kv * pb.group() + split * split_heads + step / tiles_per_head;
  };
  auto m0_of = [&](int step) { return first_m0 + step % tiles_per_head * kStep; };
  auto issue = [&](int step) {
    const int h = head_of(step), m0 = m0_of(step), stage = step & 1;
    wg::load_tile<kStep, kThreads>(q_tiles + stage * kTile, ptr.q + pb.q_head(b, h), pb.q_stride(),
                                   m0, pb.q_len);
    wg::load_tile<kStep, kThreads>(do_tiles + stage * kTile, ptr.d_out + pb.q_head(b, h),
                                   pb.q_stride(), m0, pb.q_len);
    load_row_values(lse_rows + stage * kStep, ptr.lse + pb.row_stats(b, h), m0, kStep, pb.q_len);
    load_row_values(delta_rows + stage * kStep, ptr.delta + pb.row_stats(b, h), m0, kStep,
                    pb.q_len);
  };

  float dk[8][4] = {}, dv[8][4] = {};
  if (steps > 0) {  // with no queries (Tq = 0) dK and dV are zero
    wg::load_tile<kWgmmaRows, kThreads>(k_tile, ptr.k + pb.kv_head(b, kv), pb.kv_stride(), n0,
                                        pb.k_len);
    wg::load_tile<kWgmmaRows, kThreads>(v_tile, ptr.v + pb.kv_head(b, kv), pb.kv_stride(), n0,
                                        pb.k_len);
    cp_async_commit();
    issue(0);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
  }
  uint32_t k_frag[4][4], v_frag[4][4];
  if (steps > 0) {
    wg::load_a(k_frag, k_tile, warp_row0());
    wg::load_a(v_frag, v_tile, warp_row0());
  }
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1, m0 = m0_of(step);
    const bool more = step + 1 < steps;
    if (more) {
      issue(step + 1);
      cp_async_commit();
    }
    await_stage(more);
    const bf16_t* q_tile = q_tiles + stage * kTile;
    const bf16_t* do_tile = do_tiles + stage * kTile;
    const float* lse_tile = lse_rows + stage * kStep;
    const float* delta_tile = delta_rows + stage * kStep;
    float pt[8][4], dst[8][4];
    products_bt(pt, k_frag, q_tile, dst, v_frag, do_tile);
    if (!pb.tile_unmasked(m0, kStep, key0, 16))
      mask_scores(pt, [&](int r, int c) { return !pb.visible(m0 + c, key0 + r); });
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
    uint32_t p_frag[4][4], ds_frag[4][4];
    wg::to_a(p_frag, pt);
    wg::to_a(ds_frag, dst);
    products_b(dv, p_frag, do_tile, dk, ds_frag, q_tile);
    __syncthreads();  // the stage is refilled next step
  }
  if (ptr.head_splits == 1) {
    store_rows<64>(ptr.dk + pb.kv_head(b, kv), pb.kv_stride(), key0, pb.k_len, dk, pb.scale);
    store_rows<64>(ptr.dv + pb.kv_head(b, kv), pb.kv_stride(), key0, pb.k_len, dv, 1.f);
    return;
  }
  const int64_t part = int64_t{split} * pb.batch * pb.k_len * pb.kv_stride() + pb.kv_head(b, kv);
  store_rows_f32<64>(ptr.dk_parts + part, pb.kv_stride(), key0, pb.k_len, dk, pb.scale);
  store_rows_f32<64>(ptr.dv_parts + part, pb.kv_stride(), key0, pb.k_len, dv, 1.f);
}

constexpr size_t kTileBytes = sizeof(bf16_t) * kTile;
constexpr size_t kRowsBytes = sizeof(bf16_t) * kWgmmaRows * wg::kCols;
constexpr size_t kForwardSmem = kSmemSlack + kRowsBytes + 4 * kTileBytes;
constexpr size_t kDqSmem = kSmemSlack + 2 * kRowsBytes + 4 * kTileBytes;
constexpr size_t kDkdvSmem =
    kSmemSlack + 2 * kRowsBytes + 4 * kTileBytes + sizeof(float) * 4 * kStep;

}  // namespace

bool wgmma_path(const Problem& pb) {
#if defined(SSA_CUDA_SM90A)
  if (pb.head_dim != 64 || std::getenv("SSA_NO_WGMMA") != nullptr) return false;
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
         kForwardSmem, pb, static_cast<const bf16_t*>(args.q), static_cast<const bf16_t*>(args.k),
         static_cast<const bf16_t*>(args.v), static_cast<bf16_t*>(args.out), args.lse);
}

void dkdv_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  launch(dkdv_kernel, dim3(ceil_div(pb.k_len, kWgmmaRows), pb.kv_heads * ptr.head_splits, pb.batch),
         kThreads, kDkdvSmem, pb, ptr);
}

void dq_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  launch(dq_kernel, dim3(ceil_div(pb.q_len, kWgmmaRows), pb.heads, pb.batch), kThreads, kDqSmem, pb,
         ptr);
}

}  // namespace ssa::cuda::flash
