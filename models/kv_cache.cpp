#include "models/kv_cache.h"

#include <algorithm>

#include "ops/sparse_attention.h"

namespace ssa {
namespace {

constexpr int64_t kFirstCapacity = 64;  // rows

}  // namespace

void RowBuffer::append(const Tensor& rows) {
  SSA_CHECK(rows.rank() == 4 && rows.dim(0) == 1,
            "KV cache: rows {} (expected [1, T, H, d]: the cache holds one sequence)",
            rows.shape().str());
  if (buffer_.defined())
    SSA_CHECK(rows.dim(2) == buffer_.dim(2) && rows.dim(3) == buffer_.dim(3) &&
                  rows.dtype() == buffer_.dtype() && rows.device() == buffer_.device(),
              "KV cache: rows {} ({}) appended to a cache of rows [1, *, {}, {}] ({})",
              rows.shape().str(), dtype_name(rows.dtype()), buffer_.dim(2), buffer_.dim(3),
              dtype_name(buffer_.dtype()));
  const int64_t needed = length_ + rows.dim(1);
  if (!buffer_.defined() || buffer_.dim(1) < needed) grow(rows, needed);
  window(length_, rows.dim(1)).copy_from(rows);
  length_ = needed;
}

Tensor RowBuffer::rows(int64_t first, int64_t count) const {
  SSA_CHECK(buffer_.defined() && first >= 0 && count >= 0 && first + count <= length_,
            "KV cache: rows {} .. {} asked of a cache holding {}", first, first + count, length_);
  return window(first, count);
}

Tensor RowBuffer::window(int64_t first, int64_t count) const {
  const int64_t row = buffer_.dim(2) * buffer_.dim(3);
  return buffer_.view(first * row, {1, count, buffer_.dim(2), buffer_.dim(3)});
}

void RowBuffer::grow(const Tensor& like, int64_t needed) {
  const int64_t capacity =
      std::max({needed, kFirstCapacity, buffer_.defined() ? 2 * buffer_.dim(1) : 0});
  Tensor bigger =
      Tensor::empty({1, capacity, like.dim(2), like.dim(3)}, like.dtype(), like.device());
  if (length_ > 0) bigger.view(0, {1, length_, like.dim(2), like.dim(3)}).copy_from(all());
  buffer_ = bigger;
}

void LayerCache::append(const Tensor& k, const Tensor& v) {
  SSA_CHECK(k.shape() == v.shape(), "KV cache: keys {} and values {} differ", k.shape().str(),
            v.shape().str());
  keys_.append(k);
  values_.append(v);
}

Tensor LayerCache::block_means() {
  const int64_t done = means_.length(), complete = keys_.length() / block_size_;
  const Tensor new_blocks = keys_.rows(done * block_size_, (complete - done) * block_size_);
  means_.append(ssa::block_means(new_blocks, block_size_));
  return means_.all();
}

KvCache::KvCache(int64_t n_layers, int64_t block_size) : block_size_(block_size) {
  SSA_CHECK(n_layers > 0 && block_size > 0,
            "KV cache for {} layers in blocks of {} tokens (expected both > 0)", n_layers,
            block_size);
  layers_.assign(static_cast<size_t>(n_layers), LayerCache(block_size));
}

}  // namespace ssa
