// Flash attention forward, bf16 at head_dim 64 on Hopper's warpgroup tensor cores (wgmma,
// sm_90a), on the CTA of wgmma_steps.cuh: two computing warpgroups, the K/V ring refilled by
// thread 0, two CTAs per SM. Also the TMA maps of both wgmma files and the choice of these
// kernels. The same steps and sums as flash_attention_bf16.cu, so results are deterministic too.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "cuda/attention/wgmma_steps.cuh"

namespace ssa::cuda::flash {
namespace {

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
  const TileRing ring = TileRing::placed_at(q_tile + kWgmmaRows * wg::kCols);
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

constexpr size_t kForwardSmem = kSmemSlack + kRowsBytes + TileRing::kBytes;

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

}  // namespace ssa::cuda::flash
