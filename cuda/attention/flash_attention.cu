// Flash attention: the entry points and the f32 path
// (CUDA cores, full fp32, the testing mode). The bf16 tensor-core path is in
// flash_attention_bf16.cu.
#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <type_traits>

#include "cuda/attention/attention_delta.h"
#include "cuda/attention/flash_attention_bf16.h"

namespace ssa::cuda::flash {
namespace {

constexpr float kInf = INFINITY;

// delta = rowsum(dO ∘ O), kept per (batch, head) row of queries.
void compute_delta(const Problem& pb, DType dtype, const FlashBackward& args) {
  attention_delta(args.out, args.d_out, args.delta, dtype,
                  {pb.batch, pb.q_len, pb.heads, pb.head_dim, true});
}

// ---------------------------------------------------------------- f32 path
// Tiles of 64 query rows × 64 keys. 256 threads form a 16 × 16 grid: thread (ty, tx) owns
// rows 4·ty + i (i < 4) and columns tx + 16·j of every tile product it computes, so one row's
// columns sit in the 16 lanes of a half-warp. Operand tiles hold 64 rows of head_dim floats
// zero-padded to DP (16, 32, 64 or 128), pitch DP + 1; score tiles are 64 × 64, pitch 65.

constexpr int kTile = 64;
constexpr int kThreads = 256;
constexpr int kScorePitch = kTile + 1;
constexpr int kScoreFloats = kTile * kScorePitch;
template <int DP>
constexpr int kTileFloats = kTile*(DP + 1);

struct Lane2d {
  int ty, tx;
};
__device__ Lane2d lane_2d() {
  const int thread = static_cast<int>(threadIdx.x);
  return {thread / 16, thread % 16};
}

__device__ float half_warp_max(float x) {
  for (int lanes = 8; lanes > 0; lanes /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, lanes));
  return x;
}
__device__ float half_warp_sum(float x) {
  for (int lanes = 8; lanes > 0; lanes /= 2) x += __shfl_xor_sync(0xffffffffu, x, lanes);
  return x;
}

// Rows [row0, row0 + 64) of a matrix whose rows lie `stride` floats apart; rows at or past
// `limit` and columns past head_dim read as zeros.
template <int DP>
__device__ void load_tile(float* tile, const float* src, int64_t stride, int row0, int limit,
                          int head_dim) {
  for (int i = threadIdx.x; i < kTile * DP; i += kThreads) {
    const int r = i / DP, c = i % DP;
    const bool inside = row0 + r < limit && c < head_dim;
    tile[r * (DP + 1) + c] = inside ? src[(row0 + r) * stride + c] : 0.f;
  }
}

// acc[i][j] = Σ_c a[4·ty + i][c] · b[tx + 16·j][c] (a tile times a transposed tile).
template <int DP>
__device__ void dot_rows(float (&acc)[4][4], const float* a, const float* b) {
  const Lane2d me = lane_2d();
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
#pragma unroll 4
  for (int c = 0; c < DP; ++c) {
    float a_col[4], b_col[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a_col[i] = a[(4 * me.ty + i) * (DP + 1) + c];
#pragma unroll
    for (int j = 0; j < 4; ++j) b_col[j] = b[(me.tx + 16 * j) * (DP + 1) + c];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a_col[i], b_col[j], acc[i][j]);
  }
}

// acc[i][j] += Σ_n s[4·ty + i][n] · b[n][tx + 16·j] (a score tile times an operand tile).
template <int DP>
__device__ void scores_times(float (&acc)[4][DP / 16], const float* s, const float* b) {
  const Lane2d me = lane_2d();
#pragma unroll 4
  for (int n = 0; n < kTile; ++n) {
    float s_col[4], b_row[DP / 16];
#pragma unroll
    for (int i = 0; i < 4; ++i) s_col[i] = s[(4 * me.ty + i) * kScorePitch + n];
#pragma unroll
    for (int j = 0; j < DP / 16; ++j) b_row[j] = b[n * (DP + 1) + me.tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < DP / 16; ++j) acc[i][j] = fmaf(s_col[i], b_row[j], acc[i][j]);
  }
}

// Writes acc · factor to rows [row0 + 4·ty + i] (those below `limit`), columns < head_dim, or
// with `add` adds it there.
template <int DP>
__device__ void store_rows(float* dst, int64_t stride, int row0, int limit, int head_dim,
                           const float (&acc)[4][DP / 16], float factor, bool add = false) {
  const Lane2d me = lane_2d();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = row0 + 4 * me.ty + i;
#pragma unroll
    for (int j = 0; j < DP / 16; ++j) {
      const int c = me.tx + 16 * j;
      if (row >= limit || c >= head_dim) continue;
      float& at = dst[row * stride + c];
      at = add ? at + acc[i][j] * factor : acc[i][j] * factor;
    }
  }
}

