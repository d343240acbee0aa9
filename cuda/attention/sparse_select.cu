// The sparse path's block means, block selection and selection check
// (cuda/attention/sparse_select.h). The selection runs on tensor cores for bf16 tensors where
// select_blocks_bf16 takes the shape, else in double (select_blocks_f64).
#include <climits>

#include "cuda/attention/select_blocks_bf16.h"
#include "cuda/attention/select_blocks_f64.h"
#include "cuda/attention/sparse_select.h"
#include "cuda/device.cuh"

namespace ssa::cuda {
namespace {

// ------------------------------------------------------------------ block means

// Element i of means [B, blocks, row]: the mean of its block's block_size keys, summed in
// double in key order, rounded as the CPU op rounds (through float for bf16).
template <typename T>
struct BlockMean {
  const T* k;
  T* means;
  int64_t k_len, row, blocks, block_size;
  __device__ void operator()(int64_t i) const {
    const int64_t column = i % row, block_row = i / row;  // block_row = b · blocks + j
    const int64_t b = block_row / blocks, j = block_row % blocks;
    const T* first = k + (b * k_len + j * block_size) * row + column;
    double sum = 0;
    for (int64_t s = 0; s < block_size; ++s) sum += to_float(first[s * row]);
    means[i] = from_float<T>(static_cast<float>(sum / static_cast<double>(block_size)));
  }
};

// ------------------------------------------------------------------ selection check

// The CPU op's rule for one row: strictly ascending blocks ≤ the own block, at least one, then
// only −1. Invalid rows lower `first_invalid` (an integer minimum: order-independent).
struct CheckRow {
  const int32_t* selection;
  unsigned long long* first_invalid;
  int64_t q_len, kv_heads, width, offset, block_size;
  __device__ void operator()(int64_t r) const {
    const int32_t* row = selection + r * width;
    const int64_t own = (offset + r / kv_heads % q_len) / block_size;
    bool valid = true;
    int64_t slot = 0;
    for (; slot < width && row[slot] >= 0; ++slot)
      valid = valid && row[slot] <= own && (slot == 0 || row[slot] > row[slot - 1]);
    valid = valid && slot > 0;
    for (; slot < width; ++slot) valid = valid && row[slot] == -1;
    if (!valid) atomicMin(first_invalid, static_cast<unsigned long long>(r));
  }
};

}  // namespace

void block_means(const void* k, void* means, DType dtype, int64_t batch, int64_t k_len, int64_t row,
                 int64_t block_size) {
  const int64_t blocks = k_len / block_size;
  with_storage_type(dtype, "block_means", [&](auto zero) {
    using T = decltype(zero);
    for_each(batch * blocks * row, BlockMean<T>{static_cast<const T*>(k), static_cast<T*>(means),
                                                k_len, row, blocks, block_size});
  });
}

void select_blocks(const SparseDims& dims, DType dtype, const void* q, const void* kbar,
                   int64_t kbar_blocks, int64_t top_k, int32_t* selection) {
  if (dims.head_dim != 64 && dims.head_dim != 128)
    fail("select_blocks: the CUDA kernel takes head_dim 64 or 128, got {}", dims.head_dim);
  if (dims.batch > 65535 || dims.kv_heads > 65535 || dims.heads * dims.k_len > INT_MAX ||
      dims.q_len * dims.kv_heads > INT_MAX || kbar_blocks > INT_MAX || top_k > INT_MAX)
    fail(
        "select_blocks: batch {}, {} KV heads, {} query heads or {} keys are over the CUDA "
        "kernel's range",
        dims.batch, dims.kv_heads, dims.heads, dims.k_len);
  if (dims.batch * dims.q_len * dims.kv_heads * dims.width == 0) return;
  if (dtype == DType::bf16 && select_blocks_bf16_takes(dims, top_k))
    select_blocks_bf16(dims, q, kbar, kbar_blocks, top_k, selection);
  else
    select_blocks_f64(dims, dtype, q, kbar, kbar_blocks, top_k, selection);
}

int64_t first_invalid_selection_row(const SparseDims& dims, const int32_t* selection) {
  const int64_t rows = dims.batch * dims.q_len * dims.kv_heads;
  if (rows == 0) return -1;
  unsigned long long first = 0;
  DeviceScratch device_first(sizeof(first));
  CUDA_CHECK(cudaMemsetAsync(device_first.as<void>(), 0xff, sizeof(first), compute_stream()));
  for_each(rows, CheckRow{selection, device_first.as<unsigned long long>(), dims.q_len,
                          dims.kv_heads, dims.width, dims.k_len - dims.q_len, dims.block_size});
  copy(&first, false, device_first.as<void>(), true, sizeof(first));
  return first == ~0ull ? -1 : static_cast<int64_t>(first);
}

}  // namespace ssa::cuda
