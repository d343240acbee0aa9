#include <optional>
#include <type_traits>

#include "cuda/device.cuh"
#include "cuda/rmsnorm.h"

namespace ssa::cuda {
namespace {

constexpr int kColumns = 32, kRowLanes = 8;  // a column-sum block: columns x row lanes
constexpr int64_t kMinChunkRows = 64, kWaveSms = 128;

// A pack of kPack<T> elements kept as its 16 bytes (4 registers: bf16 pairs stay paired).
template <typename T>
__device__ uint4 load_bits(const T* p) {
  return *reinterpret_cast<const uint4*>(p);
}
__device__ inline uint32_t word(const uint4& bits, int w) {
  return w == 0 ? bits.x : w == 1 ? bits.y : w == 2 ? bits.z : bits.w;
}
// Element j of the pack, as a float (a bf16 is the high half of its float).
template <typename T>
__device__ float element(const uint4& bits, int j) {
  if constexpr (std::is_same_v<T, float>) return __uint_as_float(word(bits, j));
  const uint32_t w = word(bits, j / 2);
  return __uint_as_float(j % 2 == 0 ? w << 16 : w & 0xffff0000u);
}
// The pack of v[0..kPack<T>) rounded to T.
template <typename T>
__device__ uint4 pack_bits(const float (&v)[kPack<T>]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>)
      w[i] = __float_as_uint(v[i]);
    else
      w[i] = uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i]))} |
             uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i + 1]))} << 16;
  }
  return uint4{w[0], w[1], w[2], w[3]};
}

// What the norm reads: x, or x + residual rounded to T (the sum, also written out).
template <typename T>
struct NormInput {
  const T* x;
  const T* residual;  // null: the norm of x alone
  T* sum;

  __device__ float operator()(int64_t i) const {
    return residual == nullptr ? to_float(x[i])
                               : to_float(from_float<T>(to_float(x[i]) + to_float(residual[i])));
  }
  // The pack at i (16-byte aligned); the sum's pack, also written to sum, when adding.
  __device__ uint4 load_pack(int64_t i) const {
    const uint4 v = load_bits(x + i);
    if (residual == nullptr) return v;
    const uint4 r = load_bits(residual + i);
    float total[kPack<T>];
#pragma unroll
    for (int j = 0; j < kPack<T>; ++j) total[j] = element<T>(v, j) + element<T>(r, j);
    const uint4 rounded = pack_bits<T>(total);
    store_words(sum + i, rounded);
    return rounded;
  }
};

template <typename T>
__global__ void forward_kernel(NormInput<T> in, const T* weight, T* y, float* rstd, int64_t dim,
                               float eps) {
  const int64_t base = blockIdx.x * dim;
  float squares = 0;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float v = in(base + j);
    if (in.residual != nullptr) in.sum[base + j] = from_float<T>(v);
    squares += v * v;
  }
  squares = block_sum(squares);
  const float r = 1.0f / sqrtf(squares / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    y[base + j] = from_float<T>(in(base + j) * r * to_float(weight[j]));
}

// The norm's input gradient `own` plus `through`, the gradient that reaches a residual sum past
// its norm, summed as autograd sums two gradients: own rounded to T first, then added in f32
// (the caller rounds the sum once more).
template <typename T>
__device__ float plus_through(float own, float through) {
  return to_float(from_float<T>(own)) + through;
}

// d_through (or null) is added to dx (plus_through).
template <typename T>
__global__ void input_gradient_kernel(const T* x, const T* weight, const T* dy, const T* d_through,
                                      const float* rstd, T* dx, int64_t dim) {
  const int64_t base = blockIdx.x * dim;
  const float r = rstd[blockIdx.x];
  float dot = 0;  // Σ_j dy_j w_j x_j; times r it is Σ_j dx̂_j x̂_j
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    dot += to_float(dy[base + j]) * to_float(weight[j]) * to_float(x[base + j]);
  const float mean_dot = block_sum(dot) * r / static_cast<float>(dim);
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float x_hat = to_float(x[base + j]) * r;
    const float own = r * (to_float(dy[base + j]) * to_float(weight[j]) - x_hat * mean_dot);
    dx[base + j] = from_float<T>(
        d_through == nullptr ? own : plus_through<T>(own, to_float(d_through[base + j])));
  }
}

// The row kernels: one warp per row, the row in registers. Lane l holds the packs l, l + 32,
// ... of the row (kPieces of them; those past dim stay empty), so each load instruction of the
// warp reads 512 consecutive bytes.
constexpr int kRowWarps = kThreads / kWarp;  // rows per block
constexpr unsigned kAllLanes = 0xffffffffu;

