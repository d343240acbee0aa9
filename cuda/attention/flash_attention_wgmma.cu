// Flash attention, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma, sm_90a).
// Each CTA is kWarpgroups warpgroups; each warpgroup owns 64 rows of the CTA's tile (queries in
// the forward and dQ kernels, keys in dK/dV) and keeps the operand it multiplies on every step
// (Q, dO; or K, V) in registers as A fragments, so only the streamed tiles are read from shared
// memory. Streamed tiles are loaded by TMA into a ring of three stages, in wgmma's swizzled
// layout, and each step's second products run while the next step's exponentials are computed.
// The backward kernels are warp-specialised: one more warpgroup, with few registers, issues
// every load, and the computing warpgroups never wait for each other, only for their tiles.
// The same steps and sums as flash_attention_bf16.cu, so results are deterministic too.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/flash_attention_wgmma.h"
#include "cuda/attention/wgmma.cuh"

namespace ssa::cuda::flash {
namespace {

constexpr int kWarpgroups = 2;
constexpr int kThreads = kWarpgroups * wg::kWarpgroup;
constexpr int kStep = 64;                 // keys per step (forward, dQ) or queries per step (dK/dV)
constexpr int kTile = kStep * wg::kCols;  // elements of one 64-row tile
constexpr int kStages = 3;
static_assert(kWgmmaRows == 64 * kWarpgroups, "a warpgroup owns 64 rows");

// The warp-specialised kernels add a producer warpgroup after the computing ones; it keeps
// kProducerRegisters per thread and gives the rest to them (65536 per SM, one CTA).
constexpr int kSpecialisedThreads = kThreads + wg::kWarpgroup;
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;
static_assert(wg::kWarpgroup * kProducerRegisters + kThreads * kConsumerRegisters <= 65536);
__device__ bool producer_thread() { return threadIdx.x >= kThreads; }

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
// A stage is refilled once released: each computing warp arrives on the stage's `empty` barrier
// when its products reading the stage have completed.
struct TileRing {
  bf16_t* tiles;    // [kStages][2][64][64]
  uint64_t* full;   // [kStages]
  uint64_t* empty;  // [kStages]

  // Thread 0, once, then wg::barrier_init_fence and a CTA barrier before the first load;
  // `load_arrivals` threads arrive on `full` per step.
  __device__ void init(int load_arrivals) const {
    for (int stage = 0; stage < kStages; ++stage) {
      wg::barrier_init(full + stage, load_arrivals);
      wg::barrier_init(empty + stage, kThreads / 32);
    }
  }
  __device__ const bf16_t* first(int step) const { return tiles + 2 * (step % kStages) * kTile; }
  __device__ const bf16_t* second(int step) const { return first(step) + kTile; }
  // Starts the step's tiles, rows [row0, row0 + 64) of `head` in both tensors, on `full`.
  __device__ void load(int step, const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                       int batch) const {
    uint64_t* bar = full + step % kStages;
    wg::load_box(tiles + 2 * (step % kStages) * kTile, a, head, row0, batch, bar);
    wg::load_box(tiles + (2 * (step % kStages) + 1) * kTile, b, head, row0, batch, bar);
  }
  // Thread 0: the stage's one arrival, expecting the step's tiles, and their loads.
  __device__ void issue(int step, const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                        int batch) const {
    wg::barrier_expect(full + step % kStages, 2 * wg::kBoxBytes);
    load(step, a, b, head, row0, batch);
  }
  // The producer warp: fills the stages in turn, each once every computing warp has released
  // it. Lane 0 expects the step's bytes and starts `load(step)`; then every lane runs
  // `rows(step)` (shared stores of the step's per-row values, or nothing) and arrives.
  template <typename Load, typename Rows>
  __device__ void produce(int steps, Load load, Rows rows) const {
    for (int step = 0; step < steps; ++step) {
      uint64_t* bar = full + step % kStages;
      if (step >= kStages) wait_released(step);
      if (threadIdx.x % 32 == 0) {
        wg::barrier_expect_bytes(bar, 2 * wg::kBoxBytes);
        load(step);
      }
      rows(step);
      wg::barrier_arrive(bar);
    }
  }
  // The step's tiles have landed (the stage's (step / kStages)-th phase).
  __device__ void wait(int step) const {
    wg::barrier_wait(full + step % kStages, step / kStages & 1);
  }
  // A computing warp is done with the step's stage: its products reading it have completed.
  __device__ void release(int step) const {
    if (threadIdx.x % 32 == 0) wg::barrier_arrive(empty + step % kStages);
  }
  // Every computing warp has released the stage of step − kStages, which step fills next.
  __device__ void wait_released(int step) const {
    wg::barrier_wait(empty + step % kStages, (step / kStages - 1) & 1);
  }
};
constexpr size_t kRingBytes = sizeof(bf16_t) * 2 * kStages * kTile + sizeof(uint64_t) * 2 * kStages;
// The ring whose tiles start at `tiles`, its barriers after them.
__device__ TileRing ring_at(bf16_t* tiles) {
  uint64_t* full = reinterpret_cast<uint64_t*>(tiles + 2 * kStages * kTile);
  return {tiles, full, full + kStages};
}

// A warp-specialised CTA's own operand rows: kWgmmaRows rows of two tensors (Q and dO, or K and
// V), loaded once by TMA on `ready`.
struct RowTiles {
  bf16_t *first, *second;
  uint64_t* ready;