// One CTA per (query tile, head, batch), heaviest (last) query tiles first.
template <int DP>
__global__ void __launch_bounds__(kThreads)
    forward_f32_kernel(Problem pb, const float* q, const float* k, const float* v, float* out,
                       float* lse) {
  extern __shared__ float smem_f32[];
  float* q_tile = smem_f32;
  float* k_tile = q_tile + kTileFloats<DP>;
  float* v_tile = k_tile + kTileFloats<DP>;
  float* p_tile = v_tile + kTileFloats<DP>;
  const Lane2d me = lane_2d();
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kv = h / pb.group();
  load_tile<DP>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim);

  float row_max[4], row_sum[4], acc[4][DP / 16];  // row_sum: this thread's columns only
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    row_max[i] = -kInf;
    row_sum[i] = 0.f;
#pragma unroll
    for (int j = 0; j < DP / 16; ++j) acc[i][j] = 0.f;
  }
  const int key_end = pb.key_end(m0, kTile);
  for (int n0 = 0; n0 < key_end; n0 += kTile) {
    __syncthreads();  // the last tile's readers are done
    load_tile<DP>(k_tile, k + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);
    load_tile<DP>(v_tile, v + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);
    __syncthreads();
    float s[4][4];
    dot_rows<DP>(s, q_tile, k_tile);
    const bool masked = !pb.tile_unmasked(m0, kTile, n0, kTile);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float tile_max = -kInf;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bool hidden = masked && !pb.visible(m0 + 4 * me.ty + i, n0 + me.tx + 16 * j);
        s[i][j] = hidden ? -kInf : s[i][j] * pb.scale_log2;
        tile_max = fmaxf(tile_max, s[i][j]);
      }
      const float new_max = fmaxf(row_max[i], half_warp_max(tile_max));
      const float base = new_max == -kInf ? 0.f : new_max;  // a row with nothing seen yet
      const float correction = exp2f(row_max[i] - base);
      row_max[i] = new_max;
      row_sum[i] *= correction;
#pragma unroll
      for (int j = 0; j < DP / 16; ++j) acc[i][j] *= correction;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = exp2f(s[i][j] - base);
        row_sum[i] += p;
        p_tile[(4 * me.ty + i) * kScorePitch + me.tx + 16 * j] = p;
      }
    }
    __syncthreads();
    scores_times<DP>(acc, p_tile, v_tile);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float total = half_warp_sum(row_sum[i]);
    const int t = m0 + 4 * me.ty + i;
    if (t < pb.q_len && me.tx == 0)
      lse[pb.row_stats(b, h) + t] = (row_max[i] + log2f(total)) * kLn2;
    row_sum[i] = total;
  }
  float* out_head = out + pb.q_head(b, h);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float inverse = 1.f / row_sum[i];
#pragma unroll
    for (int j = 0; j < DP / 16; ++j) acc[i][j] *= inverse;
  }
  store_rows<DP>(out_head, pb.q_stride(), m0, pb.q_len, pb.head_dim, acc, 1.f);
}