template <typename T>
__device__ int piece_column(int piece) {
  return (piece * kWarp + static_cast<int>(threadIdx.x) % kWarp) * kPack<T>;
}
__device__ inline int64_t warp_row() {
  return blockIdx.x * int64_t(kRowWarps) + threadIdx.x / kWarp;
}
// Every lane gets lane 0's warp_sum.
__device__ inline float warp_total(float v) { return __shfl_sync(kAllLanes, warp_sum(v), 0); }

// Blocks per SM the row kernels are built for: the row's packs stay in registers (kept as T,
// converted to float where used), so rows of more pieces need more registers.
template <int kPieces>
constexpr int kForwardBlocksPerSm = kPieces <= 4 ? 6 : 4;
template <int kPieces>
constexpr int kBackwardBlocksPerSm = kPieces <= 4 ? 3 : 2;

template <typename T, int kPieces>
__global__ void __launch_bounds__(kThreads, kForwardBlocksPerSm<kPieces>)
    forward_rows_kernel(NormInput<T> in, const T* weight, T* y, float* rstd, int64_t rows, int dim,
                        float eps) {
  constexpr int P = kPack<T>;
  const int64_t row = warp_row();
  if (row >= rows) return;  // whole warps
  uint4 v[kPieces];
  float squares = 0;
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    if (piece_column<T>(k) >= dim) continue;
    v[k] = in.load_pack(row * dim + piece_column<T>(k));
#pragma unroll
    for (int j = 0; j < P; ++j) squares += element<T>(v[k], j) * element<T>(v[k], j);
  }
  const float r = 1.0f / sqrtf(warp_total(squares) / static_cast<float>(dim) + eps);
  if (threadIdx.x % kWarp == 0) rstd[row] = r;
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    const int col = piece_column<T>(k);
    if (col >= dim) continue;
    float out[P];
    load_floats(weight + col, out);
#pragma unroll
    for (int j = 0; j < P; ++j) out[j] = element<T>(v[k], j) * r * out[j];
    store_floats(y + row * dim + col, out);
  }
}

// The backward row kernel: one block per chunk of chunk_rows rows, its warps taking the rows
// warp, warp + kRowWarps, ... . Each row's dx as input_gradient_kernel (skipped when dx is null;
// d_through, when not null, added by plus_through), from the row's x, dy and d_through packs,
// loaded together into registers. With partial not null, also partial[chunk, j] = Σ over the
// chunk's rows of dy[r, j] · x[r, j] · rstd[r]: each warp sums its rows in order into its own
// slice of shared memory (kRowWarps · kPieces · kWarp · P floats, slot (k · P/4 + h) · kWarp +
// lane holding the 4 columns from piece_column(k) + 4h), then the warps' sums are added in warp
// order.
template <typename T, int kPieces>
__global__ void __launch_bounds__(kThreads, kBackwardBlocksPerSm<kPieces>)
    backward_rows_kernel(const T* x, const T* weight, const T* dy, const T* d_through,
                         const float* rstd, T* dx, float* partial, int64_t rows, int dim,
                         int64_t chunk_rows) {
  constexpr int P = kPack<T>, kQuads = P / 4, kSlots = kPieces * kQuads * kWarp;
  extern __shared__ float4 warp_sums[];  // [kRowWarps][kSlots]
  const int warp = static_cast<int>(threadIdx.x) / kWarp, lane = threadIdx.x % kWarp;
  float4* dw = warp_sums + warp * kSlots + lane;  // the lane's slots, kWarp apart
#pragma unroll
  for (int q = 0; q < kPieces * kQuads; ++q) dw[q * kWarp] = float4{};
  const int64_t end = min(rows, (blockIdx.x + 1) * chunk_rows);
  for (int64_t row = blockIdx.x * chunk_rows + warp; row < end; row += kRowWarps) {
    uint4 xs[kPieces], gs[kPieces], ts[kPieces];
#pragma unroll
    for (int k = 0; k < kPieces; ++k) {
      const int col = piece_column<T>(k);
      if (col >= dim) continue;
      xs[k] = load_bits(x + row * dim + col);
      gs[k] = load_bits(dy + row * dim + col);
      if (d_through != nullptr) ts[k] = load_bits(d_through + row * dim + col);
    }
    const float r = rstd[row];
    float dot = 0;  // Σ_j dy_j w_j x_j; times r it is Σ_j dx̂_j x̂_j
#pragma unroll
    for (int k = 0; k < kPieces; ++k) {
      const int col = piece_column<T>(k);
      if (col >= dim) continue;
      float w[P];
      load_floats(weight + col, w);
#pragma unroll
      for (int j = 0; j < P; ++j) dot += element<T>(gs[k], j) * w[j] * element<T>(xs[k], j);
    }
    const float mean_dot = warp_total(dot) * r / static_cast<float>(dim);
#pragma unroll
    for (int k = 0; k < kPieces; ++k) {
      const int col = piece_column<T>(k);
      if (col >= dim) continue;
      float w[P], out[P], terms[P];
      load_floats(weight + col, w);
#pragma unroll
      for (int j = 0; j < P; ++j) {
        const float g = element<T>(gs[k], j), xj = element<T>(xs[k], j);
        terms[j] = g * xj * r;
        out[j] = r * (g * w[j] - xj * r * mean_dot);
        if (d_through != nullptr) out[j] = plus_through<T>(out[j], element<T>(ts[k], j));
      }
#pragma unroll
      for (int h = 0; h < kQuads; ++h) {
        float4& sum = dw[(k * kQuads + h) * kWarp];
        sum = float4{sum.x + terms[4 * h], sum.y + terms[4 * h + 1], sum.z + terms[4 * h + 2],
                     sum.w + terms[4 * h + 3]};
      }
      if (dx != nullptr) store_floats(dx + row * dim + col, out);
    }
  }
  if (partial == nullptr) return;  // the whole block
  __syncthreads();
  for (int slot = threadIdx.x; slot < kSlots; slot += blockDim.x) {
    const int col =
        ((slot / (kQuads * kWarp)) * kWarp + slot % kWarp) * P + slot / kWarp % kQuads * 4;
    if (col >= dim) continue;
    float4 sum = warp_sums[slot];
    for (int w = 1; w < kRowWarps; ++w) {
      const float4 more = warp_sums[w * kSlots + slot];
      sum = float4{sum.x + more.x, sum.y + more.y, sum.z + more.z, sum.w + more.w};
    }
    *reinterpret_cast<float4*>(partial + blockIdx.x * int64_t(dim) + col) = sum;
  }
}

