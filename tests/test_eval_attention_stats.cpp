#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "data/shard.h"
#include "eval/attention_stats.h"
#include "test_data_util.h"

using namespace ssa;

namespace {

constexpr int64_t kBatch = 2, kSeq = 11, kBlock = 3;  // blocks 0-2, 3-5, 6-8 and a partial 9-10

// A random f32 model whose attention is peaked (wq, wk drawn wider than at initialisation).
Decoder random_model(int64_t heads, int64_t kv_heads, uint64_t seed) {
  ModelConfig c;
  c.vocab_size = 13;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = 8;
  c.ffn_dim = 24;
  c.max_seq_len = 16;
  Decoder model(c, DType::f32, Device::cpu);
  Rng rng(seed);
  model.params().initialize(rng);
  for (int64_t layer = 0; layer < c.n_layers; ++layer)
    for (const char* name : {"wq", "wk"})
      rng.fill_normal(model.params().get(fmt::format("layers.{}.attn.{}", layer, name)), 0, 0.5);
  return model;
}

Tensor random_ids(uint64_t seed) {
  Rng rng(seed);
  std::vector<double> ids(kBatch * kSeq);
  for (double& id : ids) id = static_cast<double>(rng.below(13));
  return Tensor::from(ids, {kBatch, kSeq}, DType::i32);
}

double entropy_bits(const std::vector<double>& p) {
  double sum = 0;
  for (double x : p) sum -= x * std::log2(x);
  return sum;
}

}  // namespace

TEST_CASE("attention stats: the error bound holds for every row while top-k drops mass") {
  for (auto [heads, kv_heads] : {std::pair<int64_t, int64_t>{2, 2}, {4, 2}, {4, 1}}) {
    CAPTURE(heads);
    CAPTURE(kv_heads);
    Decoder model = random_model(heads, kv_heads, 7 + heads * kv_heads);
    const std::vector<LayerStats> layers = attention_stats(model, random_ids(3), kBlock, 2);
    REQUIRE(layers.size() == 2);
    for (const LayerStats& s : layers) {
      CHECK(s.rows == kBatch * kSeq * heads);
      // Top-2 reads everything for queries in blocks 0 and 1; the 5 queries from 6 on drop.
      CHECK(s.dropping_rows == kBatch * 5 * heads);
      CHECK(s.bound_violations == 0);
      CHECK(s.max_bound_ratio > 0);
      CHECK(s.max_bound_ratio <= 1);
      CHECK(s.mean_dropped_mass() > 0);
      CHECK(s.mean_relative_error() > 0);
      CHECK(s.mean_captured_mass() >= 0);
      CHECK(s.mean_captured_mass() < 1);
      CHECK(s.mean_entropy_bits() > 0);
      CHECK(s.mean_entropy_bits() <= std::log2(static_cast<double>(kSeq)));
      CHECK(s.mean_sink_mass() > 0);
      CHECK(s.mean_sink_mass() <= 1);
    }
  }
}

TEST_CASE("attention stats: a top-k covering every block drops nothing") {
  Decoder model = random_model(4, 2, 5);
  for (const LayerStats& s : attention_stats(model, random_ids(4), kBlock, 4)) {
    CHECK(s.mean_captured_mass() == 1);
    CHECK(s.mean_dropped_mass() == 0);
    CHECK(s.dropping_rows == 0);
    CHECK(s.bound_violations == 0);
    CHECK(s.mean_relative_error() < 1e-12);  // two float64 kernels on the same keys
    CHECK(s.mean_sink_mass() > 0);
  }
}

TEST_CASE("attention stats of a hand-checkable layer") {
  // One head, d = 1, q_t = 1 and k_j = ln(j + 1): row t has p_j ∝ j + 1 (j ≤ t). Blocks of 2,
  // top-1: queries 0 and 1 read keys 0-1 (all they see), query 2 reads key 2, query 3 keys 2-3.
  const Tensor q = Tensor::from({1, 1, 1, 1}, {1, 4, 1, 1}, DType::f64);
  const Tensor k = Tensor::from({std::log(1.0), std::log(2.0), std::log(3.0), std::log(4.0)},
                                {1, 4, 1, 1}, DType::f64);
  const Tensor v = Tensor::from({1, 2, 3, 5}, {1, 4, 1, 1}, DType::f64);
  const LayerStats s = layer_attention_stats(q, k, v, 2, 1);
  CHECK(s.rows == 4);
  CHECK(s.dropping_rows == 2);
  // Query 2: p = (1, 2, 3) / 6, δ = 1/2, o_full = 14/6, o_sparse = 3, error 2/7, lhs/rhs =
  // (2/3) / (1/2 · (2 + 3)). Query 3: p = (1, 2, 3, 4) / 10, δ = 3/10, o_full = 34/10,
  // o_sparse = 29/7, error 26/119, lhs/rhs = (26/35) / (3/10 · (2 + 29/7)) = 52/129.
  CHECK(s.mean_dropped_mass() == doctest::Approx((0.5 + 0.3) / 4));
  CHECK(s.mean_captured_mass() == doctest::Approx(1 - 0.8 / 4));
  CHECK(s.mean_sink_mass() == doctest::Approx((1 + 1 + 0.5 + 0.3) / 4));
  CHECK(s.mean_relative_error() == doctest::Approx((2.0 / 7 + 26.0 / 119) / 4));
  const double entropy = entropy_bits({1.0 / 3, 2.0 / 3}) +
                         entropy_bits({1.0 / 6, 2.0 / 6, 3.0 / 6}) +
                         entropy_bits({0.1, 0.2, 0.3, 0.4});
  CHECK(s.mean_entropy_bits() == doctest::Approx(entropy / 4));
  CHECK(s.max_bound_ratio == doctest::Approx(52.0 / 129));
  CHECK(s.bound_violations == 0);
}

TEST_CASE("attention stats over shards add up the windows of every batch") {
  test::TempDir dir("eval_stats_shards");
  Rng rng(9);
  std::vector<uint32_t> tokens(3 * kSeq + 1);
  for (uint32_t& token : tokens) token = static_cast<uint32_t>(rng.below(13));
  write_shard(dir.file("val_000000.bin"), tokens);
  std::vector<double> windows(tokens.begin(), tokens.begin() + kSeq);  // windows 0 and 1
  windows.insert(windows.end(), tokens.begin() + kSeq, tokens.begin() + 2 * kSeq);
  Decoder model = random_model(4, 2, 11);
  const std::vector<LayerStats> by_shard =
      shard_attention_stats(model, dir.file("val_*.bin"), kSeq, 1, 2, kBlock, 2);
  const std::vector<LayerStats> direct =
      attention_stats(model, Tensor::from(windows, {2, kSeq}, DType::i32), kBlock, 2);
  REQUIRE(by_shard.size() == direct.size());
  for (size_t i = 0; i < direct.size(); ++i) {
    CHECK(by_shard[i].rows == direct[i].rows);
    CHECK(by_shard[i].dropping_rows == direct[i].dropping_rows);
    CHECK(by_shard[i].mean_dropped_mass() == doctest::Approx(direct[i].mean_dropped_mass()));
    CHECK(by_shard[i].mean_entropy_bits() == doctest::Approx(direct[i].mean_entropy_bits()));
    CHECK(by_shard[i].mean_relative_error() == doctest::Approx(direct[i].mean_relative_error()));
    CHECK(by_shard[i].max_bound_ratio == doctest::Approx(direct[i].max_bound_ratio));
  }
}
