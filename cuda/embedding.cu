#include <climits>
#include <cub/device/device_radix_sort.cuh>

#include "cuda/device.cuh"
#include "cuda/embedding.h"

namespace ssa::cuda {
namespace {

constexpr int kRunThreads = 128;  // threads per block summing one id's run, across dim

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

// Block b handles sorted position b if it starts a run of equal ids; positions within a run are
// in token order (the sort is stable).
template <typename T>
__global__ void sum_runs_kernel(const uint32_t* sorted_ids, const int32_t* positions, const T* dout,
                                T* dtable, int64_t tokens, int64_t dim) {
  const int64_t first = blockIdx.x;
  const uint32_t id = sorted_ids[first];
  if (first > 0 && sorted_ids[first - 1] == id) return;
  int64_t end = first + 1;
  while (end < tokens && sorted_ids[end] == id) ++end;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float sum = 0;
    for (int64_t p = first; p < end; ++p) sum += to_float(dout[positions[p] * dim + j]);
    dtable[id * dim + j] = from_float<T>(sum);
  }
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

void embedding_backward(const int32_t* ids, const void* dout, void* dtable, DType dtype,
                        int64_t tokens, int64_t vocab, int64_t dim) {
  SSA_CHECK(tokens <= INT_MAX, "embedding backward: {} tokens exceed the sort's int range", tokens);
  fill(dtable, dtype, 0.0, vocab * dim);
  if (tokens == 0 || dim == 0) return;
  SortedTokens sorted(tokens);
  sort_by_id(ids, tokens, vocab, sorted);
  with_storage_type(dtype, "embedding backward", [&](auto zero) {
    using T = decltype(zero);
    sum_runs_kernel<<<static_cast<unsigned>(tokens), kRunThreads, 0, compute_stream()>>>(
        sorted.ids.as<uint32_t>(), sorted.positions.as<int32_t>(), static_cast<const T*>(dout),
        static_cast<T*>(dtable), tokens, dim);
    check_launch();
  });
}

}  // namespace ssa::cuda