// Column sums in a fixed order: out[c, j] = Σ_{r in chunk c} term(r, j), for 32 columns per
// block; the blockDim.y row lanes each sum every blockDim.y-th row of the chunk, then the lanes'
// sums are added in lane order.
template <typename Term, typename Out>
__global__ void column_sums_kernel(Term term, Out* out, int64_t rows, int64_t dim,
                                   int64_t chunk_rows) {
  __shared__ float lane_sums[kWarp][kColumns + 1];
  const int64_t j = blockIdx.x * int64_t(kColumns) + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk_rows, end = min(rows, begin + chunk_rows);
  float sum = 0;
  if (j < dim)
    for (int64_t r = begin + threadIdx.y; r < end; r += blockDim.y) sum += term(r, j);
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || j >= dim) return;
  for (int lane = 1; lane < int(blockDim.y); ++lane) sum += lane_sums[lane][threadIdx.x];
  out[blockIdx.y * dim + j] = from_float<Out>(sum);
}

// dy[r, j] · x[r, j] · rstd[r]: the terms of the weight gradient.
template <typename T>
struct WeightTerm {
  const T* x;
  const T* dy;
  const float* rstd;
  int64_t dim;
  __device__ float operator()(int64_t r, int64_t j) const {
    return to_float(dy[r * dim + j]) * to_float(x[r * dim + j]) * rstd[r];
  }
};

struct PartialTerm {
  const float* partial;
  int64_t dim;
  __device__ float operator()(int64_t chunk, int64_t j) const { return partial[chunk * dim + j]; }
};

template <typename Term, typename Out>
void launch_column_sums(Term term, Out* out, int64_t rows, int64_t dim, int64_t chunk_rows,
                        int row_lanes) {
  const dim3 grid(static_cast<unsigned>((dim + kColumns - 1) / kColumns),
                  static_cast<unsigned>((rows + chunk_rows - 1) / chunk_rows));
  column_sums_kernel<<<grid, dim3(kColumns, row_lanes), 0, compute_stream()>>>(term, out, rows, dim,
                                                                               chunk_rows);
  check_launch();
}