  __device__ void init() const { wg::barrier_init(ready); }
  // One thread of the producer warp.
  __device__ void load(const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                       int batch) const {
    wg::barrier_expect(ready, 2 * kWarpgroups * wg::kBoxBytes);
    for (int box = 0; box < kWarpgroups; ++box) {
      wg::load_box(first + box * kTile, a, head, row0 + box * kStep, batch, ready);
      wg::load_box(second + box * kTile, b, head, row0 + box * kStep, batch, ready);
    }
  }
  __device__ void wait() const { wg::barrier_wait(ready, 0); }
};
// The barriers of a warp-specialised CTA, initialised before the CTA barrier that precedes the
// split into roles; then `produce` runs on the producer warpgroup's first warp and `consume` on
// the computing warpgroups, once the registers have changed hands.
template <typename Produce, typename Consume>
__device__ void specialised(const TileRing& ring, const RowTiles& rows, Produce produce,
                            Consume consume) {
  if (threadIdx.x == 0) {
    ring.init(32);  // the producer warp's lanes
    rows.init();
    wg::barrier_init_fence();
  }
  __syncthreads();
  if (producer_thread()) {
    wg::release_registers<kProducerRegisters>();
    if (threadIdx.x < kThreads + 32) produce();
  } else {
    wg::claim_registers<kConsumerRegisters>();
    consume();
  }
}

// The forward kernel's step j: thread 0 refills the stage of step j + 1 − kStages with step
// j + 1's tiles once every warp has released it; then every thread waits for step j's.
template <typename Issue>
__device__ void start_step(const TileRing& ring, int step, int steps, Issue issue) {
  const int next = step + 1;
  if (threadIdx.x == 0 && next < steps) {
    if (next >= kStages) ring.wait_released(next);
    issue(next);
  }
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

// Issues the step's first products (one group) and, past step 0, the previous step's second
// products (a second group), then waits for the first group.
template <typename First, typename FirstProducts, typename SecondProducts>
__device__ void issue_products(First, FirstProducts first_products,
                               SecondProducts second_products) {
  wg::fence();
  first_products();
  wg::commit();
  if constexpr (!kFirst<First>) {
    second_products();
    wg::commit();
    wg::wait<1>();
  } else {
    wg::wait<0>();
  }
}
// After the steps: the last step's second products into `accumulators`.
template <typename SecondProducts, typename... Accumulators>
__device__ void last_products(int steps, SecondProducts second_products,
                              Accumulators&... accumulators) {
  if (steps == 0) return;
  fence_all(accumulators...);
  wg::fence();
  second_products();
  wg::commit();
  wg::wait<0>();
  fence_all(accumulators...);
}

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
  const TileRing ring = ring_at(q_tile + kWgmmaRows * wg::kCols);
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgmmaRows, h = blockIdx.y, b = blockIdx.z;
  const int row0 = m0 + warp_row0();
  const int kv = h / pb.group();
  const int steps = ceil_div(pb.key_end(m0, kWgmmaRows), kStep);
  auto issue = [&](int step) { ring.issue(step, k_map, v_map, kv, step * kStep, b); };

  wg::load_tile<kWgmmaRows, kThreads>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len);
  cp_async_commit();
  if (threadIdx.x == 0) {
    ring.init(1);
    wg::barrier_init_fence();
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
    issue_products(
        first, [&] { wg::issue_a_bt(s, q_frag, ring.first(step), false); },
        [&] { wg::issue_a_b(o, p, ring.second(step - 1)); });
    fence_all(s);
    if (!pb.tile_unmasked(row0, 16, n0, kStep))
      mask_scores(s, [&](int r, int c) { return !pb.visible(row0 + r, n0 + c); });
    float correction[2];
    softmax.exponentiate(s, pb.scale_log2, correction);
    if constexpr (!kFirst<decltype(first)>) {  // step 0: O is still zero
      fence_all(s);
      wg::wait<0>();
      fence_all(o);
      ring.release(step - 1);
      OnlineSoftmax::rescale(o, correction);
    }
    wg::to_a(p, s);
  });
  last_products(
      steps, [&] { wg::issue_a_b(o, p, ring.second(steps - 1)); }, o);

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

// dQ for one (query tile of kWgmmaRows, head, batch) over the KV tiles it sees:
// dS = P ∘ (dO·Vᵀ − delta), dQ += dS·K (times scale at the end). Step j: S_j and dO·V_jᵀ,
// then dQ += dS_{j−1}·K_{j−1} while dS_j is computed. Warp-specialised.
// smem: Q [rows][64], dO [rows][64], then the K/V ring and the barriers.
__global__ void __launch_bounds__(kSpecialisedThreads, 1)
    dq_kernel(Problem pb, const __grid_constant__ CUtensorMap q_map,
              const __grid_constant__ CUtensorMap do_map, const __grid_constant__ CUtensorMap k_map,
              const __grid_constant__ CUtensorMap v_map, BackwardPointers ptr) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* q_tile = aligned_tiles(smem_raw);
  bf16_t* do_tile = q_tile + kWgmmaRows * wg::kCols;
  const TileRing ring = ring_at(do_tile + kWgmmaRows * wg::kCols);
  const RowTiles rows{q_tile, do_tile, ring.empty + kStages};
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgmmaRows, h = blockIdx.y, b = blockIdx.z;
  const int kv = h / pb.group();
  const int steps = ceil_div(pb.key_end(m0, kWgmmaRows), kStep);

