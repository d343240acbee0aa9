#pragma once
// The CTA of the head_dim-64 attention kernels on Hopper (flash_attention_wgmma.cu, the forward;
// flash_attention_wgmma_backward.cu, the backward): computing warpgroups, each owning 64 rows of
// the CTA's tile (queries in the forward, three warpgroups; keys in the backward, kWarpgroups),
// and a producer warpgroup; the streamed tiles loaded by TMA into a ring of stages, in wgmma's
// swizzled layout; buffers used in turn with the mbarriers that say when they are filled and
// emptied; the split into warp roles; and the forward's software pipeline, each step's second
// product running while the next step's exponentials are computed (included by those .cu files
// only).
#include <cuda.h>

#include <cstdint>
#include <type_traits>

#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/flash_attention_wgmma.h"
#include "cuda/attention/wgmma.cuh"

namespace ssa::cuda::flash {

constexpr int kWarpgroups = 2;
constexpr int kThreads = kWarpgroups * wg::kWarpgroup;
constexpr int kTile = wg::kBoxRows * wg::kCols;  // elements of one 64-row tile (a TMA box)
static_assert(kWgmmaRows == 64 * kWarpgroups, "a warpgroup owns 64 rows");

// The warp-specialised kernels add a producer warpgroup after the computing ones; it keeps few
// registers per thread and gives the rest to them (65536 per SM, one CTA). The backward's CTA:
// kThreads computing threads, kProducerRegisters and kConsumerRegisters.
constexpr int kSpecialisedThreads = kThreads + wg::kWarpgroup;
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;

// The first 1024-byte boundary of dynamic shared memory (kSmemSlack bytes are reserved for it).
constexpr size_t kSmemSlack = wg::kTileAlign;
__device__ inline bf16_t* aligned_tiles(unsigned char* smem_raw) {
  const uint32_t address = smem_address(smem_raw);
  const uint32_t pad = (wg::kTileAlign - address % wg::kTileAlign) % wg::kTileAlign;
  return reinterpret_cast<bf16_t*>(smem_raw + pad);
}

// The warp's first row within the CTA's tile: warpgroup · 64 + warp-in-group · 16.
__device__ inline int warp_row0() {
  return threadIdx.x / wg::kWarpgroup * 64 + threadIdx.x / 32 % 4 * 16;
}

template <typename... Blocks>
__device__ inline void fence_all(Blocks&... blocks) {
  (wg::fence_operands(blocks), ...);
}

// N buffers used in turn, step s in buffer s % N, each with a barrier that completes when the
// step's contents are in (`filled`) and one that completes when the step is done with them
// (`emptied`), after which step s + N may fill the buffer.
template <int N>
struct Slots {
  uint64_t* filled;   // [N]
  uint64_t* emptied;  // [N]

  __device__ void init(int fill_arrivals, int empty_arrivals) const {
    for (int i = 0; i < N; ++i) {
      wg::barrier_init(filled + i, fill_arrivals);
      wg::barrier_init(emptied + i, empty_arrivals);
    }
  }
  __device__ uint64_t* filled_barrier(int step) const { return filled + step % N; }
  __device__ void fill(int step) const { wg::barrier_arrive(filled + step % N); }
  // The warp's arrival, once each lane's part is in.
  __device__ void fill_by_warp(int step) const {
    __syncwarp();
    if (threadIdx.x % 32 == 0) fill(step);
  }
  __device__ void empty(int step) const { wg::barrier_arrive(emptied + step % N); }
  // The step's contents are in (the buffer's (step / N)-th phase).
  __device__ void wait_filled(int step) const { wg::barrier_wait(filled + step % N, step / N & 1); }
  // The step may fill its buffer: step − N has emptied it.
  __device__ void wait_emptied(int step) const {
    if (step >= N) wg::barrier_wait(emptied + step % N, (step / N - 1) & 1);
  }
};

// Rows [row0, row0 + BOXES · 64) of `head` in two tensors into `first` and `second`, a TMA box
// of 64 rows at a time, completing on `bar` (which expects 2 · BOXES · wg::kBoxBytes).
template <int BOXES>
__device__ inline void load_rows_pair(bf16_t* first, bf16_t* second, const CUtensorMap& a,
                                      const CUtensorMap& b, int head, int row0, int batch,
                                      uint64_t* bar) {
  for (int box = 0; box < BOXES; ++box) {
    const int row = row0 + box * wg::kBoxRows;
    wg::load_box(first + box * kTile, a, head, row, batch, bar);
    wg::load_box(second + box * kTile, b, head, row, batch, bar);
  }
}

// The streamed tiles: per step two tiles of ROWS rows (K and V, or Q and dO), each loaded by
// TMA in boxes of 64 rows, into a ring of STAGES stages. A stage is refilled once emptied: each
// computing warp arrives when its products reading the stage have completed.
template <int STAGES, int ROWS>
struct StreamRing {
  static constexpr int kTileElements = ROWS * wg::kCols, kBoxes = ROWS / wg::kBoxRows;
  static constexpr int kStepBytes = 2 * kBoxes * wg::kBoxBytes;
  static constexpr size_t kBytes =
      sizeof(bf16_t) * 2 * STAGES * kTileElements + sizeof(uint64_t) * 2 * STAGES;
  bf16_t* tiles;  // [STAGES][2][ROWS][64]
  Slots<STAGES> slots;

