#pragma once
// The training data stream. A shard of n tokens gives windows of T + 1 tokens starting at i*T,
// i in [0, (n - 1) / T) (neighbours share one token, as in llm.c); the global window list is
// every shard's windows in file order. Epoch e visits it in a Fisher-Yates permutation drawn
// from (seed, e) when shuffling, in order otherwise. The sequence of epochs is consumed
// world * b windows per step: rank r takes [position + r*b, position + r*b + b), so world W with
// micro-batch b sees exactly the windows of world 1 with batch W*b.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/shard.h"

namespace ssa {

// The files matching a POSIX glob pattern, sorted bytewise; none -> an error naming it.
std::vector<std::string> expand_glob(const std::string& pattern);

struct LoaderState {
  uint64_t epoch = 0;
  uint64_t position = 0;  // windows of this epoch consumed by all ranks together
  bool operator==(const LoaderState&) const = default;
};

struct Batch {
  Tensor inputs;   // i32 [b, T]
  Tensor targets;  // i32 [b, T], inputs shifted by one token
};

class Loader {
 public:
  Loader(const std::vector<std::string>& files, int64_t seq_len, int64_t vocab_size, uint64_t seed,
         bool shuffle, int rank = 0, int world = 1);

  Batch next_batch(int64_t micro_batch);
  LoaderState state() const { return state_; }
  void set_state(const LoaderState& state);
  int64_t windows_per_epoch() const { return window_starts_.back(); }
  int64_t seq_len() const { return seq_len_; }
  // The shard holding the largest token id (the first such), for a check against a tokenizer.
  const Shard& shard_with_largest_id() const;

 private:
  // The window at `index` of the whole stream (epoch * windows_per_epoch + position).
  int64_t window_at(uint64_t index);
  void copy_window(int64_t window, int32_t* inputs, int32_t* targets) const;
  void build_order(uint64_t epoch);

  std::vector<Shard> shards_;
  std::vector<int64_t> window_starts_;  // shard s holds windows [starts[s], starts[s + 1])
  int64_t seq_len_;
  uint64_t seed_;
  bool shuffle_;
  int rank_, world_;
  LoaderState state_;
  uint64_t order_epoch_ = UINT64_MAX;  // the epoch whose permutation order_ holds
  std::vector<uint32_t> order_;
};

}  // namespace ssa
