// Flash attention forward, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma,
// sm_90a), on the warp-specialised CTA of wgmma_steps.cuh: three computing warpgroups of 64
// queries each, and a producer warpgroup whose first warp loads Q and refills the K/V ring by
// TMA; one CTA per SM. Also the TMA maps of both wgmma files and the choice of these kernels.
// Every row's sums run in a fixed order, so results are deterministic.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "cuda/attention/wgmma_steps.cuh"

namespace ssa::cuda::flash {
namespace {

constexpr int kForwardWarpgroups = 3;
constexpr int kForwardRows = 64 * kForwardWarpgroups;  // queries per CTA
constexpr int kComputing = kForwardWarpgroups * wg::kWarpgroup;
constexpr int kForwardThreads = kComputing + wg::kWarpgroup;
constexpr int kKeyStep = 128, kKeyStages = 3;  // keys per step; steps the ring holds
using KeyRing = StreamRing<kKeyStages, kKeyStep>;

// Per thread with three computing warpgroups: 32 registers a producer, 160 a computing thread
// (S, O and P of a 64 × 128 step take 128 of them).
constexpr int kProducerKeeps = 32, kComputingKeeps = 160;

// The computing warpgroups issue their products in turn, warpgroup w after w − 1 (cyclically),
// so that the tensor cores take their steps round-robin and each one's exponentials run beside
// the others' products. Warpgroup w waits at named barrier 1 + w, where the warpgroup before it
// arrives once it has issued; warpgroup 0's first turn is its own arrival. The last warpgroup
// does not pass its last turn, so every barrier phase that starts completes.
struct IssueTurns {
  int warpgroup, steps;
  static constexpr int kBoth = 2 * wg::kWarpgroup;  // the waiting and the arriving warpgroup

  __device__ explicit IssueTurns(int steps)
      : warpgroup(threadIdx.x / wg::kWarpgroup), steps(steps) {
    if (warpgroup == 0 && steps > 0) wg::named_arrive(1, kBoth);
  }
  __device__ void wait() const { wg::named_wait(1 + warpgroup, kBoth); }
  __device__ void pass(int step) const {
    const int next = (warpgroup + 1) % kForwardWarpgroups;
    if (next != 0 || step + 1 < steps) wg::named_arrive(1 + next, kBoth);
  }
};

// One CTA per (query tile of kForwardRows, head, batch), heaviest first (TileOrder over heads
// and batch; rank 0 the last query tile). The tiles end at q_len,
// so the first may start before row 0 (TMA reads those rows as zeros, and nothing is written for
// them): a part-filled tile then holds the lightest rows, not the heaviest. Warpgroup w, on queries
// m0 + 64w ..: step j: S_j = Q·K_jᵀ (Q from shared memory), then O += P_{j−1}·V_{j−1} while P_j is
// exponentiated; O is rescaled to step j's running max once that product is done. smem: Q
// [kForwardRows][64] (three TMA boxes), then the K/V ring, then Q's barrier.
__global__ void __launch_bounds__(kForwardThreads, 1)
    forward_kernel(Problem pb, const __grid_constant__ CUtensorMap q_map,
                   const __grid_constant__ CUtensorMap k_map,
                   const __grid_constant__ CUtensorMap v_map, bf16_t* out, float* lse) {
  extern __shared__ unsigned char smem_raw[];
  bf16_t* q_tile = aligned_tiles(smem_raw);
  const KeyRing ring = KeyRing::placed_at(q_tile + kForwardRows * wg::kCols);
  uint64_t* q_ready = ring.slots.emptied + kKeyStages;
  const TileOrder order(pb.heads * pb.batch);
  const int h = order.unit % pb.heads, b = order.unit / pb.heads;
  const int m0 = pb.q_len - (order.rank + 1) * kForwardRows;
  const int kv = h / pb.group();
  const int key_end = pb.key_end(m0, kForwardRows);
  const int steps = key_end > 0 ? ceil_div(key_end, kKeyStep) : 0;

  auto init = [&] {
    ring.init(32, kComputing);
    wg::barrier_init(q_ready);
  };
  auto load = [&] {
    if (threadIdx.x % 32 == 0) {
      wg::barrier_expect(q_ready, kForwardWarpgroups * wg::kBoxBytes);
      for (int box = 0; box < kForwardWarpgroups; ++box)
        wg::load_box(q_tile + box * kTile, q_map, h, m0 + box * wg::kBoxRows, b, q_ready);
    }
    ring.produce(
        steps, [&](int step) { ring.load(step, k_map, v_map, kv, step * kKeyStep, b); },
        [](int) {});
  };
  auto consume = [&] {
    const int row0 = m0 + warp_row0();
    const bf16_t* own_q = q_tile + threadIdx.x / wg::kWarpgroup * kTile;
    wg::barrier_wait(q_ready, 0);
    const IssueTurns turns(steps);
    OnlineSoftmax softmax;
    float o[8][4] = {};
    uint32_t p[8][4];
    pipelined_steps(steps, [&](int step, auto first) {
      ring.wait(step);
      const int n0 = step * kKeyStep;
      float s[16][4];
      fence_all(s, o);
      turns.wait();
      issue_products(
          first, [&] { wg::issue_ss_n128(s, own_q, ring.first(step)); },
          [&] { wg::issue_a_b(o, p, ring.second(step - 1)); }, [&] { turns.pass(step); });
      fence_all(s);
      if (!pb.tile_unmasked(row0, 16, n0, kKeyStep))
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
    store_forward_rows<64>(pb, softmax, o, row0, out + pb.q_head(b, h), lse + pb.row_stats(b, h));
  };
  specialised<kComputing, kProducerKeeps, kComputingKeeps>(
      init, load, [] {}, consume);
}

constexpr size_t kForwardSmem =
    kSmemSlack + sizeof(bf16_t) * kForwardRows * wg::kCols + KeyRing::kBytes + sizeof(uint64_t);

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

}  // namespace

CUtensorMap rows_map(const void* base, int batch, int rows, int heads) {
  const cuuint64_t dims[4] = {64, cuuint64_t(heads), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[3] = {wg::kRowBytes, cuuint64_t(heads) * wg::kRowBytes,
                                 cuuint64_t(rows) * heads * wg::kRowBytes};
  const cuuint32_t box[4] = {64, 1, wg::kBoxRows, 1}, element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map{};
  const CUresult status = encode_tiled()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), dims, strides, box,
      element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  SSA_CHECK(status == CUDA_SUCCESS, "attention: cuTensorMapEncodeTiled failed ({})",
            static_cast<int>(status));
  return map;
}

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
  const int64_t ctas = int64_t{ceil_div(pb.q_len, kForwardRows)} * pb.heads * pb.batch;
  SSA_CHECK(ctas <= INT_MAX,
            "attention: {} query tiles of {} rows over {} heads and batch {} exceed "
            "one grid ({} CTAs at most)",
            ceil_div(pb.q_len, kForwardRows), kForwardRows, pb.heads, pb.batch, INT_MAX);
  launch(forward_kernel, dim3(static_cast<unsigned>(ctas)), kForwardThreads, kForwardSmem, pb,
         rows_map(args.q, pb.batch, pb.q_len, pb.heads),
         rows_map(args.k, pb.batch, pb.k_len, pb.kv_heads),
         rows_map(args.v, pb.batch, pb.k_len, pb.kv_heads), static_cast<bf16_t*>(args.out),
         args.lse);
}

}  // namespace ssa::cuda::flash