  // Thread 0, once, then wg::barrier_init_fence and a CTA barrier before the first load;
  // `load_arrivals` threads arrive per step when its loads are issued, and each of
  // `computing_threads` / 32 warps when it releases the step.
  __device__ void init(int load_arrivals, int computing_threads = kThreads) const {
    slots.init(load_arrivals, computing_threads / 32);
  }
  __device__ const bf16_t* first(int step) const {
    return tiles + 2 * (step % STAGES) * kTileElements;
  }
  __device__ const bf16_t* second(int step) const { return first(step) + kTileElements; }
  // Starts the step's tiles, rows [row0, row0 + ROWS) of `head` in both tensors.
  __device__ void load(int step, const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                       int batch) const {
    bf16_t* stage = tiles + 2 * (step % STAGES) * kTileElements;
    load_rows_pair<kBoxes>(stage, stage + kTileElements, a, b, head, row0, batch,
                           slots.filled_barrier(step));
  }
  // The producer warp: fills the stages in turn, each once emptied. Lane 0 expects the step's
  // bytes and starts `load(step)`; then every lane runs `rows(step)` (shared stores of the
  // step's per-row values) and arrives.
  template <typename Load, typename Rows>
  __device__ void produce(int steps, Load load, Rows rows) const {
    for (int step = 0; step < steps; ++step) {
      slots.wait_emptied(step);
      if (threadIdx.x % 32 == 0) {
        wg::barrier_expect_bytes(slots.filled_barrier(step), kStepBytes);
        load(step);
      }
      rows(step);
      slots.fill(step);
    }
  }
  __device__ void wait(int step) const { slots.wait_filled(step); }
  // A computing warp is done with the step's stage: its products reading it have completed.
  __device__ void release(int step) const {
    if (threadIdx.x % 32 == 0) slots.empty(step);
  }
  // The ring whose tiles start at `at`, its barriers after them.
  __device__ static StreamRing placed_at(bf16_t* at) {
    uint64_t* filled = reinterpret_cast<uint64_t*>(at + 2 * STAGES * kTileElements);
    return {at, {filled, filled + STAGES}};
  }
};

// A warp-specialised CTA's own operand rows: kWgmmaRows rows of two tensors (the backward's K and
// V), loaded once by TMA on `ready`.
struct RowTiles {
  bf16_t *first, *second;
  uint64_t* ready;

  __device__ void init() const { wg::barrier_init(ready); }
  // One thread of the producer warp.
  __device__ void load(const CUtensorMap& a, const CUtensorMap& b, int head, int row0,
                       int batch) const {
    wg::barrier_expect(ready, 2 * kWarpgroups * wg::kBoxBytes);
    load_rows_pair<kWarpgroups>(first, second, a, b, head, row0, batch, ready);
  }
  __device__ void wait() const { wg::barrier_wait(ready, 0); }
};
// A warp-specialised CTA of COMPUTING threads (whole warpgroups) and the producer warpgroup
// after them: thread 0 runs `init` (the barriers' initialisation) before the CTA barrier that
// precedes the split into roles; then, once the registers have changed hands (PRODUCER and
// CONSUMER per thread), the producer warpgroup's first warp runs `load`, the first lane of its
// second warp `write`, and the computing warpgroups `consume`.
template <int COMPUTING = kThreads, int PRODUCER = kProducerRegisters,
          int CONSUMER = kConsumerRegisters, typename Init, typename Load, typename Write,
          typename Consume>
__device__ inline void specialised(Init init, Load load, Write write, Consume consume) {
  static_assert(COMPUTING % wg::kWarpgroup == 0);
  static_assert(wg::kWarpgroup * PRODUCER + COMPUTING * CONSUMER <= 65536);
  if (threadIdx.x == 0) {
    init();
    wg::barrier_init_fence();
  }
  __syncthreads();
  if (threadIdx.x >= COMPUTING) {
    wg::release_registers<PRODUCER>();
    if (threadIdx.x < COMPUTING + 32)
      load();
    else if (threadIdx.x == COMPUTING + 32)
      write();
  } else {
    wg::claim_registers<CONSUMER>();
    consume();
  }
}

// Each kernel's step j issues its own first products, then the second products of step j − 1
// (their A fragments kept from then), and computes its exponentials while the second group
// runs (as far as ptxas keeps them ahead of the wait: it may move the wait up). Step 0
// (body(0, std::true_type), with no earlier products) is peeled off the loop so that every
// wgmma issue and wait is unconditional: behind a branch, ptxas adds fences of its own
// (warning C7519) around the products.
template <typename Body>
__device__ inline void pipelined_steps(int steps, Body body) {
  if (steps == 0) return;
  body(0, std::true_type{});
  for (int step = 1; step < steps; ++step) body(step, std::false_type{});
}
template <typename First>
constexpr bool kFirst = First::value;

// Issues the step's first products (one group) and, past step 0, the previous step's second
// products (a second group), runs `issued`, then waits for the first group.
template <typename First, typename FirstProducts, typename SecondProducts, typename Issued>
__device__ inline void issue_products(First, FirstProducts first_products,
                                      SecondProducts second_products, Issued issued) {
  wg::fence();
  first_products();
  wg::commit();
  if constexpr (!kFirst<First>) {
    second_products();
    wg::commit();
    issued();
    wg::wait<1>();
  } else {
    issued();
    wg::wait<0>();
  }
}
// After the steps: the last step's second products into `accumulators`.
template <typename SecondProducts, typename... Accumulators>
__device__ inline void last_products(int steps, SecondProducts second_products,
                                     Accumulators&... accumulators) {
  if (steps == 0) return;
  fence_all(accumulators...);
  wg::fence();
  second_products();
  wg::commit();
  wg::wait<0>();
  fence_all(accumulators...);
}

constexpr size_t kRowsBytes = sizeof(bf16_t) * kWgmmaRows * wg::kCols;

// The TMA map of a [batch, rows, heads, 64] bf16 tensor: boxes of 64 rows × 64 columns of one
// head, 128-byte swizzled (wg::load_box).
CUtensorMap rows_map(const void* base, int batch, int rows, int heads);

}  // namespace ssa::cuda::flash
