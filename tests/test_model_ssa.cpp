#include <cmath>

#include "models/decoder.h"
#include "op_test_util.h"
#include "ops/elementwise.h"
#include "ops/smooth_l1.h"

using namespace ssa;
using namespace ssa::test;

namespace {

ModelConfig ssa_config() {
  ModelConfig c{.vocab_size = 13,
                .d_model = 8,
                .n_layers = 2,
                .n_heads = 4,
                .n_kv_heads = 2,
                .head_dim = 4,
                .ffn_dim = 12,
                .max_seq_len = 16};
  return c;
}

// Blocks of 2 tokens, 2 kept: at T = 11 the sparse path drops most of the past.
ForwardOptions ssa_options(AttentionPath path) {
  ForwardOptions options;
  options.path = path;
  options.block_size = 2;
  options.top_k = 2;
  options.align = true;
  options.align_weight = 10;
  return options;
}

Decoder random_model(const ModelConfig& c, DType dtype, double spread) {
  Decoder model(c, dtype, Device::cpu);
  Rng rng(3);
  model.params().initialize(rng);
  for (size_t i = 0; i < model.params().size(); ++i)
    rng.fill_uniform(model.params()[i], -spread, spread);
  return model;
}

bool all_zero(const Tensor& t) {
  if (!t.defined()) return true;
  for (double v : t.to_vector())
    if (v != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("each alignment term sends gradient only into its non-detached side") {
  Tensor o_full = random_tensor({2, 3, 4, 5}, 1), o_sparse = random_tensor({2, 3, 4, 5}, 2);
  SUBCASE("SmoothL1(o_full, sg(o_sparse)) moves o_full only") {
    backward(smooth_l1(o_full, o_sparse.detach(), 1.0));
    CHECK(!all_zero(o_full.grad()));
    CHECK(all_zero(o_sparse.grad()));
  }
  SUBCASE("SmoothL1(sg(o_full), o_sparse) moves o_sparse only") {
    backward(smooth_l1(o_full.detach(), o_sparse, 1.0));
    CHECK(all_zero(o_full.grad()));
    CHECK(!all_zero(o_sparse.grad()));
  }
  SUBCASE("together: the sum of both terms, each side with the gradient of its own term") {
    const Tensor both = alignment_loss(o_full, o_sparse, 1.0);
    CHECK(both.item() ==
          add(smooth_l1(o_full, o_sparse.detach(), 1.0), smooth_l1(o_full.detach(), o_sparse, 1.0))
              .item());
    backward(both);
    Tensor full_alone = o_full.detach(), sparse_alone = o_sparse.detach();
    full_alone.set_requires_grad(true);
    sparse_alone.set_requires_grad(true);
    backward(smooth_l1(full_alone, o_sparse.detach(), 1.0));
    backward(smooth_l1(o_full.detach(), sparse_alone, 1.0));
    CHECK(max_abs_diff(o_full.grad(), full_alone.grad()) == 0);
    CHECK(max_abs_diff(o_sparse.grad(), sparse_alone.grad()) == 0);
  }
}

// With the stop-gradients, the analytic gradient of alpha·(S(f, sg(s)) + S(sg(f), s)) is
// alpha·(∂₁S·f' + ∂₂S·s'): the plain derivative of (alpha/2)·(S(f, s) + S(f, s)), the same
// forward value at half the weight. So finite differences of the loss at alpha/2 must match
// the backward of the loss at alpha.
TEST_CASE("SSA loss gradients (cross-entropy + alpha * alignment) match finite differences") {
  ModelConfig c = ssa_config();
  c.n_layers = 1;
  Tensor ids = random_ids({1, 11}, c.vocab_size, 6), targets = random_ids({1, 11}, c.vocab_size, 7);
  for (AttentionPath path : {AttentionPath::full, AttentionPath::sparse}) {
    CAPTURE(path_name(path));
    Decoder model = random_model(c, DType::f64, 0.5);
    ForwardOptions options = ssa_options(path), half = options;
    half.align_weight /= 2;
    model.params().zero_grad();
    backward(model.loss(ids, targets, 0, options));
    CHECK(model.last_alignment() > 0);
    const std::vector<double> analytic = model.params().flat_grad().to_vector();
    const Tensor& flat = model.params().flat();
    const double eps = 1e-6;
    double worst = 0;
    NoGrad no_grad;
    for (int64_t i = 0; i < flat.numel(); i += 7) {
      Tensor element = flat.view(i, {1});
      const double value = element.item();
      element.fill(value + eps);
      const double up = model.loss(ids, targets, 0, half).item();
      element.fill(value - eps);
      const double down = model.loss(ids, targets, 0, half).item();
      element.fill(value);
      worst = std::max(worst, std::abs((up - down) / (2 * eps) - analytic[i]));
    }
    CHECK(worst < 1e-7);
  }
}

TEST_CASE("the sparse path with every block kept gives the full path's loss") {
  Decoder model = random_model(ssa_config(), DType::f64, 0.3);
  Tensor ids = random_ids({2, 13}, 13, 8), targets = random_ids({2, 13}, 13, 9);
  ForwardOptions sparse;
  sparse.path = AttentionPath::sparse;
  sparse.block_size = 4;
  sparse.top_k = 4;
  const double full_loss = model.loss(ids, targets).item();
  CHECK(model.loss(ids, targets, 0, sparse).item() == doctest::Approx(full_loss).epsilon(1e-12));
  sparse.top_k = 1;
  CHECK(std::abs(model.loss(ids, targets, 0, sparse).item() - full_loss) > 1e-6);
}
