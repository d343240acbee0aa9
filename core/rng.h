#pragma once
// A counter-based generator: its whole state is (seed, offset). Element i of a draw that
// starts at offset o uses Philox block o + i, so the CPU and the GPU fill the same tensor with
// the same numbers (core/random_draws.h), each on its own device, and saving (seed, offset) in a
// checkpoint restores the stream exactly.
#include <cstdint>

#include "core/tensor.h"

namespace ssa {

struct Distribution;  // core/random_draws.h

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }

  double uniform();            // (0, 1]
  uint64_t next_u64();         // 64 uniform bits
  uint64_t below(uint64_t n);  // uniform integer in [0, n)
  // Fills a float tensor (f32/f64/bf16, any device) with normal(mean, std) / uniform(lo, hi).
  void fill_normal(const Tensor& t, double mean, double std);
  void fill_uniform(const Tensor& t, double lo, double hi);

 private:
  void fill(const Tensor& t, const Distribution& d);

  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace ssa
