#pragma once
// Pieces shared by the bf16 flash-attention kernels (flash_attention_bf16.cu on mma.sync,
// flash_attention_wgmma.cu on Hopper's wgmma), some also by the sparse dK/dV kernel: the
// backward's pointers, masking, its probabilities, row loads and stores in the accumulator
// layout of mma.cuh (included by .cu files only).
#include <cmath>
#include <cstdint>

#include "cuda/attention/flash_attention_common.cuh"
#include "cuda/attention/mma.cuh"

namespace ssa::cuda::flash {

struct BackwardPointers {
  const bf16_t *q, *k, *v, *d_out;
  const float *lse, *delta;
  bf16_t *dq, *dk, *dv;
  // With the GQA group split over `head_splits` CTAs per KV tile: each CTA's dK·scale and dV
  // over its heads, f32 [head_splits, B, Tk, Hkv, D] each, summed by sum_head_splits.
  float *dk_parts, *dv_parts;
  int head_splits;
  bool add_dq;  // dq added into (FlashBackward::add_dq)
};

// The query steps of one KV tile's backward pass (the keys from n0) in one CTA: the query heads
// of its share of the GQA group (`split` of head_splits over KV head kv), each from the query
// tile of kStep rows that first sees key n0 to the last one; step s is head head_of(s),
// queries m0_of(s) ...
template <int kStep>
struct KeyTileSteps {
  int first_head, first_m0, tiles_per_head, steps;

  __device__ KeyTileSteps(const Problem& pb, int head_splits, int kv, int split, int n0) {
    const int split_heads = pb.group() / head_splits;
    first_head = kv * pb.group() + split * split_heads;
    first_m0 = pb.first_query(n0) / kStep * kStep;
    tiles_per_head = ceil_div(pb.q_len - first_m0, kStep);
    steps = tiles_per_head * split_heads;
  }
  __device__ int head_of(int step) const { return first_head + step / tiles_per_head; }
  __device__ int m0_of(int step) const { return first_m0 + step % tiles_per_head * kStep; }
};

// Sets s to −inf where hidden(frag_row, frag_col) holds. Called for partial tiles only, so
// full tiles pay nothing for the mask.
template <int NT, typename Hidden>
__device__ inline void mask_scores(float (&s)[NT][4], Hidden hidden) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (hidden(frag_row(e), frag_col(nt, e))) s[nt][e] = -INFINITY;
}

// The backward's probabilities from a warp's transposed block (rows keys, columns queries, in
// the accumulator layout): pt holds K·Qᵀ and becomes Pᵀ = exp2(pt·scale_log2 − lse·log2(e)),
// lse read per query column; Pᵀ is 0 where seen(row, column) is false.
template <int NT, typename Seen>
__device__ inline void transposed_probabilities(float (&pt)[NT][4], const float* lse,
                                                float scale_log2, Seen seen) {
#pragma unroll
  for (int qt = 0; qt < NT; ++qt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = frag_col(qt, e);
      pt[qt][e] =
          seen(frag_row(e), col) ? fast_exp2(fmaf(pt[qt][e], scale_log2, -lse[col] * kLog2e)) : 0.f;
    }
}
// dpt holds V·dOᵀ (transposed like pt) and becomes dSᵀ = Pᵀ ∘ (dpt − delta), delta read per
// query column.
template <int NT>
__device__ inline void transposed_score_gradients(const float (&pt)[NT][4], float (&dpt)[NT][4],
                                                  const float* delta) {
#pragma unroll
  for (int qt = 0; qt < NT; ++qt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dpt[qt][e] = pt[qt][e] * (dpt[qt][e] - delta[frag_col(qt, e)]);
}
// Both: Pᵀ, then dSᵀ.
template <int NT, typename Seen>
__device__ inline void backward_probabilities(float (&pt)[NT][4], float (&dpt)[NT][4],
                                              const float* lse, const float* delta,
                                              float scale_log2, Seen seen) {
  transposed_probabilities(pt, lse, scale_log2, seen);
  transposed_score_gradients(pt, dpt, delta);
}
// For kernels that set hidden scores to −inf beforehand.
struct AllSeen {
  __device__ bool operator()(int, int) const { return true; }
};

// values[i] = src[row0 + i] for i < rows, 0 at or past `limit`.
__device__ inline void load_row_values(float* values, const float* src, int row0, int rows,
                                       int limit) {
  for (int i = threadIdx.x; i < rows; i += blockDim.x) {
    const bool inside = row0 + i < limit;
    cp_async_4(values + i, inside ? src + row0 + i : src, inside);
  }
}

// Writes acc · factor (a warp's 16 × D block) as T (bf16 or f32) to rows row0 + frag_row in
// [0, limit), or with `add` adds it there (add_pair).
template <int D, typename T>
__device__ inline void store_rows(T* dst, int64_t stride, int row0, int limit,
                                  const float (&acc)[D / 8][4], float factor, bool add = false) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + frag_row(2 * half);
    if (row < 0 || row >= limit) continue;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      T* at = dst + row * stride + frag_col(nt, 0);
      const float a = acc[nt][2 * half] * factor, b = acc[nt][2 * half + 1] * factor;
      add ? add_pair(at, a, b) : store_pair(at, a, b);
    }
  }
}

// The end of a forward warp: its 16 rows from row0 of O divided by the row sums, written to
// the head's rows `out`, and each row's natural-log log-sum-exp to the head's `lse` (rows in
// [0, q_len) only).
template <int D>
__device__ inline void store_forward_rows(const Problem& pb, const OnlineSoftmax& softmax,
                                          float (&o)[D / 8][4], int row0, bf16_t* out, float* lse) {
  float inverse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float total = quad_sum(softmax.sum[half]);
    inverse[half] = 1.f / total;
    const int t = row0 + frag_row(2 * half);
    if (t >= 0 && t < pb.q_len && threadIdx.x % 4 == 0)
      lse[t] = (softmax.max[half] * pb.scale_log2 + log2f(total)) * kLn2;
  }
  OnlineSoftmax::rescale(o, inverse);
  store_rows<D>(out, pb.q_stride(), row0, pb.q_len, o, 1.f);
}

// The end of a dK/dV kernel: the warp's 16 keys from key0 of dK·scale and dV, written to dk and
// dv, or with the GQA group split to the split's partial sums.
template <int D>
__device__ inline void store_dk_dv(const Problem& pb, const BackwardPointers& ptr, int b, int kv,
                                   int split, int key0, const float (&dk)[D / 8][4],
                                   const float (&dv)[D / 8][4]) {
  if (ptr.head_splits == 1) {
    store_rows<D>(ptr.dk + pb.kv_head(b, kv), pb.kv_stride(), key0, pb.k_len, dk, pb.scale);
    store_rows<D>(ptr.dv + pb.kv_head(b, kv), pb.kv_stride(), key0, pb.k_len, dv, 1.f);
    return;
  }
  const int64_t part = int64_t{split} * pb.batch * pb.k_len * pb.kv_stride() + pb.kv_head(b, kv);
  store_rows<D>(ptr.dk_parts + part, pb.kv_stride(), key0, pb.k_len, dk, pb.scale);
  store_rows<D>(ptr.dv_parts + part, pb.kv_stride(), key0, pb.k_len, dv, 1.f);
}

}  // namespace ssa::cuda::flash
