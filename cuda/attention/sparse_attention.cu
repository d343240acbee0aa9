// Attention over the selected blocks (cuda/attention/sparse_attention.h): forward and dQ here,
// dK/dV in sparse_attention_dkdv.cu, their shared pieces in sparse_tiles.cuh.
// One kernel body per pass serves both dtypes: bf16 tiles go through the tensor cores
// (cuda/attention/mma.cuh), f32 tiles through fp32 FMAs with the same fragment layout.
//
// Forward and dQ: a warp owns 16 rows of one KV group, the rows f = t·G + i (query t, head
// kv·G + i) in order, so the group's heads of one query share every key load and, for G < 16,
// 16 / G neighbouring queries fill the tile. It walks the union of its queries' selected
// blocks in 16-key chunks; a row sees a chunk's key n when its query selected the block and
// n ≤ its position.
#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "cuda/attention/sparse_attention.h"
#include "cuda/attention/sparse_attention_dkdv.cuh"
#include "cuda/attention/sparse_tiles.cuh"

namespace ssa::cuda {
namespace {

using namespace sparse;

// ------------------------------------------------------------------ forward

template <typename T>
struct ForwardPointers {
  const T *q, *k, *v;
  const int32_t* selection;
  T* out;
  float* lse;
};

// Per warp: Q [16][P], K [2][16][P], V [2][16][P], fp32 scratch.
template <typename T, int D>
constexpr size_t kForwardWarpBytes = sizeof(T) * 5 * kRows* kPitch<T, D> +
                                     sizeof(float) * kScratchFloats<T>;

// Grid (tiles of 4 × 16 group rows, KV heads, batch). K/V chunks double-buffered.
template <typename T, int D>
__global__ void __launch_bounds__(kWarpThreads)
    forward_kernel(Geometry geo, ForwardPointers<T> ptr) {
  constexpr int P = kPitch<T, D>, kTile = kRows * P;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, kv = blockIdx.y, b = blockIdx.z;
  const int f0 = (blockIdx.x * kWarps + warp) * kRows;
  if (f0 >= geo.group_rows()) return;  // the whole warp; warps never wait for each other
  T* q_tile = reinterpret_cast<T*>(smem_raw + warp * kForwardWarpBytes<T, D>);
  T* k_tiles = q_tile + kTile;
  T* v_tiles = k_tiles + 2 * kTile;
  float* scratch = reinterpret_cast<float*>(v_tiles + 2 * kTile);
  const int g = geo.group();
  const int last_f = min(f0 + kRows, geo.group_rows()) - 1;
  ChunkWalk walk(geo, ptr.selection, b, kv, f0 / g, last_f / g);
  const LaneRows rows = lane_rows(geo, b, kv, f0);

  load_rows<T, D, kRows>([&](int r) { return geo.group_row(b, kv, f0 + r); },
                         TileSource<T>{q_tile, ptr.q});
  bool more = walk.next();
  if (more) load_keys<T, D>({k_tiles, ptr.k}, {v_tiles, ptr.v}, geo, b, kv, walk.key0);
  cp_async_commit();

  OnlineSoftmax softmax;
  float o[1][D / 8][4] = {};
  for (int stage = 0; more; stage ^= 1) {
    const int key0 = walk.key0;
    const unsigned positions = walk.positions;
    more = walk.next();
    if (more) {
      load_keys<T, D>({k_tiles + (stage ^ 1) * kTile, ptr.k},
                      {v_tiles + (stage ^ 1) * kTile, ptr.v}, geo, b, kv, walk.key0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    float s[1][2][4] = {};
    tile_a_bt<D / 16, 2, P>(s, q_tile, k_tiles + stage * kTile);
    mask_unseen(s[0], rows, positions, key0);
    softmax.update(s[0], o[0], geo.scale_log2);
    tile_s_b<1, D / 8, P>(o, s, v_tiles + stage * kTile, scratch);
    __syncwarp();  // the stage is refilled next step
  }

  float inverse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float total = quad_sum(softmax.sum[half]);
    inverse[half] = 1.f / total;
    if (rows.row[half] >= 0 && threadIdx.x % 4 == 0)
      ptr.lse[rows.row[half]] = (softmax.max[half] * geo.scale_log2 + log2f(total)) * kLn2;
  }
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[0][dt][e] *= inverse[e >> 1];
  store_rows<D>(ptr.out, o[0], 1.f, [&](int r) { return geo.group_row(b, kv, f0 + r); });
}

// ------------------------------------------------------------------ backward

// Per warp: Q, dO [16][P], K [2][16][P], V [2][16][P], fp32 scratch.
template <typename T, int D>
constexpr size_t kDqWarpBytes = sizeof(T) * 6 * kRows* kPitch<T, D> +
                                sizeof(float) * kScratchFloats<T>;

// Row r's delta = rowsum(dO ∘ O) from the tiles, in lanes 2r and 2r + 1 (each sums half of
// the row, then the pair adds).
template <typename T, int D>
__device__ inline float tile_row_delta(const T* do_tile, const T* o_tile) {
  constexpr int kHalf = D / 2, kStep = kPack<T>;
  const int lane = lane_index();
  const int at = lane / 2 * kPitch<T, D> + lane % 2 * kHalf;
  float sum = 0;
#pragma unroll
  for (int c = 0; c < kHalf; c += kStep) {
    float g[kStep], o[kStep];
    load_floats(do_tile + at + c, g);
    load_floats(o_tile + at + c, o);
#pragma unroll
    for (int j = 0; j < kStep; ++j) sum = fmaf(g[j], o[j], sum);
  }
  return sum + __shfl_xor_sync(kFullMask, sum, 1);
}

// dQ for 16 group rows per warp over the chunks they read: dS = P ∘ (dO·Vᵀ − delta),
// dQ += dS·K (times scale at the end). Grid as the forward's. Each warp first computes its
// rows' delta from dO and O (O staged in the second K stage, free until the second chunk) and
// writes it for the dK/dV pass.
template <typename T, int D>
__global__ void __launch_bounds__(kWarpThreads) dq_kernel(Geometry geo, BackwardPointers<T> ptr) {
  constexpr int P = kPitch<T, D>, kTile = kRows * P;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / 32, kv = blockIdx.y, b = blockIdx.z;
  const int f0 = (blockIdx.x * kWarps + warp) * kRows;
  if (f0 >= geo.group_rows()) return;
  T* q_tile = reinterpret_cast<T*>(smem_raw + warp * kDqWarpBytes<T, D>);
  T* do_tile = q_tile + kTile;
  T* k_tiles = do_tile + kTile;
  T* v_tiles = k_tiles + 2 * kTile;
  float* scratch = reinterpret_cast<float*>(v_tiles + 2 * kTile);
  const int g = geo.group();
  const int last_f = min(f0 + kRows, geo.group_rows()) - 1;
  ChunkWalk walk(geo, ptr.selection, b, kv, f0 / g, last_f / g);
  const LaneRows rows = lane_rows(geo, b, kv, f0);
  auto row_of = [&](int r) { return geo.group_row(b, kv, f0 + r); };

  T* o_tile = k_tiles + kTile;
  load_rows<T, D, kRows>(row_of, TileSource<T>{q_tile, ptr.q}, TileSource<T>{do_tile, ptr.d_out},
                         TileSource<T>{o_tile, ptr.out});
  bool more = walk.next();
  if (more) load_keys<T, D>({k_tiles, ptr.k}, {v_tiles, ptr.v}, geo, b, kv, walk.key0);
  cp_async_commit();
  float lse_log2[2];
#pragma unroll
  for (int half = 0; half < 2; ++half)
    lse_log2[half] = rows.row[half] >= 0 ? ptr.lse[rows.row[half]] * kLog2e : 0.f;
  cp_async_wait<0>();
  __syncwarp();
  const float row_delta = tile_row_delta<T, D>(do_tile, o_tile);
  if (lane_index() % 2 == 0 && row_of(lane_index() / 2) >= 0)
    ptr.delta[row_of(lane_index() / 2)] = row_delta;
  float delta[2];
#pragma unroll
  for (int half = 0; half < 2; ++half)
    delta[half] = __shfl_sync(kFullMask, row_delta, 2 * frag_row(2 * half));
  __syncwarp();  // o_tile is refilled by the first step

  float dq[1][D / 8][4] = {};
  for (int stage = 0; more; stage ^= 1) {
    const int key0 = walk.key0;
    const unsigned positions = walk.positions;
    more = walk.next();
    if (more) {
      load_keys<T, D>({k_tiles + (stage ^ 1) * kTile, ptr.k},
                      {v_tiles + (stage ^ 1) * kTile, ptr.v}, geo, b, kv, walk.key0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const T* k_tile = k_tiles + stage * kTile;
    float s[1][2][4] = {}, ds[1][2][4] = {};
    tile_a_bt<D / 16, 2, P>(s, q_tile, k_tile);
    tile_a_bt<D / 16, 2, P>(ds, do_tile, v_tiles + stage * kTile);
    mask_unseen(s[0], rows, positions, key0);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1;
        const float p = fast_exp2(fmaf(s[0][nt][e], geo.scale_log2, -lse_log2[half]));
        ds[0][nt][e] = p * (ds[0][nt][e] - delta[half]);
      }
    }
    tile_s_b<1, D / 8, P>(dq, ds, k_tile, scratch);
    __syncwarp();  // the stage is refilled next step
  }
  store_rows<D>(ptr.dq, dq[0], geo.scale, row_of, ptr.add_dq);
}

// ------------------------------------------------------------------ launchers

Geometry make_geometry(const SparseDims& dims) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(dims.head_dim));
  return {static_cast<int>(dims.batch),
          static_cast<int>(dims.q_len),
          static_cast<int>(dims.k_len),
          static_cast<int>(dims.heads),
          static_cast<int>(dims.kv_heads),
          static_cast<int>(dims.block_size),
          static_cast<int>(dims.width),
          static_cast<float>(scale),
          static_cast<float>(scale * 1.4426950408889634)};
}

// Grid of the forward and dQ kernels: 4 tiles of 16 group rows per CTA.
dim3 row_tile_grid(const Geometry& geo) {
  return dim3(ceil_div(ceil_div(geo.group_rows(), kRows), kWarps), geo.kv_heads, geo.batch);
}

template <typename T, int D>
void forward_for(const Geometry& geo, const SparseForward& args) {
  const ForwardPointers<T> ptr{static_cast<const T*>(args.q), static_cast<const T*>(args.k),
                               static_cast<const T*>(args.v), args.selection,
                               static_cast<T*>(args.out),     args.lse};
  launch(forward_kernel<T, D>, row_tile_grid(geo), kWarpThreads, kWarps * kForwardWarpBytes<T, D>,
         geo, ptr);
}

template <typename T, int D>
void backward_for(const SparseDims& dims, const Geometry& geo, const SparseBackward& args) {
  const int64_t rows = dims.batch * dims.q_len * dims.heads;
  DeviceScratch delta(rows * sizeof(float));
  const BackwardPointers<T> ptr{static_cast<const T*>(args.q),
                                static_cast<const T*>(args.k),
                                static_cast<const T*>(args.v),
                                static_cast<const T*>(args.out),
                                static_cast<const T*>(args.d_out),
                                args.selection,
                                args.lse,
                                delta.as<float>(),
                                static_cast<T*>(args.dq),
                                static_cast<T*>(args.dk),
                                static_cast<T*>(args.dv),
                                args.add_dq};
  launch(dq_kernel<T, D>, row_tile_grid(geo), kWarpThreads, kWarps * kDqWarpBytes<T, D>, geo, ptr);

  dkdv<T, D>(dims, geo, ptr);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void check_supported(const SparseDims& dims, DType dtype, const char* op,
                     std::initializer_list<const void*> pointers) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    fail("{}: the CUDA kernels take f32 or bf16 tensors, got {}", op, dtype_name(dtype));
  if (dims.head_dim != 64 && dims.head_dim != 128)
    fail("{}: the CUDA kernels take head_dim 64 or 128, got {}", op, dims.head_dim);
  if (dims.block_size % kRows != 0)
    fail("{}: the CUDA kernels take a block size that is a multiple of 16, got {}", op,
         dims.block_size);
  if (dims.batch > 65535 || dims.kv_heads > 65535 ||
      dims.batch * dims.q_len * dims.kv_heads * dims.width > INT_MAX ||
      dims.q_len * dims.heads > INT_MAX || dims.k_len > INT_MAX / 2)
    fail("{}: batch {}, {} KV heads, {} queries or {} keys are over the CUDA kernels' range", op,
         dims.batch, dims.kv_heads, dims.q_len, dims.k_len);
  for (const void* p : pointers)
    SSA_CHECK(aligned16(p), "{}: CUDA tensors must start on 16-byte boundaries", op);
}

}  // namespace

