#pragma once
// Hopper warpgroup tensor-core products (wgmma, sm_90a) on 64-column bf16 tiles, their tile
// loads by TMA with the mbarriers they complete on, setmaxnreg, bulk copies (and reduce-adds)
// from shared to global memory, and turn counters between CTAs, for the head_dim-64 attention
// kernels (included by .cu files only).
//
// A warpgroup is 4 consecutive warps (128 threads); one product is a 64 × 64 (or 64 × 128) fp32
// block per warpgroup, warp w holding rows 16w..16w+15 in the accumulator layout of mma.cuh
// (d[nt][e] at frag_row(e), frag_col(nt, e)). The A operand is in registers, in mma.sync's
// A-fragment layout (k-steps of 16 columns), or a shared tile like B; B is a shared-memory
// tile read through a matrix descriptor.
//
// Shared tiles: rows of 64 bf16 (128 bytes), in the 128-byte swizzle wgmma reads: the
// 16-byte chunk c of row r is stored at chunk c ^ (r % 8) of that row. A tile starts on a
// 1024-byte boundary. The same bytes serve as a K-major B (rows are B's n index, columns its
// k: A·Bᵀ) and as an MN-major B (rows are k, columns n: A·B).
#include <cuda.h>  // CUtensorMap (types only: the driver is reached through the runtime)

#include <cstdint>

#include "cuda/attention/mma.cuh"

namespace ssa::cuda::wg {

constexpr int kWarpgroup = 128;
constexpr int kCols = 64;
constexpr int kRowBytes = kCols * 2;
constexpr int kTileAlign = 1024;

// Element offset of (row, col) within a swizzled tile.
__device__ __forceinline__ int swizzled(int row, int col) {
  return row * kCols + (((col >> 3) ^ (row & 7)) << 3) + (col & 7);
}

// A fragments from an accumulator block (rounded to bf16): the product's result as the next
// product's A, k running along the accumulator's columns (NT / 2 k-steps of 16).
template <int NT>
__device__ __forceinline__ void to_a(uint32_t (&a)[NT / 2][4], const float (&d)[NT][4]) {
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk) {
    a[kk][0] = pack_bf16(d[2 * kk][0], d[2 * kk][1]);
    a[kk][1] = pack_bf16(d[2 * kk][2], d[2 * kk][3]);
    a[kk][2] = pack_bf16(d[2 * kk + 1][0], d[2 * kk + 1][1]);
    a[kk][3] = pack_bf16(d[2 * kk + 1][2], d[2 * kk + 1][3]);
  }
}

// Matrix descriptor of a swizzled tile (PTX ISA, "matrix descriptor"): start address, leading
// and stride byte offsets in 16-byte units, 128-byte swizzle in bits 62-63. Stride: 1024 bytes
// between groups of 8 rows; the leading offset is unused with one 64-column atom.
__device__ __forceinline__ uint64_t descriptor(const bf16_t* start) {
  return uint64_t{(smem_address(start) & 0x3FFFF) >> 4} | uint64_t{1} << 16 |
         uint64_t{(8 * kRowBytes) >> 4} << 32 | uint64_t{1} << 62;
}
// B for k-step kk as K-major (k along the row: 16 columns = 32 bytes on) and as MN-major
// (k along the rows: 16 rows on).
__device__ __forceinline__ uint64_t k_major(const bf16_t* tile, int kk) {
  return descriptor(tile + kk * 16);
}
__device__ __forceinline__ uint64_t mn_major(const bf16_t* tile, int kk) {
  return descriptor(tile + kk * 16 * kCols);
}

// Keeps the compiler from moving accesses to the accumulators across the asynchronous products.
template <int NT>
__device__ __forceinline__ void fence_operands(float (&d)[NT][4]) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[nt][e])::"memory");
}

