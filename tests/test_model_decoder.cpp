#include <cmath>

#include "autograd/autograd.h"
#include "models/decoder.h"
#include "op_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

ModelConfig tiny_config() {
  ModelConfig c{.vocab_size = 11,
                .d_model = 6,
                .n_layers = 2,
                .n_heads = 4,
                .n_kv_heads = 2,
                .head_dim = 4,
                .ffn_dim = 10,
                .max_seq_len = 8};
  return c;
}

}  // namespace

TEST_CASE("parameters are named views into one flat buffer, gradients likewise") {
  Decoder model(tiny_config(), DType::f32, Device::cpu);
  const Parameters& params = model.params();
  const Tensor& wq = params.get("layers.1.attn.wq");
  CHECK(wq.shape() == Shape{16, 6});
  CHECK(wq.same_storage(params.flat()));
  CHECK(wq.grad().same_storage(params.flat_grad()));
  int64_t total = 0;
  for (size_t i = 0; i < params.size(); ++i) total += params[i].numel();
  CHECK(total == params.count());
  // embedding 11·6; per layer: 2 norms of 6, wq 16·6, wk/wv 8·6 each, wg 4·6, wo 6·16,
  // w1/w3 10·6 each, w2 6·10; final norm 6.
  CHECK(params.count() == 66 + 2 * (12 + 96 + 96 + 24 + 96 + 180) + 6);
  CHECK_THROWS_AS(params.get("layers.2.attn.wq"), Error);
}

TEST_CASE("zero_grad defers the zeroing: stale gradients are overwritten or zeroed, never read") {
  ModelConfig c = tiny_config();
  Decoder model(c, DType::f32, Device::cpu);
  Rng rng(2);
  model.params().initialize(rng);
  const Parameters& params = model.params();
  const Tensor ids = random_ids({2, 8}, c.vocab_size, 3),
               targets = random_ids({2, 8}, c.vocab_size, 4);
  backward(model.loss(ids, targets));
  const std::vector<double> expected = params.flat_grad().to_vector();  // from a zeroed buffer

  params.flat_grad().fill(std::nan(""));
  params.zero_grad();
  CHECK(params.flat_grad().to_vector() == std::vector<double>(expected.size(), 0.0));

  params.flat_grad().fill(std::nan(""));
  params.zero_grad();
  backward(model.loss(ids, targets));
  CHECK(params.flat_grad().to_vector() == expected);
}

TEST_CASE("initialisation: normal(0, 0.02), output projections scaled, norms ones") {
  ModelConfig c = tiny_config();
  c.d_model = 64;
  c.ffn_dim = 256;
  c.n_layers = 8;
  Decoder model(c, DType::f64, Device::cpu);
  Rng rng(1);
  model.params().initialize(rng);
  auto stddev = [](const Tensor& t) {
    double sq = 0;
    for (double x : t.to_vector()) sq += x * x;
    return std::sqrt(sq / static_cast<double>(t.numel()));
  };
  CHECK(stddev(model.params().get("layers.0.ffn.w1")) == doctest::Approx(0.02).epsilon(0.05));
  CHECK(stddev(model.params().get("layers.0.ffn.w2")) == doctest::Approx(0.005).epsilon(0.05));
  CHECK(model.params().get("final_norm").at(5) == 1.0);
}

TEST_CASE("loss at initialisation is close to log(vocab)") {
  ModelConfig c = tiny_config();
  Decoder model(c, DType::f32, Device::cpu);
  Rng rng(2);
  model.params().initialize(rng);
  Tensor ids = random_ids({2, 8}, c.vocab_size, 3);
  Tensor targets = random_ids({2, 8}, c.vocab_size, 4);
  double loss = model.loss(ids, targets).item();
  CHECK(loss == doctest::Approx(std::log(11.0)).epsilon(0.02));
  CHECK(model.logits(ids).shape() == Shape{2, 8, 11});
}

TEST_CASE("gradcheck of the whole decoder: every parameter, float64") {
  ModelConfig c = tiny_config();
  c.n_layers = 1;
  for (bool gate : {true, false}) {
    c.attention_gate = gate;
    Decoder model(c, DType::f64, Device::cpu);
    Rng rng(5);
    model.params().initialize(rng);
    for (size_t i = 0; i < model.params().size(); ++i)  // larger weights: a stronger test
      rng.fill_uniform(model.params()[i], -0.5, 0.5);
    Tensor ids = random_ids({2, 5}, c.vocab_size, 6);
    Tensor targets = random_ids({2, 5}, c.vocab_size, 7);
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < model.params().size(); ++i) inputs.push_back(model.params()[i]);
    check_gradients([&](const auto&) { return model.loss(ids, targets); }, inputs);
  }
}

TEST_CASE("model config validation names the bad field") {
  ModelConfig c = tiny_config();
  c.n_kv_heads = 3;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("n_kv_heads"), Error);
  ModelConfig d = tiny_config();
  d.d_model = 8;
  std::vector<std::string> diff = differing_fields(tiny_config(), d);
  REQUIRE(diff.size() == 1);
  CHECK(diff[0] == "model.d_model: 6 vs 8");
}

TEST_CASE("recomputing the feed-forward blocks changes no loss or gradient bit, in every mode") {
  ModelConfig c = tiny_config();
  for (const char* mode : {"full", "ssa"}) {
    CAPTURE(mode);
    ForwardOptions options;
    options.align = std::string(mode) == "ssa";
    options.block_size = 2;
    options.top_k = 2;
    std::vector<std::vector<double>> grads;
    std::vector<double> losses;
    for (bool recompute : {false, true}) {
      Decoder model(c, DType::f64, Device::cpu);
      Rng rng(5);
      model.params().initialize(rng);
      options.recompute_ffn = recompute;
      Tensor loss = model.loss(random_ids({2, 8}, c.vocab_size, 6),
                               random_ids({2, 8}, c.vocab_size, 7), 0, options);
      losses.push_back(loss.item());
      std::vector<std::string> finals;
      backward(loss, Tensor(), [&](const Tensor& leaf) { finals.push_back(leaf.name()); });
      CHECK(finals.size() == model.params().size());  // each leaf told once that it is final
      grads.push_back(model.params().flat_grad().to_vector());
    }
    CHECK(losses[0] == losses[1]);
    CHECK(grads[0] == grads[1]);
  }
}
