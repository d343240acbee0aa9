#pragma once
// Warp-level tensor-core tiles: PTX wrappers (cp.async, ldmatrix, mma.sync m16n8k16 with bf16
// operands and fp32 accumulation) and the two tile products attention kernels are built from.
// Shared by the flash and the block-sparse kernels (included by .cu files only).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/device.cuh"

namespace ssa::cuda {

using bf16_t = __nv_bfloat16;

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared; a source of 0 bytes (outside the matrix) writes zeros.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool inside) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(inside ? 16 : 0)
               : "memory");
}
// The same through L1 (cp.async.ca): for rows that neighbouring warps of an SM may read again.
__device__ __forceinline__ void cp_async_16_cached(void* dst, const void* src, bool inside) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(inside ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool inside) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(inside ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most `pending` committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

// c += a · b for one m16n8k16 tile. Fragments (g = lane / 4, u = lane % 4):
// a[0..3] = A(g, 2u..2u+1), A(g + 8, 2u..), A(g, 2u + 8..), A(g + 8, 2u + 8..);
// b0 = B(2u..2u+1, g), b1 = B(2u + 8.., g);
// c = C(g, 2u), C(g, 2u + 1), C(g + 8, 2u), C(g + 8, 2u + 1).
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as bf16 (round to nearest even), lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof bits);
  return bits;
}

// ldmatrix.x4 takes 8 row addresses per 8×8 matrix from lanes 8i..8i+7. A "row-major 16×16"
// read (the A operand, or B through .trans) orders the matrices (rows 0-7, cols 0-7),
// (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15); a "B from [n][k]" read
// orders them (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
__device__ __forceinline__ int row_major_row(int lane) { return (lane & 7) + (lane & 8); }
__device__ __forceinline__ int row_major_col(int lane) { return (lane >> 4) * 8; }
__device__ __forceinline__ int nk_row(int lane) { return (lane & 7) + (lane >> 4) * 8; }
__device__ __forceinline__ int nk_col(int lane) { return lane & 8; }

// acc[m] (16 × 8·NT) += A_m · Bᵀ over K = 16·KT for the MB blocks A_m of 16 rows at
// a + 16·m·P; B is 8·NT rows at b (both row-major smem tiles of pitch P, K along the row).
template <int KT, int NT, int P, int MB>
__device__ __forceinline__ void mma_a_bt(float (&acc)[MB][NT][4], const bf16_t* a,
                                         const bf16_t* b) {
  const int lane = threadIdx.x % 32;
  const bf16_t* a_lane = a + row_major_row(lane) * P + row_major_col(lane);
  const bf16_t* b_lane = b + nk_row(lane) * P + nk_col(lane);
#pragma unroll
  for (int kk = 0; kk < KT; ++kk) {
    uint32_t a_frag[MB][4];
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) ldmatrix_x4(a_frag[mb], a_lane + mb * 16 * P + kk * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b_frag[4];
      ldmatrix_x4(b_frag, b_lane + np * 16 * P + kk * 16);
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
        mma(acc[mb][2 * np], a_frag[mb], b_frag[0], b_frag[1]);
        mma(acc[mb][2 * np + 1], a_frag[mb], b_frag[2], b_frag[3]);
      }
    }
  }
}

