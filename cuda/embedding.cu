#include <climits>
#include <cub/device/device_radix_sort.cuh>

#include "cuda/device.cuh"
#include "cuda/embedding.h"

namespace ssa::cuda {
namespace {

template <typename T>
struct Gather {
  const int32_t* ids;
  const T* table;
  T* out;
  int64_t dim;
  __device__ void operator()(int64_t i) const {
    const int64_t token = i / dim;
    out[i] = table[ids[token] * dim + (i - token * dim)];
  }
};

// One 16-byte pack of a row per index (dim a multiple of kPack<T>).
template <typename T>
struct GatherPacks {
  const int32_t* ids;
  const Pack<T>* table;
  Pack<T>* out;
  int64_t packs_per_row;
  __device__ void operator()(int64_t i) const {
    const int64_t token = i / packs_per_row;
    out[i] = table[ids[token] * packs_per_row + (i - token * packs_per_row)];
  }
};

struct Iota {
  int32_t* out;
  __device__ void operator()(int64_t i) const { out[i] = static_cast<int32_t>(i); }
};

// run_begin[id]: the first sorted position of id's run (written for the ids tokens have).
struct MarkRunBegins {
  const uint32_t* sorted_ids;
  int32_t* run_begin;
  __device__ void operator()(int64_t p) const {
    const uint32_t id = sorted_ids[p];
    if (p == 0 || sorted_ids[p - 1] != id) run_begin[id] = static_cast<int32_t>(p);
  }
};

// The table gradient added into an f32 gradient over fixed chunks of kChunk sorted positions, so
// that an id of many tokens (a frequent word) is summed by many warps; rows no token uses are
// not touched.
// 1. chunk_sums_kernel: one warp per (chunk, column slice) sums each run of equal ids inside its
//    chunk in token order (the sort is stable). A run inside the chunk is its id's whole sum,
//    added to grad; a run that began in an earlier chunk goes to the chunk's slot `earlier`, one
//    that began here and goes on past the chunk to slot `later`.
// 2. finish_runs_kernel: one warp per (chunk, column slice); where the chunk's first run began
//    in an earlier chunk c0 and ends in this chunk c1, it adds the run's sum to grad:
//    later[c0] + earlier[c0 + 1] + ... + earlier[c1], in chunk order.
// A column slice is 32 runs of P columns, one per lane; slots hold [chunks, 2, dim] floats.
constexpr int kChunk = 32;          // sorted positions per chunk
constexpr int kRowWarps = 8;        // warps per block
constexpr int kPositionsAhead = 4;  // dout rows (and grad rows) loaded before the first add
constexpr int kSlotsAhead = 4;      // slots loaded before the first add
constexpr unsigned kAllLanes = 0xffffffffu;

struct Slice {
  int64_t unit, col;  // the warp's unit (chunk or table row) and the lane's first column
};
// A unit's dim columns in slices of one warp's P-column runs.
__host__ __device__ inline int64_t column_slices(int64_t dim, int pack) {
  return (dim + kWarp * pack - 1) / (kWarp * pack);
}
template <int P>
__device__ Slice warp_slice(int64_t dim) {
  const int64_t slices = column_slices(dim, P);
  const int64_t warp = blockIdx.x * int64_t(kRowWarps) + threadIdx.x / kWarp;
  const int64_t unit = warp / slices;
  return {unit, ((warp - unit * slices) * kWarp + threadIdx.x % kWarp) * P};
}

template <int P>
__device__ void add_floats(float* p, const float (&sum)[P]) {
  float row[P];
  load_floats(p, row);
#pragma unroll
  for (int j = 0; j < P; ++j) row[j] += sum[j];
  store_floats(p, row);
}

// The chunk's kChunk = 32 sorted ids and positions are held one per lane and passed round by
// shuffles; lanes past dim only take part in them. Position q ends a run where the next id
// differs; the run began in an earlier chunk exactly when its id is the one before the chunk
// (ids are sorted). A run that neither began earlier nor goes on past the chunk is added to its
// grad row, whose values are loaded with the dout rows, ahead of the adds.
template <typename T, int P>
__global__ void chunk_sums_kernel(const uint32_t* sorted_ids, const int32_t* positions,
                                  const T* dout, float* grad, float* slots, int64_t tokens,
                                  int64_t dim) {
  static_assert(kChunk == kWarp);
  const Slice at = warp_slice<P>(dim);
  const int64_t first = at.unit * kChunk;
  if (first >= tokens) return;  // whole warps
  const bool inside = at.col < dim;
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int count = static_cast<int>(min(int64_t{kChunk}, tokens - first));
  const uint32_t lane_id = lane < count ? sorted_ids[first + lane] : UINT32_MAX;
  const int32_t lane_position = lane < count ? positions[first + lane] : 0;
  const uint32_t before = first > 0 ? sorted_ids[first - 1] : UINT32_MAX;
  const uint32_t after = first + count < tokens ? sorted_ids[first + count] : UINT32_MAX;
  float sum[P] = {};
  for (int base = 0; base < count; base += kPositionsAhead) {
    Values<T, P> rows[kPositionsAhead];
    float sums_so_far[kPositionsAhead][P];  // grad rows of the runs added at q
    uint32_t ids[kPositionsAhead];
    bool goes_on[kPositionsAhead];  // q's run goes on at q + 1 (in the chunk or past it)
#pragma unroll
    for (int u = 0; u < kPositionsAhead; ++u) {
      const int q = base + u;
      const int64_t position = __shfl_sync(kAllLanes, lane_position, q);
      ids[u] = __shfl_sync(kAllLanes, lane_id, q);
      const uint32_t following = __shfl_sync(kAllLanes, lane_id, (q + 1) % kWarp);
      goes_on[u] = (q + 1 < count ? following : after) == ids[u];
      if (inside && q < count) {
        rows[u] = values_at<P>(dout + position * dim + at.col, 0);
        if (!goes_on[u] && before != ids[u])
          load_floats(grad + ids[u] * dim + at.col, sums_so_far[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kPositionsAhead; ++u) {
      const int q = base + u;
      if (q >= count) break;
#pragma unroll
      for (int j = 0; j < P; ++j) sum[j] += to_float(rows[u].v[j]);
      if (goes_on[u] && q + 1 < count) continue;
      const bool began_earlier = before == ids[u];
      if (inside && (began_earlier || goes_on[u])) {
        store_floats(slots + (at.unit * 2 + (began_earlier ? 0 : 1)) * dim + at.col, sum);
      } else if (inside) {
#pragma unroll
        for (int j = 0; j < P; ++j) sums_so_far[u][j] += sum[j];
        store_floats(grad + ids[u] * dim + at.col, sums_so_far[u]);
      }
#pragma unroll
      for (int j = 0; j < P; ++j) sum[j] = 0;
    }
  }
}

template <int P>
__global__ void finish_runs_kernel(const uint32_t* sorted_ids, const int32_t* run_begin,
                                   const float* slots, float* grad, int64_t tokens, int64_t dim) {
  const Slice at = warp_slice<P>(dim);
  const int64_t first = at.unit * kChunk, after = first + kChunk;
  if (first >= tokens || at.col >= dim) return;
  const uint32_t id = sorted_ids[first];
  const bool began_earlier = first > 0 && sorted_ids[first - 1] == id;
  const bool ends_here = after >= tokens || sorted_ids[after] != id;
  if (!began_earlier || !ends_here) return;
  const int64_t c0 = run_begin[id] / kChunk, c1 = at.unit;
  float sum[P] = {};
  for (int64_t base = c0; base <= c1; base += kSlotsAhead) {
    float parts[kSlotsAhead][P];
#pragma unroll
    for (int u = 0; u < kSlotsAhead; ++u)
      if (base + u <= c1)
        load_floats(slots + ((base + u) * 2 + (base + u == c0 ? 1 : 0)) * dim + at.col, parts[u]);
#pragma unroll
    for (int u = 0; u < kSlotsAhead; ++u)
#pragma unroll
      for (int j = 0; j < P; ++j)
        if (base + u <= c1) sum[j] += parts[u][j];
  }
  add_floats(grad + id * dim + at.col, sum);
}

int bits_for(int64_t vocab) {
  int bits = 1;
  while ((int64_t{1} << bits) < vocab) ++bits;
  return bits;
}

// The token positions, stably sorted by id, and the sorted ids.
struct SortedTokens {
  DeviceScratch ids, positions;
  explicit SortedTokens(int64_t tokens)
      : ids(tokens * sizeof(uint32_t)), positions(tokens * sizeof(int32_t)) {}
};

void sort_by_id(const int32_t* ids, int64_t tokens, int64_t vocab, SortedTokens& sorted) {
  DeviceScratch order(tokens * sizeof(int32_t));
  for_each(tokens, Iota{order.as<int32_t>()});
  const auto* keys = reinterpret_cast<const uint32_t*>(ids);  // valid ids are non-negative
  const int count = static_cast<int>(tokens), bits = bits_for(vocab);
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, sorted.ids.as<uint32_t>(),
                                             order.as<int32_t>(), sorted.positions.as<int32_t>(),
                                             count, 0, bits, compute_stream()));
  DeviceScratch temp(temp_bytes);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      temp.as<void>(), temp_bytes, keys, sorted.ids.as<uint32_t>(), order.as<int32_t>(),
      sorted.positions.as<int32_t>(), count, 0, bits, compute_stream()));
}

template <typename Kernel>
void launch_by_slices(Kernel kernel, int64_t units, int64_t dim, int pack) {
  const int64_t blocks = (units * column_slices(dim, pack) + kRowWarps - 1) / kRowWarps;
  if (blocks > 0) kernel(static_cast<unsigned>(blocks), kRowWarps * kWarp);
}

}  // namespace