  auto produce = [&] {
    if (threadIdx.x % 32 == 0) rows.load(q_map, do_map, h, m0, b);
    ring.produce(
        steps, [&](int step) { ring.load(step, k_map, v_map, kv, step * kStep, b); }, [](int) {});
  };
  auto consume = [&] {
    const int row0 = m0 + warp_row0();
    float row_lse_log2[2], row_delta[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int t = row0 + frag_row(2 * half);
      const bool inside = t < pb.q_len;
      row_lse_log2[half] = inside ? ptr.lse[pb.row_stats(b, h) + t] * kLog2e : 0.f;
      row_delta[half] = inside ? ptr.delta[pb.row_stats(b, h) + t] : 0.f;
    }
    rows.wait();
    uint32_t q_frag[4][4], do_frag[4][4], ds_frag[4][4];
    wg::load_a(q_frag, q_tile, warp_row0());
    wg::load_a(do_frag, do_tile, warp_row0());

    float dq[8][4] = {};
    pipelined_steps(steps, [&](int step, auto first) {
      ring.wait(step);
      const int n0 = step * kStep;
      float s[8][4], ds[8][4];
      fence_all(s, ds, dq);
      issue_products(
          first,
          [&] {
            wg::issue_a_bt(s, q_frag, ring.first(step), false);
            wg::issue_a_bt(ds, do_frag, ring.second(step), false);
          },
          [&] { wg::issue_a_b(dq, ds_frag, ring.first(step - 1)); });
      fence_all(s, ds);
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
      if constexpr (!kFirst<decltype(first)>) {
        fence_all(ds);
        wg::wait<0>();
        fence_all(dq);
        ring.release(step - 1);
      }
      wg::to_a(ds_frag, ds);
    });
    last_products(
        steps, [&] { wg::issue_a_b(dq, ds_frag, ring.first(steps - 1)); }, dq);
    store_rows<64>(ptr.dq + pb.q_head(b, h), pb.q_stride(), row0, pb.q_len, dq, pb.scale);
  };
  specialised(ring, rows, produce, consume);
}

