#include "core/rng.h"

#include <type_traits>

#include "core/error.h"
#include "core/philox.h"
#include "core/random_draws.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {
namespace {

constexpr int64_t kParallelFill = 1 << 16;  // smaller fills stay on one thread

// out[i] = draw(Philox block first + i) rounded to T as copy_from rounds a double (bf16 through
// float). Each value depends on its index alone (Philox is counter-based): any thread count
// gives the same.
template <typename T>
void generate(T* out, int64_t n, uint64_t seed, uint64_t first, const Distribution& d) {
#pragma omp parallel for schedule(static) if (n >= kParallelFill)
  for (int64_t i = 0; i < n; ++i) {
    const double v = draw(d, philox_at(seed, first + static_cast<uint64_t>(i)));
    if constexpr (std::is_same_v<T, bf16>)
      out[i] = bf16(static_cast<float>(v));
    else
      out[i] = static_cast<T>(v);
  }
}

void generate_on_cpu(const Tensor& t, uint64_t seed, uint64_t first, const Distribution& d) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32:
      return generate(t.data<float>(), n, seed, first, d);
    case DType::f64:
      return generate(t.data<double>(), n, seed, first, d);
    case DType::bf16:
      return generate(t.data<bf16>(), n, seed, first, d);
    case DType::i32:  // refused by Rng::fill
      break;
  }
}

}  // namespace

// Element i of t becomes draw(Philox block offset + i), made in place in t's dtype on t's
// device; the offset then moves past them.
void Rng::fill(const Tensor& t, const Distribution& d) {
  if (t.dtype() == DType::i32)
    fail("random fill: tensor {} is i32 (expected f32, f64 or bf16)", t.shape().str());
  if (t.is_cpu()) {
    generate_on_cpu(t, seed_, offset_, d);
  } else {
#ifdef SSA_HAVE_CUDA
    cuda::fill_random(t.raw(), t.dtype(), t.numel(), seed_, offset_, d);
#else
    fail("random fill of a CUDA tensor but this build has no CUDA backend");
#endif
  }
  offset_ += static_cast<uint64_t>(t.numel());
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
  fill(t, {Distribution::Kind::normal, mean, std});
}

void Rng::fill_uniform(const Tensor& t, double lo, double hi) {
  fill(t, {Distribution::Kind::uniform, lo, hi});
}

}  // namespace ssa