// dK, dV for one (KV tile, KV head, batch): loops over the query heads of the GQA group, in
// order, and their query tiles that see the KV tile. Thread rows are keys, columns queries:
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO, dK += dSᵀ·Q·scale.
template <int DP>
__global__ void __launch_bounds__(kThreads)
    dkdv_f32_kernel(Problem pb, const float* q, const float* k, const float* v, const float* d_out,
                    const float* lse, const float* delta, float* dk, float* dv) {
  extern __shared__ float smem_f32[];
  float* k_tile = smem_f32;
  float* v_tile = k_tile + kTileFloats<DP>;
  float* q_tile = v_tile + kTileFloats<DP>;
  float* do_tile = q_tile + kTileFloats<DP>;
  float* p_tile = do_tile + kTileFloats<DP>;
  float* ds_tile = p_tile + kScoreFloats;
  float* lse_log2 = ds_tile + kScoreFloats;  // of the tile's query rows
  float* tile_delta = lse_log2 + kTile;
  const Lane2d me = lane_2d();
  const int n0 = blockIdx.x * kTile, kv = blockIdx.y, b = blockIdx.z;
  load_tile<DP>(k_tile, k + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);
  load_tile<DP>(v_tile, v + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);

  float dk_acc[4][DP / 16] = {}, dv_acc[4][DP / 16] = {};
  const int first_m0 = pb.first_query(n0) / kTile * kTile;
  for (int h = kv * pb.group(); h < (kv + 1) * pb.group(); ++h) {
    for (int m0 = first_m0; m0 < pb.q_len; m0 += kTile) {
      __syncthreads();  // the last step's readers are done
      load_tile<DP>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim);
      load_tile<DP>(do_tile, d_out + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim);
      if (threadIdx.x < kTile) {
        const int t = m0 + threadIdx.x;
        const bool inside = t < pb.q_len;
        lse_log2[threadIdx.x] = inside ? lse[pb.row_stats(b, h) + t] * kLog2e : 0.f;
        tile_delta[threadIdx.x] = inside ? delta[pb.row_stats(b, h) + t] : 0.f;
      }
      __syncthreads();
      float st[4][4], dpt[4][4];
      dot_rows<DP>(st, k_tile, q_tile);
      dot_rows<DP>(dpt, v_tile, do_tile);
      const bool masked = !pb.tile_unmasked(m0, kTile, n0, kTile);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int col = me.tx + 16 * j;
          const bool hidden = masked && !pb.visible(m0 + col, n0 + 4 * me.ty + i);
          const float p = hidden ? 0.f : exp2f(st[i][j] * pb.scale_log2 - lse_log2[col]);
          p_tile[(4 * me.ty + i) * kScorePitch + col] = p;
          ds_tile[(4 * me.ty + i) * kScorePitch + col] = p * (dpt[i][j] - tile_delta[col]);
        }
      }
      __syncthreads();
      scores_times<DP>(dv_acc, p_tile, do_tile);
      scores_times<DP>(dk_acc, ds_tile, q_tile);
    }
  }
  store_rows<DP>(dk + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim, dk_acc,
                 pb.scale);
  store_rows<DP>(dv + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim, dv_acc, 1.f);
}

// dQ for one (query tile, head, batch) over the KV tiles it sees:
// dS = P ∘ (dO·Vᵀ − delta), dQ += dS·K·scale; written to dq, or added there (add_dq).
template <int DP>
__global__ void __launch_bounds__(kThreads)
    dq_f32_kernel(Problem pb, const float* q, const float* k, const float* v, const float* d_out,
                  const float* lse, const float* delta, float* dq, bool add_dq) {
  extern __shared__ float smem_f32[];
  float* q_tile = smem_f32;
  float* do_tile = q_tile + kTileFloats<DP>;
  float* k_tile = do_tile + kTileFloats<DP>;
  float* v_tile = k_tile + kTileFloats<DP>;
  float* ds_tile = v_tile + kTileFloats<DP>;
  const Lane2d me = lane_2d();
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kv = h / pb.group();
  load_tile<DP>(q_tile, q + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim);
  load_tile<DP>(do_tile, d_out + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim);
  float row_lse_log2[4], row_delta[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int t = m0 + 4 * me.ty + i;
    const bool inside = t < pb.q_len;
    row_lse_log2[i] = inside ? lse[pb.row_stats(b, h) + t] * kLog2e : 0.f;
    row_delta[i] = inside ? delta[pb.row_stats(b, h) + t] : 0.f;
  }

  float dq_acc[4][DP / 16] = {};
  const int key_end = pb.key_end(m0, kTile);
  for (int n0 = 0; n0 < key_end; n0 += kTile) {
    __syncthreads();  // the last tile's readers are done
    load_tile<DP>(k_tile, k + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);
    load_tile<DP>(v_tile, v + pb.kv_head(b, kv), pb.kv_stride(), n0, pb.k_len, pb.head_dim);
    __syncthreads();
    float s[4][4], dp[4][4];
    dot_rows<DP>(s, q_tile, k_tile);
    dot_rows<DP>(dp, do_tile, v_tile);
    const bool masked = !pb.tile_unmasked(m0, kTile, n0, kTile);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = me.tx + 16 * j;
        const bool hidden = masked && !pb.visible(m0 + 4 * me.ty + i, n0 + col);
        const float p = hidden ? 0.f : exp2f(s[i][j] * pb.scale_log2 - row_lse_log2[i]);
        ds_tile[(4 * me.ty + i) * kScorePitch + col] = p * (dp[i][j] - row_delta[i]);
      }
    }
    __syncthreads();
    scores_times<DP>(dq_acc, ds_tile, k_tile);
  }
  store_rows<DP>(dq + pb.q_head(b, h), pb.q_stride(), m0, pb.q_len, pb.head_dim, dq_acc, pb.scale,
                 add_dq);
}

