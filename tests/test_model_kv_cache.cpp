#include <algorithm>

#include "models/sampling.h"
#include "op_test_util.h"
#include "ops/sparse_attention.h"

using namespace ssa;
using namespace ssa::test;

namespace {

constexpr int64_t kBlockSize = 4;

// GQA group n_heads / n_kv_heads; max_seq_len 16, so decoding runs past it.
ModelConfig cache_config(int64_t n_kv_heads) {
  ModelConfig c{.vocab_size = 17,
                .d_model = 8,
                .n_layers = 2,
                .n_heads = 4,
                .n_kv_heads = n_kv_heads,
                .head_dim = 4,
                .ffn_dim = 12,
                .max_seq_len = 16};
  return c;
}

// Uniform(-spread, spread) weights: spread enough that attention is far from uniform.
Decoder random_model(const ModelConfig& c, DType dtype) {
  Decoder model(c, dtype, Device::cpu);
  Rng rng(5);
  for (size_t i = 0; i < model.params().size(); ++i) rng.fill_uniform(model.params()[i], -0.6, 0.6);
  return model;
}

ForwardOptions attention(AttentionPath path, int64_t top_k) {
  ForwardOptions options;
  options.path = path;
  options.block_size = kBlockSize;
  options.top_k = top_k;
  return options;
}

std::vector<int32_t> ids_of(const Tensor& ids) {
  std::vector<int32_t> out;
  for (double id : ids.to_vector()) out.push_back(static_cast<int32_t>(id));
  return out;
}

Tensor as_ids(const std::vector<int32_t>& tokens, size_t first, size_t end) {
  std::vector<double> values(tokens.begin() + static_cast<ptrdiff_t>(first),
                             tokens.begin() + static_cast<ptrdiff_t>(end));
  return Tensor::from(values, {1, static_cast<int64_t>(values.size())}, DType::i32);
}

// Rows first .. end − 1 of logits [1, T, vocab].
Tensor rows(const Tensor& logits, int64_t first, int64_t end) {
  const int64_t vocab = logits.dim(2);
  return logits.view(first * vocab, {1, end - first, vocab});
}

// Every layer's keys and values [1, T, Hkv, d] of a forward pass over the whole sequence.
struct LayerKv {
  std::vector<Tensor> k, v;
};
LayerKv recomputed_kv(Decoder& model, const Tensor& ids, ForwardOptions options) {
  LayerKv kv;
  options.probe = [&](int64_t, const Tensor&, const Tensor& k, const Tensor& v, const Tensor&) {
    kv.k.push_back(k.clone());
    kv.v.push_back(v.clone());
  };
  model.logits(ids, options);
  return kv;
}

// Feeds `tokens` to a cache in chunks (a 7-token prompt, then 1 or 3 tokens at a time, so
// chunks end inside and across blocks) and, after each, compares with recomputing the prefix:
// logits of the new positions, cached keys and values, and the running block means.
double worst_cached_difference(Decoder& model, const std::vector<int32_t>& tokens,
                               const ForwardOptions& options) {
  NoGrad no_grad;
  KvCache cache(model.config().n_layers, kBlockSize);
  double worst = 0;
  for (size_t done = 0; done < tokens.size();) {
    const size_t chunk = done == 0 ? 7 : done % 5 == 0 ? 3 : 1;
    const size_t end = std::min(tokens.size(), done + chunk);
    Tensor cached = model.logits_cached(as_ids(tokens, done, end), cache, options);
    Tensor whole = model.logits(as_ids(tokens, 0, end), options);
    worst = std::max(worst, max_abs_diff(cached, rows(whole, static_cast<int64_t>(done),
                                                      static_cast<int64_t>(end))));
    REQUIRE(cache.length() == static_cast<int64_t>(end));
    LayerKv kv = recomputed_kv(model, as_ids(tokens, 0, end), options);
    for (int64_t i = 0; i < model.config().n_layers; ++i) {
      LayerCache& layer = cache.layer(i);
      worst = std::max(worst, max_abs_diff(layer.keys(), kv.k[i]));
      worst = std::max(worst, max_abs_diff(layer.values(), kv.v[i]));
      const Tensor means = block_means(layer.keys(), kBlockSize);
      REQUIRE(layer.block_means().shape() == means.shape());
      CHECK(layer.block_means().to_vector() == means.to_vector());
    }
    done = end;
  }
  return worst;
}

}  // namespace