// Launches a row kernel through launch(std::integral_constant<int, pieces>) with the fewest
// pieces (1, 2, 4 or 8) that hold a row; false (nothing launched) when the row kernels do not
// take the shape: dim not a multiple of kPack<T>, a pointer not 16-byte aligned, or a row of
// over 8 pieces.
template <typename T, typename Launch>
bool launch_rows(int64_t dim, std::initializer_list<const void*> pointers, Launch launch) {
  constexpr int64_t kPerPiece = int64_t{kWarp} * kPack<T>;
  if (dim % kPack<T> != 0 || !packs_aligned(pointers)) return false;
  const int64_t pieces = (dim + kPerPiece - 1) / kPerPiece;
  if (pieces <= 1)
    launch(std::integral_constant<int, 1>{});
  else if (pieces <= 2)
    launch(std::integral_constant<int, 2>{});
  else if (pieces <= 4)
    launch(std::integral_constant<int, 4>{});
  else if (pieces <= 8)
    launch(std::integral_constant<int, 8>{});
  else
    return false;
  return true;
}

unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>((rows + kRowWarps - 1) / kRowWarps);
}

// Rows per chunk of the weight gradient's partial sums: at least kMinChunkRows, at most one
// wave of the backward row kernel on a GPU of kWaveSms SMs (or more). The chunking depends on the
// shape only, never on the device.
template <typename T>
int64_t chunk_rows_for(int64_t rows, int64_t dim) {
  const int64_t pieces = (dim + kWarp * kPack<T> - 1) / (kWarp * kPack<T>);
  const int64_t max_chunks =
      kWaveSms * (pieces <= 4 ? kBackwardBlocksPerSm<4> : kBackwardBlocksPerSm<8>);
  const int64_t chunks =
      std::clamp<int64_t>((rows + kMinChunkRows - 1) / kMinChunkRows, 1, max_chunks);
  return (rows + chunks - 1) / chunks;
}

}  // namespace

void rmsnorm_forward(const void* x, const void* weight, void* y, float* rstd, DType dtype,
                     int64_t rows, int64_t dim, double eps, const void* residual, void* sum) {
  if (rows == 0) return;
  with_storage_type(dtype, "rmsnorm", [&](auto zero) {
    using T = decltype(zero);
    const NormInput<T> in{static_cast<const T*>(x), static_cast<const T*>(residual),
                          static_cast<T*>(sum)};
    const bool by_rows = launch_rows<T>(dim, {x, weight, y, residual, sum}, [&](auto pieces) {
      forward_rows_kernel<T, pieces.value><<<row_blocks(rows), kThreads, 0, compute_stream()>>>(
          in, static_cast<const T*>(weight), static_cast<T*>(y), rstd, rows, static_cast<int>(dim),
          static_cast<float>(eps));
    });
    if (!by_rows)
      forward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(
          in, static_cast<const T*>(weight), static_cast<T*>(y), rstd, dim,
          static_cast<float>(eps));
    check_launch();
  });
}

void rmsnorm_backward(const void* x, const void* weight, const void* dy, const float* rstd,
                      void* dx, void* dw, DType dtype, int64_t rows, int64_t dim,
                      const void* d_through) {
  if (rows == 0) return;
  with_storage_type(dtype, "rmsnorm backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t chunk_rows = chunk_rows_for<T>(rows, dim);
    const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
    std::optional<DeviceScratch> partial;
    if (dw != nullptr) partial.emplace(chunks * dim * sizeof(float));
    float* sums = dw != nullptr ? partial->as<float>() : nullptr;
    const auto* x_t = static_cast<const T*>(x);
    const auto* dy_t = static_cast<const T*>(dy);
    const auto* through = static_cast<const T*>(d_through);
    const bool by_rows = launch_rows<T>(dim, {x, weight, dy, dx, d_through}, [&](auto pieces) {
      const size_t warp_sums = sizeof(float) * kRowWarps * pieces.value * kWarp * kPack<T>;
      launch(backward_rows_kernel<T, pieces.value>, dim3(static_cast<unsigned>(chunks)), kThreads,
             warp_sums, x_t, static_cast<const T*>(weight), dy_t, through, rstd,
             static_cast<T*>(dx), sums, rows, static_cast<int>(dim), chunk_rows);
    });
    if (!by_rows && dx != nullptr)
      input_gradient_kernel<<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(
          x_t, static_cast<const T*>(weight), dy_t, through, rstd, static_cast<T*>(dx), dim);
    check_launch();
    if (!by_rows && dw != nullptr)
      launch_column_sums(WeightTerm<T>{x_t, dy_t, rstd, dim}, sums, rows, dim, chunk_rows,
                         kRowLanes);
    if (dw != nullptr)
      launch_column_sums(PartialTerm{sums, dim}, static_cast<T*>(dw), chunks, dim, chunks, kWarp);
  });
}

}  // namespace ssa::cuda