// Calls f(std::integral_constant<int, DP>) with the padded head_dim DP ∈ {16, 32, 64, 128}.
template <typename F>
void with_padded_dim(int head_dim, F&& f) {
  if (head_dim <= 16) return f(std::integral_constant<int, 16>{});
  if (head_dim <= 32) return f(std::integral_constant<int, 32>{});
  if (head_dim <= 64) return f(std::integral_constant<int, 64>{});
  f(std::integral_constant<int, 128>{});
}

void forward_f32(const Problem& pb, const FlashForward& args) {
  with_padded_dim(pb.head_dim, [&](auto padded) {
    constexpr int DP = decltype(padded)::value;
    const dim3 grid(ceil_div(pb.q_len, kTile), pb.heads, pb.batch);
    launch(forward_f32_kernel<DP>, grid, kThreads,
           sizeof(float) * (3 * kTileFloats<DP> + kScoreFloats), pb,
           static_cast<const float*>(args.q), static_cast<const float*>(args.k),
           static_cast<const float*>(args.v), static_cast<float*>(args.out), args.lse);
  });
}

void backward_f32(const Problem& pb, const FlashBackward& args) {
  const auto* q = static_cast<const float*>(args.q);
  const auto* k = static_cast<const float*>(args.k);
  const auto* v = static_cast<const float*>(args.v);
  const auto* d_out = static_cast<const float*>(args.d_out);
  with_padded_dim(pb.head_dim, [&](auto padded) {
    constexpr int DP = decltype(padded)::value;
    launch(dkdv_f32_kernel<DP>, dim3(ceil_div(pb.k_len, kTile), pb.kv_heads, pb.batch), kThreads,
           sizeof(float) * (4 * kTileFloats<DP> + 2 * kScoreFloats + 2 * kTile), pb, q, k, v, d_out,
           args.lse, args.delta, static_cast<float*>(args.dk), static_cast<float*>(args.dv));
    launch(dq_f32_kernel<DP>, dim3(ceil_div(pb.q_len, kTile), pb.heads, pb.batch), kThreads,
           sizeof(float) * (4 * kTileFloats<DP> + kScoreFloats), pb, q, k, v, d_out, args.lse,
           args.delta, static_cast<float*>(args.dq), args.add_dq);
  });
}

void check_supported(const FlashDims& dims, DType dtype) {
  if (dtype == DType::f32) {
    if (dims.head_dim > 128)
      fail("attention: the f32 CUDA kernel takes head_dim up to 128, got {}", dims.head_dim);
  } else if (dtype == DType::bf16) {
    if (dims.head_dim != 64 && dims.head_dim != 128)
      fail("attention: the bf16 CUDA kernel takes head_dim 64 or 128, got {}", dims.head_dim);
  } else {
    fail("attention: the CUDA kernels take f32 or bf16 tensors, got {}", dtype_name(dtype));
  }
  if (dims.batch > 65535 || dims.heads > 65535 || dims.k_len > INT_MAX / 2)
    fail("attention: batch {} or heads {} over 65535, or {} keys over {}", dims.batch, dims.heads,
         dims.k_len, INT_MAX / 2);
}

}  // namespace

Problem make_problem(const FlashDims& dims) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(dims.head_dim));
  return {static_cast<int>(dims.batch),    static_cast<int>(dims.q_len),
          static_cast<int>(dims.k_len),    static_cast<int>(dims.heads),
          static_cast<int>(dims.kv_heads), static_cast<int>(dims.head_dim),
          static_cast<float>(scale),       static_cast<float>(scale * 1.4426950408889634)};
}

}  // namespace ssa::cuda::flash

namespace ssa::cuda {

void flash_attention_forward(const FlashDims& dims, DType dtype, const FlashForward& args) {
  flash::check_supported(dims, dtype);
  const flash::Problem pb = flash::make_problem(dims);
  if (dtype == DType::f32)
    flash::forward_f32(pb, args);
  else
    flash::forward_bf16(pb, args);
}

void flash_attention_backward(const FlashDims& dims, DType dtype, const FlashBackward& args) {
  flash::check_supported(dims, dtype);
  const flash::Problem pb = flash::make_problem(dims);
  if (dtype == DType::f32) {
    flash::compute_delta(pb, dtype, args);
    flash::backward_f32(pb, args);
  } else {
    flash::compute_delta(pb, dtype, args);
    flash::backward_bf16(pb, args);
  }
}

}  // namespace ssa::cuda