// acc[m] (16 × 8·NT) += S_m · B over K = 16·KT: the MB blocks S_m are held in registers as
// accumulator fragments (s[m][2·KT][4], 16 × 16·KT, rounded to bf16 here); B is a row-major
// smem tile of 16·KT rows and pitch P, N along the row.
template <int KT, int NT, int P, int MB>
__device__ __forceinline__ void mma_s_b(float (&acc)[MB][NT][4], const float (&s)[MB][2 * KT][4],
                                        const bf16_t* b) {
  const int lane = threadIdx.x % 32;
  const bf16_t* b_lane = b + row_major_row(lane) * P + row_major_col(lane);
#pragma unroll
  for (int kc = 0; kc < KT; ++kc) {
    uint32_t a_frag[MB][4];
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
      a_frag[mb][0] = pack_bf16(s[mb][2 * kc][0], s[mb][2 * kc][1]);
      a_frag[mb][1] = pack_bf16(s[mb][2 * kc][2], s[mb][2 * kc][3]);
      a_frag[mb][2] = pack_bf16(s[mb][2 * kc + 1][0], s[mb][2 * kc + 1][1]);
      a_frag[mb][3] = pack_bf16(s[mb][2 * kc + 1][2], s[mb][2 * kc + 1][3]);
    }
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b_frag[4];
      ldmatrix_x4_trans(b_frag, b_lane + kc * 16 * P + np * 16);
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
        mma(acc[mb][2 * np], a_frag[mb], b_frag[0], b_frag[1]);
        mma(acc[mb][2 * np + 1], a_frag[mb], b_frag[2], b_frag[3]);
      }
    }
  }
}

// Accumulator element e of n-tile nt sits at row (lane / 4) + 8·(e / 2), column
// 8·nt + 2·(lane % 4) + e % 2 of the warp's 16-row block.
__device__ __forceinline__ int frag_row(int e) {
  return static_cast<int>(threadIdx.x % 32) / 4 + (e >> 1) * 8;
}
__device__ __forceinline__ int frag_col(int nt, int e) {
  return 8 * nt + 2 * (static_cast<int>(threadIdx.x) % 4) + (e & 1);
}

// Two adjacent accumulator values to memory, as f32 or rounded to bf16.
__device__ __forceinline__ void store_pair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store_pair(bf16_t* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}

// The pair added into the two values at p as `added` adds a gradient.
__device__ __forceinline__ void add_pair(float* p, float a, float b) {
  const float2 old = *reinterpret_cast<const float2*>(p);
  store_pair(p, added(old.x, a), added(old.y, b));
}
__device__ __forceinline__ void add_pair(bf16_t* p, float a, float b) {
  __nv_bfloat162& pair = *reinterpret_cast<__nv_bfloat162*>(p);
  pair = __nv_bfloat162(added(pair.x, a), added(pair.y, b));
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Running max of the raw scores q·k and running sum of exp2((s − max)·scale_log2) for the
// thread's two rows (frag_row 0 and 8). `sum` holds this thread's columns only; the quad adds
// them up at the end.
struct OnlineSoftmax {
  float max[2] = {-INFINITY, -INFINITY}, sum[2] = {0.f, 0.f};

  // Turns raw scores (−inf where hidden) into exp2((s − running max)·scale_log2) and rescales o
  // to the new max.
  template <int NT, int DT>
  __device__ __forceinline__ void update(float (&s)[NT][4], float (&o)[DT][4], float scale_log2) {
    float correction[2];
    exponentiate(s, scale_log2, correction);
    rescale(o, correction);
  }

  // The first half of update: the scores only; o must still be multiplied by `correction`.
  template <int NT>
  __device__ __forceinline__ void exponentiate(float (&s)[NT][4], float scale_log2,
                                               float (&correction)[2]) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        tile_max = fmaxf(tile_max, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
      const float new_max = fmaxf(max[half], quad_max(tile_max));
      // A row with nothing seen yet keeps base 0, so −inf scores still give 0.
      const float base = new_max == -INFINITY ? 0.f : new_max * scale_log2;
      correction[half] = fast_exp2(fmaf(max[half], scale_log2, -base));
      max[half] = new_max;
      float tile_sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          s[nt][e] = fast_exp2(fmaf(s[nt][e], scale_log2, -base));
          tile_sum += s[nt][e];
        }
      }
      sum[half] = sum[half] * correction[half] + tile_sum;
    }
  }

  template <int DT>
  __device__ __forceinline__ static void rescale(float (&o)[DT][4], const float (&correction)[2]) {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[dt][e] *= correction[e >> 1];
  }
};

}  // namespace ssa::cuda