// dK, dV for one (KV tile of kWgmmaRows keys, KV head and share of its query heads, batch),
// with the steps and the head split of flash_attention_bf16.cu's dkdv_kernel: per step (64
// queries of one head) Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta),
// dV += Pᵀ·dO, dK += dSᵀ·Q (times scale at the end). Step j: K·Q_jᵀ and V·dO_jᵀ, then step
// j − 1's dV and dK products while Pᵀ_j and dSᵀ_j are computed. Warp-specialised: the producer
// warp also writes each step's lse and delta beside its tiles.
// smem: K [rows][64], V [rows][64], the Q/dO ring and the barriers, lse and delta
// [kStages][64] each.
__global__ void __launch_bounds__(kSpecialisedThreads, 1)
    dkdv_kernel(Problem pb, const __grid_constant__ CUtensorMap q_map,
                const __grid_constant__ CUtensorMap do_map,
                const __grid_constant__ CUtensorMap k_map,
                const __grid_constant__ CUtensorMap v_map, BackwardPointers ptr) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* k_tile = aligned_tiles(smem_raw);
  bf16_t* v_tile = k_tile + kWgmmaRows * wg::kCols;
  const TileRing ring = ring_at(v_tile + kWgmmaRows * wg::kCols);
  const RowTiles rows{k_tile, v_tile, ring.empty + kStages};
  float* lse_rows = reinterpret_cast<float*>(rows.ready + 1);
  float* delta_rows = lse_rows + kStages * kStep;
  const int n0 = blockIdx.x * kWgmmaRows, b = blockIdx.z;
  const int kv = blockIdx.y / ptr.head_splits, split = blockIdx.y % ptr.head_splits;
  const int split_heads = pb.group() / ptr.head_splits;
  const int first_m0 = pb.first_query(n0) / kStep * kStep;
  const int tiles_per_head = ceil_div(pb.q_len - first_m0, kStep);
  const int steps = tiles_per_head * split_heads;
  auto head_of = [&](int step) {
    return kv * pb.group() + split * split_heads + step / tiles_per_head;
  };
  auto m0_of = [&](int step) { return first_m0 + step % tiles_per_head * kStep; };

  auto produce = [&] {
    if (steps == 0) return;
    if (threadIdx.x % 32 == 0) rows.load(k_map, v_map, kv, n0, b);
    auto load = [&](int step) { ring.load(step, q_map, do_map, head_of(step), m0_of(step), b); };
    auto write_rows = [&](int step) {
      const int64_t stats = pb.row_stats(b, head_of(step));
      const int stage = step % kStages;
      for (int i = threadIdx.x % 32; i < kStep; i += 32) {
        const int t = m0_of(step) + i;
        const bool inside = t < pb.q_len;
        lse_rows[stage * kStep + i] = inside ? ptr.lse[stats + t] : 0.f;
        delta_rows[stage * kStep + i] = inside ? ptr.delta[stats + t] : 0.f;
      }
    };
    ring.produce(steps, load, write_rows);
  };
  auto consume = [&] {
    const int key0 = n0 + warp_row0();
    float dk[8][4] = {}, dv[8][4] = {};
    uint32_t k_frag[4][4], v_frag[4][4], p_frag[4][4], ds_frag[4][4];
    if (steps > 0) {  // with no queries (Tq = 0) dK and dV are zero
      rows.wait();
      wg::load_a(k_frag, k_tile, warp_row0());
      wg::load_a(v_frag, v_tile, warp_row0());
    }
    auto issue_dv_dk = [&](int step) {
      wg::issue_a_b(dv, p_frag, ring.second(step));
      wg::issue_a_b(dk, ds_frag, ring.first(step));
    };
    pipelined_steps(steps, [&](int step, auto first) {
      ring.wait(step);
      const int m0 = m0_of(step);
      float pt[8][4], dst[8][4];
      fence_all(pt, dst, dk, dv);
      issue_products(
          first,
          [&] {
            wg::issue_a_bt(pt, k_frag, ring.first(step), false);
            wg::issue_a_bt(dst, v_frag, ring.second(step), false);
          },
          [&] { issue_dv_dk(step - 1); });
      fence_all(pt, dst);
      if (!pb.tile_unmasked(m0, kStep, key0, 16))
        mask_scores(pt, [&](int r, int c) { return !pb.visible(m0 + c, key0 + r); });
      const float* lse_tile = lse_rows + step % kStages * kStep;
      const float* delta_tile = delta_rows + step % kStages * kStep;
      backward_probabilities(pt, dst, lse_tile, delta_tile, pb.scale_log2, AllSeen{});
      if constexpr (!kFirst<decltype(first)>) {
        fence_all(pt, dst);
        wg::wait<0>();
        fence_all(dk, dv);
        ring.release(step - 1);
      }
      wg::to_a(p_frag, pt);
      wg::to_a(ds_frag, dst);
    });
    last_products(
        steps, [&] { issue_dv_dk(steps - 1); }, dk, dv);
    store_dk_dv<64>(pb, ptr, b, kv, split, key0, dk, dv);
  };
  specialised(ring, rows, produce, consume);
}

