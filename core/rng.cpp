#include "core/rng.h"

#include <cmath>
#include <vector>

#include "core/philox.h"

namespace ssa {
namespace {

constexpr int64_t kParallelFill = 1 << 16;  // smaller fills stay on one thread

}  // namespace

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
  int64_t n = t.numel();
  std::vector<double> values(static_cast<size_t>(n));
  // Each value depends on its index alone (Philox is counter-based): any thread count gives
  // the same values.
#pragma omp parallel for schedule(static) if (n >= kParallelFill)
  for (int64_t i = 0; i < n; ++i) {
    // Box-Muller on two uniforms of block offset + i.
    Philox4 r = philox_at(seed_, offset_ + static_cast<uint64_t>(i));
    double u1 = philox_uniform_bits(r.v[0]), u2 = philox_uniform_bits(r.v[1]);
    values[i] = mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  offset_ += static_cast<uint64_t>(n);
  t.copy_from(Tensor::from(values, t.shape(), DType::f64));
}

void Rng::fill_uniform(const Tensor& t, double lo, double hi) {
  int64_t n = t.numel();
  std::vector<double> values(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n >= kParallelFill)
  for (int64_t i = 0; i < n; ++i) {
    Philox4 r = philox_at(seed_, offset_ + static_cast<uint64_t>(i));
    values[i] = lo + (hi - lo) * philox_uniform_bits(r.v[0]);
  }
  offset_ += static_cast<uint64_t>(n);
  t.copy_from(Tensor::from(values, t.shape(), DType::f64));
}

}  // namespace ssa
