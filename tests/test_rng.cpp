#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "core/random_draws.h"
#include "core/rng.h"

using namespace ssa;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors") {
  Philox4 zero = philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u);
  CHECK(zero.v[1] == 0xe169c58du);
  CHECK(zero.v[2] == 0xbc57ac4cu);
  CHECK(zero.v[3] == 0x9b00dbd8u);
  Philox4 ones = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  CHECK(ones.v[0] == 0x408f276du);
  CHECK(ones.v[1] == 0x41c83b0eu);
  CHECK(ones.v[2] == 0xa20bc7c6u);
  CHECK(ones.v[3] == 0x6d5451fdu);
  Philox4 pi =
      philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(pi.v[0] == 0xd16cfe09u);
  CHECK(pi.v[1] == 0x94fdccebu);
  CHECK(pi.v[2] == 0x5001e420u);
  CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("rng state is (seed, offset): restoring it replays the stream") {
  Rng a(42);
  a.uniform();
  Tensor t = Tensor::empty({100}, DType::f64);
  a.fill_normal(t, 0, 1);
  Rng b(a.seed(), a.offset());
  double next_a = a.uniform();
  CHECK(next_a == b.uniform());
  CHECK(a.offset() == 102);
}

TEST_CASE("normal fill has the requested moments") {
  Rng rng(7);
  Tensor t = Tensor::empty({20000}, DType::f32);
  rng.fill_normal(t, 1.0, 0.5);
  double sum = 0, sq = 0;
  for (double v : t.to_vector()) {
    sum += v;
    sq += v * v;
  }
  double mean = sum / 20000, var = sq / 20000 - mean * mean;
  CHECK(mean == doctest::Approx(1.0).epsilon(0.02));
  CHECK(std::sqrt(var) == doctest::Approx(0.5).epsilon(0.03));
}

TEST_CASE("a large fill gives the same values on one thread as on several") {
  auto filled = [](int threads) {
    omp_set_num_threads(threads);
    Rng rng(11);
    Tensor normal = Tensor::empty({300000}, DType::f64), uniform = normal.clone();
    rng.fill_normal(normal, 0.0, 1.0);
    rng.fill_uniform(uniform, -1.0, 1.0);
    return std::pair{normal.to_vector(), uniform.to_vector()};
  };
  const int threads = omp_get_max_threads();
  const auto one = filled(1), several = filled(4);
  omp_set_num_threads(threads);
  CHECK(one.first == several.first);
  CHECK(one.second == several.second);
}

TEST_CASE("below() stays in range and covers it") {
  Rng rng(3);
  int seen[5] = {};
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = rng.below(5);
    REQUIRE(x < 5);
    ++seen[x];
  }
  for (int count : seen) CHECK(count > 150);
}

TEST_CASE("a fill in f32, bf16 or a view is the f64 fill rounded once, as a copy would") {
  auto normal = [](const Tensor& t) {
    Rng rng(5, 17);
    rng.fill_normal(t, 0.25, 2.0);
    return rng.offset();
  };
  Tensor reference = Tensor::empty({70000}, DType::f64);
  const uint64_t end = normal(reference);
  for (DType dtype : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(dtype));
    Tensor direct = Tensor::empty({70000}, dtype), rounded = Tensor::empty({70000}, dtype);
    CHECK(normal(direct) == end);
    rounded.copy_from(reference);
    CHECK(direct.to_vector() == rounded.to_vector());
  }
  Tensor whole = Tensor::zeros({3, 70000}, DType::f32);
  normal(whole.view(70000, {70000}));
  Tensor middle = Tensor::empty({70000}, DType::f32);
  middle.copy_from(reference);
  const std::vector<double> values = whole.to_vector();
  CHECK(std::vector<double>(values.begin() + 70000, values.begin() + 140000) == middle.to_vector());
  CHECK(std::all_of(values.begin(), values.begin() + 70000, [](double v) { return v == 0; }));
  CHECK(std::all_of(values.begin() + 140000, values.end(), [](double v) { return v == 0; }));
  CHECK_THROWS_AS(Rng(1).fill_normal(Tensor::empty({4}, DType::i32), 0, 1), Error);
}

TEST_CASE("the draws' own log and cos are Box-Muller's within 3 units in the last place") {
  // Every u the normal draw can see has the form n·2^-25; every 13th n is checked.
  for (uint32_t n = 1; n <= (1u << 25); n += 13) {
    const long double u = static_cast<long double>(n) * 0x1p-25L;
    const long double log_u = std::log(u), cos_u = std::cos(2 * 3.14159265358979323846264338L * u);
    const double log_error = std::abs(static_cast<long double>(draws::log_of_scaled(n)) - log_u);
    const double cos_error = std::abs(static_cast<long double>(draws::cos_of_turn(n)) - cos_u);
    REQUIRE(log_error <= 3 * 0x1p-52 * std::max<long double>(std::abs(log_u), 0x1p-1022L));
    REQUIRE(cos_error <= 3 * 0x1p-53);
  }
  CHECK(draws::log_of_scaled(1u << 25) == 0);
  CHECK(draws::cos_of_turn(0) == 1);
  CHECK(draws::cos_of_turn(1u << 24) == -1);
  CHECK(draws::cos_of_turn(1u << 25) == 1);
}