TEST_CASE("cached logits equal recomputing the whole prefix, full and sparse, past max_seq_len") {
  for (int64_t n_kv_heads : {2, 1}) {  // GQA groups of 2 and 4
    CAPTURE(n_kv_heads);
    Decoder model = random_model(cache_config(n_kv_heads), DType::f64);
    const std::vector<int32_t> tokens = ids_of(random_ids({1, 70}, 17, 11));  // > 64: grows
    for (const ForwardOptions& options :
         {attention(AttentionPath::full, 16), attention(AttentionPath::sparse, 2),
          attention(AttentionPath::sparse, 3)}) {
      CAPTURE(path_name(options.path));
      CAPTURE(options.top_k);
      CHECK(worst_cached_difference(model, tokens, options) < 1e-12);
    }
  }
}

TEST_CASE("block means asked for after many blocks completed equal block_means of the keys") {
  Decoder model = random_model(cache_config(2), DType::f64);
  const std::vector<int32_t> tokens = ids_of(random_ids({1, 37}, 17, 14));
  KvCache cache(2, kBlockSize);
  model.logits_cached(as_ids(tokens, 0, 30), cache);  // full attention: means not needed yet
  for (size_t t = 30; t < tokens.size(); ++t) model.logits_cached(as_ids(tokens, t, t + 1), cache);
  for (int64_t i = 0; i < 2; ++i) {
    LayerCache& layer = cache.layer(i);
    const Tensor means = layer.block_means();
    CHECK(means.shape() == Shape{1, 9, 2, 4});
    CHECK(means.to_vector() == block_means(layer.keys(), kBlockSize).to_vector());
  }
}

TEST_CASE("sparse decoding at a small top_k really drops blocks") {
  Decoder model = random_model(cache_config(2), DType::f64);
  const Tensor ids = random_ids({1, 30}, 17, 12);
  NoGrad no_grad;
  const Tensor full = model.logits(ids, attention(AttentionPath::full, 2));
  const Tensor sparse = model.logits(ids, attention(AttentionPath::sparse, 2));
  CHECK(max_abs_diff(rows(full, 29, 30), rows(sparse, 29, 30)) > 1e-6);
}

TEST_CASE("greedy generation gives the same tokens with and without the cache (f32)") {
  for (int64_t n_kv_heads : {2, 1}) {
    CAPTURE(n_kv_heads);
    Decoder model = random_model(cache_config(n_kv_heads), DType::f32);
    for (const ForwardOptions& options :
         {attention(AttentionPath::full, 16), attention(AttentionPath::sparse, 1),
          attention(AttentionPath::sparse, 2)}) {
      CAPTURE(path_name(options.path));
      CAPTURE(options.top_k);
      const std::vector<int32_t> prompt = ids_of(random_ids({1, 6}, 17, 13));
      Rng rng_cached(1), rng_recomputed(1);
      const SamplingOptions greedy{0, 0};
      std::vector<int32_t> cached = generate(model, prompt, 30, greedy, rng_cached, options);
      std::vector<int32_t> recomputed =
          generate(model, prompt, 30, greedy, rng_recomputed, options, false);
      CHECK(cached.size() == 36);
      CHECK(cached == recomputed);
    }
  }
}

TEST_CASE("a cache refuses what it cannot continue") {
  Decoder model = random_model(cache_config(2), DType::f64);
  KvCache cache(2, kBlockSize);
  CHECK_THROWS_WITH_AS(model.logits_cached(random_ids({2, 3}, 17, 1), cache),
                       doctest::Contains("[1, T]"), Error);
  ForwardOptions other_blocks = attention(AttentionPath::sparse, 2);
  other_blocks.block_size = 8;
  CHECK_THROWS_WITH_AS(model.logits_cached(random_ids({1, 3}, 17, 1), cache, other_blocks),
                       doctest::Contains("blocks of 4"), Error);
  KvCache short_cache(1, kBlockSize);
  CHECK_THROWS_WITH_AS(model.logits_cached(random_ids({1, 3}, 17, 1), short_cache),
                       doctest::Contains("1 layers"), Error);
}
