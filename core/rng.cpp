#include "core/rng.h"

#include <cmath>

#include "core/philox.h"

namespace ssa {
namespace {

constexpr int64_t kParallelFill = 1 << 16;  // smaller fills stay on one thread

}  // namespace

// Element i of t becomes value(Philox block offset + i); the offset then moves past them. Each
// value depends on its index alone (Philox is counter-based): any thread count gives the same.
template <typename Value>
void Rng::fill_blocks(const Tensor& t, Value value) {
  const int64_t n = t.numel();
  Tensor values = Tensor::empty(t.shape(), DType::f64);
  double* out = values.data<double>();
#pragma omp parallel for schedule(static) if (n >= kParallelFill)
  for (int64_t i = 0; i < n; ++i)
    out[i] = value(philox_at(seed_, offset_ + static_cast<uint64_t>(i)));
  offset_ += static_cast<uint64_t>(n);
  t.copy_from(values);
}

double Rng::uniform() {
  Philox4 r = philox_at(seed_, offset_++);
  return philox_uniform_bits(r.v[0]);
}

uint64_t Rng::next_u64() {
  Philox4 r = philox_at(seed_, offset_++);
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

uint64_t Rng::below(uint64_t n) {
  SSA_CHECK(n > 0, "below(0)");
  // Rejection keeps it unbiased.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

void Rng::fill_normal(const Tensor& t, double mean, double std) {
  fill_blocks(t, [mean, std](const Philox4& r) {
    // Box-Muller on the block's first two uniforms.
    double u1 = philox_uniform_bits(r.v[0]), u2 = philox_uniform_bits(r.v[1]);
    return mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  });
}

void Rng::fill_uniform(const Tensor& t, double lo, double hi) {
  fill_blocks(t,
              [lo, hi](const Philox4& r) { return lo + (hi - lo) * philox_uniform_bits(r.v[0]); });
}

}  // namespace ssa