void embedding_forward(const int32_t* ids, const void* table, void* out, DType dtype,
                       int64_t tokens, int64_t dim) {
  with_storage_type(dtype, "embedding", [&](auto zero) {
    using T = decltype(zero);
    if (dim % kPack<T> == 0 && packs_aligned({table, out}))
      return for_each(tokens * (dim / kPack<T>),
                      GatherPacks<T>{ids, static_cast<const Pack<T>*>(table),
                                     static_cast<Pack<T>*>(out), dim / kPack<T>});
    for_each(tokens * dim, Gather<T>{ids, static_cast<const T*>(table), static_cast<T*>(out), dim});
  });
}

void embedding_backward(const int32_t* ids, const void* dout, DType dtype, float* grad,
                        int64_t tokens, int64_t vocab, int64_t dim) {
  SSA_CHECK(tokens <= INT_MAX, "embedding backward: {} tokens exceed the sort's int range", tokens);
  if (tokens == 0 || dim == 0) return;
  const int64_t chunks = (tokens + kChunk - 1) / kChunk;
  DeviceScratch run_begin(vocab * sizeof(int32_t));
  DeviceScratch slots(chunks * 2 * dim * sizeof(float));
  SortedTokens sorted(tokens);
  sort_by_id(ids, tokens, vocab, sorted);
  const auto* sorted_ids = sorted.ids.as<uint32_t>();
  for_each(tokens, MarkRunBegins{sorted_ids, run_begin.as<int32_t>()});
  with_storage_type(dtype, "embedding backward", [&](auto zero) {
    using T = decltype(zero);
    const auto launch = [&](auto pack) {
      constexpr int P = pack.value;
      launch_by_slices(
          [&](unsigned blocks, int threads) {
            chunk_sums_kernel<T, P><<<blocks, threads, 0, compute_stream()>>>(
                sorted_ids, sorted.positions.as<int32_t>(), static_cast<const T*>(dout), grad,
                slots.as<float>(), tokens, dim);
          },
          chunks, dim, P);
      launch_by_slices(
          [&](unsigned blocks, int threads) {
            finish_runs_kernel<P><<<blocks, threads, 0, compute_stream()>>>(
                sorted_ids, run_begin.as<int32_t>(), slots.as<float>(), grad, tokens, dim);
          },
          chunks, dim, P);
      check_launch();
    };
    with_run_width<kPack<T>>(dim, {dout, grad}, launch);
  });
}

}  // namespace ssa::cuda