constexpr size_t kRowsBytes = sizeof(bf16_t) * kWgmmaRows * wg::kCols;
constexpr size_t kForwardSmem = kSmemSlack + kRowsBytes + kRingBytes;
constexpr size_t kDqSmem = kSmemSlack + 2 * kRowsBytes + kRingBytes + sizeof(uint64_t);
constexpr size_t kDkdvSmem = kDqSmem + sizeof(float) * 2 * kStages * kStep;

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

void dkdv_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  launch(dkdv_kernel, dim3(ceil_div(pb.k_len, kWgmmaRows), pb.kv_heads * ptr.head_splits, pb.batch),
         kSpecialisedThreads, kDkdvSmem, pb, rows_map(ptr.q, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.d_out, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.k, pb.batch, pb.k_len, pb.kv_heads),
         rows_map(ptr.v, pb.batch, pb.k_len, pb.kv_heads), ptr);
}

void dq_wgmma(const Problem& pb, const BackwardPointers& ptr) {
  launch(dq_kernel, dim3(ceil_div(pb.q_len, kWgmmaRows), pb.heads, pb.batch), kSpecialisedThreads,
         kDqSmem, pb, rows_map(ptr.q, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.d_out, pb.batch, pb.q_len, pb.heads),
         rows_map(ptr.k, pb.batch, pb.k_len, pb.kv_heads),
         rows_map(ptr.v, pb.batch, pb.k_len, pb.kv_heads), ptr);
}

}  // namespace ssa::cuda::flash