__device__ __forceinline__ void fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most `pending` committed groups of products are still running.
template <int pending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(pending) : "memory");
}
// The accumulator operands of one product: rows d[0..N/4) of a warpgroup's block, and the
// matching register list of the instruction.
#define SSA_WGMMA_D4(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define SSA_WGMMA_D32(d)                                                          \
  SSA_WGMMA_D4(d, 0), SSA_WGMMA_D4(d, 1), SSA_WGMMA_D4(d, 2), SSA_WGMMA_D4(d, 3), \
      SSA_WGMMA_D4(d, 4), SSA_WGMMA_D4(d, 5), SSA_WGMMA_D4(d, 6), SSA_WGMMA_D4(d, 7)
#define SSA_WGMMA_D64(d)                                                                  \
  SSA_WGMMA_D32(d), SSA_WGMMA_D4(d, 8), SSA_WGMMA_D4(d, 9), SSA_WGMMA_D4(d, 10),          \
      SSA_WGMMA_D4(d, 11), SSA_WGMMA_D4(d, 12), SSA_WGMMA_D4(d, 13), SSA_WGMMA_D4(d, 14), \
      SSA_WGMMA_D4(d, 15)
#define SSA_WGMMA_REGS_0_31                                                                    \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, "                                                                                      \
  "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define SSA_WGMMA_D32_LIST "{" SSA_WGMMA_REGS_0_31 "}"
#define SSA_WGMMA_D64_LIST                                                                       \
  "{" SSA_WGMMA_REGS_0_31                                                                        \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
  "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// d (+)= A · B for one k-step: m64n64k16, A from registers, B through `desc`
// (TRANS_B = 0: K-major, 1: MN-major); d is overwritten when `accumulate` is false.
template <int TRANS_B>
__device__ __forceinline__ void mma_step(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc,
                                         bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SSA_WGMMA_D32_LIST
      ", "
      "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : SSA_WGMMA_D32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(int{accumulate}), "n"(TRANS_B));
#else
  __trap();  // built without sm_90a: the launchers never choose these kernels
#endif
}

// Issues d += A · B over k = 16 · KK, B an MN-major tile of 16 · KK rows (k) (the caller
// commits).
template <int KK>
__device__ __forceinline__ void issue_a_b(float (&d)[8][4], const uint32_t (&a)[KK][4],
                                          const bf16_t* b_tile) {
#pragma unroll
  for (int kk = 0; kk < KK; ++kk) mma_step<1>(d, a[kk], mn_major(b_tile, kk), true);
}

// d (+)= A · Bᵀ for one k-step, m64n128k16, both operands K-major tiles through descriptors.
__device__ __forceinline__ void mma_step_n128(float (&d)[16][4], uint64_t a_desc, uint64_t b_desc,
                                              bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SSA_WGMMA_D64_LIST
      ", "
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
      : SSA_WGMMA_D64(d)
      : "l"(a_desc), "l"(b_desc), "r"(int{accumulate}));
#else
  __trap();
#endif
}
// Issues d = A · Bᵀ over k = 64 (the caller commits): A the 64 rows (m) of a K-major tile from
// `a_rows`, B a K-major tile of 128 rows (n).
__device__ __forceinline__ void issue_ss_n128(float (&d)[16][4], const bf16_t* a_rows,
                                              const bf16_t* b_tile) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_step_n128(d, k_major(a_rows, kk), k_major(b_tile, kk), kk > 0);
}

// d (+)= A · B for one k-step, m64n64k16, both operands through descriptors: A K-major, B
// MN-major.
__device__ __forceinline__ void mma_step_ss(float (&d)[8][4], uint64_t a_desc, uint64_t b_desc,
                                            bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SSA_WGMMA_D32_LIST
      ", "
      "%32, %33, p, 1, 1, 0, 1;\n}\n"
      : SSA_WGMMA_D32(d)
      : "l"(a_desc), "l"(b_desc), "r"(int{accumulate}));
#else
  __trap();
#endif
}

