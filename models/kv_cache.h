#pragma once
// What a decoder keeps between the steps of incremental decoding (batch 1): per layer the keys
// (after RoPE) and values of every position seen so far and, for the sparse path, the mean key of
// every complete block, so each new token selects its blocks without recomputing the prefix.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ssa {

// Rows [1, n, H, d] appended at the end of one buffer [1, capacity, H, d] that doubles when
// full. The buffer takes the dtype, device and row shape of the first rows appended.
class RowBuffer {
 public:
  void append(const Tensor& rows);
  int64_t length() const { return length_; }
  // Rows first .. first + count − 1 as [1, count, H, d], a view of the buffer (valid after later
  // appends too: growing moves to new storage and leaves the old one to its views).
  Tensor rows(int64_t first, int64_t count) const;
  Tensor all() const { return rows(0, length_); }

 private:
  void grow(const Tensor& like, int64_t needed);
  Tensor window(int64_t first, int64_t count) const;  // any rows within the capacity

  Tensor buffer_;
  int64_t length_ = 0;
};

// One layer's cache. The running block means are brought up to date when asked for: the mean of
// each block completed since is block_means over that block's cached keys, so they equal
// block_means(keys(), block_size) exactly, and full attention never computes them.
class LayerCache {
 public:
  explicit LayerCache(int64_t block_size) : block_size_(block_size) {}
  // Appends the keys and values [1, T, Hkv, d] of the next T positions.
  void append(const Tensor& k, const Tensor& v);
  int64_t length() const { return keys_.length(); }
  Tensor keys() const { return keys_.all(); }      // [1, length, Hkv, d]
  Tensor values() const { return values_.all(); }  // [1, length, Hkv, d]
  // [1, length / block_size, Hkv, d]: the complete blocks only.
  Tensor block_means();

 private:
  int64_t block_size_;
  RowBuffer keys_, values_, means_;
};

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t block_size);
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t block_size() const { return block_size_; }
  // Positions cached (every layer holds the same after a forward pass).
  int64_t length() const { return layers_.back().length(); }
  LayerCache& layer(int64_t index) { return layers_.at(static_cast<size_t>(index)); }
  const LayerCache& layer(int64_t index) const { return layers_.at(static_cast<size_t>(index)); }

 private:
  int64_t block_size_;
  std::vector<LayerCache> layers_;
};

}  // namespace ssa