void sparse_attention_forward(const SparseDims& dims, DType dtype, const SparseForward& args) {
  check_supported(dims, dtype, "sparse_attention", {args.q, args.k, args.v, args.out});
  const Geometry geo = make_geometry(dims);
  with_storage_type(dtype, "sparse_attention", [&](auto zero) {
    using T = decltype(zero);
    if (dims.head_dim == 64)
      forward_for<T, 64>(geo, args);
    else
      forward_for<T, 128>(geo, args);
  });
}

void sparse_attention_backward(const SparseDims& dims, DType dtype, const SparseBackward& args) {
  check_supported(dims, dtype, "sparse_attention backward",
                  {args.q, args.k, args.v, args.out, args.d_out, args.dq, args.dk, args.dv});
  if (dims.batch * dims.q_len == 0) {  // no query reads a key
    fill(args.dk, dtype, 0.0, dims.batch * dims.k_len * dims.kv_heads * dims.head_dim);
    fill(args.dv, dtype, 0.0, dims.batch * dims.k_len * dims.kv_heads * dims.head_dim);
    return;
  }
  const Geometry geo = make_geometry(dims);
  with_storage_type(dtype, "sparse_attention backward", [&](auto zero) {
    using T = decltype(zero);
    if (dims.head_dim == 64)
      backward_for<T, 64>(dims, geo, args);
    else
      backward_for<T, 128>(dims, geo, args);
  });
}

}  // namespace ssa::cuda