// Stores the four 8 × 8 bf16 matrices of a warp's fragments (register i: matrix i, its rows
// addressed by lanes 8i..8i+7) transposed: row r of matrix i is written as column r at the
// lane's address.
__device__ __forceinline__ void stmatrix_x4_trans(bf16_t* p, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(
                   smem_address(p)),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Orders this thread's shared-memory writes before later reads by wgmma or bulk copies (the
// async proxy); the readers learn of the writes through a barrier after it.
__device__ __forceinline__ void fence_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// The same between this thread's global accesses (its turn, below) and its bulk copies.
__device__ __forceinline__ void fence_async_global() {
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}

// ---- bulk copies shared → global (thread-issued, tracked in bulk groups)

// dst[0, bytes) = src, or dst += src elementwise in f32 (one addition per element); 16-byte
// aligned, bytes a multiple of 16.
__device__ __forceinline__ void bulk_store(float* dst, const float* src, int bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst),
               "r"(smem_address(src)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_add(float* dst, const float* src, int bytes) {
  asm volatile(
      "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
      "r"(smem_address(src)), "r"(bytes)
      : "memory");
}
__device__ __forceinline__ void bulk_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Waits until at most `pending` of this thread's committed bulk copies are incomplete (their
// writes not yet visible).
template <int pending>
__device__ __forceinline__ void bulk_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(pending) : "memory");
}

// Waits until at most `pending` of them still read their source (which may then be reused).
template <int pending>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(pending) : "memory");
}

// ---- named barriers between the warps of a CTA (ids 1 to 15; __syncthreads uses 0): a phase
// completes once `threads` threads (whole warps) have arrived or waited there.

__device__ __forceinline__ void named_wait(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- turns between CTAs: a counter in global memory, acquired and released at GPU scope

// Returns once the counter reads `mine`.
__device__ __forceinline__ void wait_turn(const int* turn, int mine) {
  int seen;
  do {
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(seen) : "l"(turn) : "memory");
  } while (seen != mine);
}
__device__ __forceinline__ void pass_turn(int* turn) {
  asm volatile("red.release.gpu.global.add.s32 [%0], 1;\n" ::"l"(turn) : "memory");
}

// ---- tile loads by the tensor memory accelerator (TMA), completing on an mbarrier

// A [batch, rows, heads, 64] bf16 tensor as TMA sees it: boxes of 64 rows of one head, written
// to shared memory in the swizzle above; rows past the end read as zeros.
constexpr int kBoxRows = 64;
constexpr int kBoxBytes = kBoxRows * kRowBytes;

// A barrier whose phases complete after `arrivals` arrivals (and any bytes they expect).
__device__ __forceinline__ void barrier_init(uint64_t* bar, int arrivals = 1) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(arrivals)
               : "memory");
}
// Makes initialised barriers visible to the TMA unit; a CTA barrier must follow.
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The barrier's one arrival for this phase, which completes once `bytes` have landed.
__device__ __forceinline__ void barrier_expect(uint64_t* bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)),
               "r"(bytes)
               : "memory");
}
// Adds `bytes` to what the barrier's current phase waits for, without arriving.
__device__ __forceinline__ void barrier_expect_bytes(uint64_t* bar, int bytes) {
  asm volatile(
      "mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)),
      "r"(bytes)
      : "memory");
}
// One arrival, releasing this thread's earlier memory accesses to the threads that wait.
__device__ __forceinline__ void barrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_address(bar)) : "memory");
}
// Waits until the barrier's phase of parity `parity` has completed.
__device__ __forceinline__ void barrier_wait(uint64_t* bar, int parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_address(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// Lowers (release) or raises (claim) this warpgroup's registers per thread to `count`, so that
// a warpgroup which only issues loads leaves its registers to those that compute.
template <int count>
__device__ __forceinline__ void release_registers() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(count));
#endif
}
template <int count>
__device__ __forceinline__ void claim_registers() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(count));
#endif
}

// Copies rows [row0, row0 + kBoxRows) of head `head` of batch `batch` into `tile`; completes on
// `bar`.
__device__ __forceinline__ void load_box(bf16_t* tile, const CUtensorMap& map, int head, int row0,
                                         int batch, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3, %4, %5}], [%6];\n" ::"r"(smem_address(tile)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(0), "r"(head), "r"(row0), "r"(batch),
      "r"(smem_address(bar))
      : "memory");
}

}  // namespace ssa::cuda::wg
