#include <string>

#include "op_test_util.h"
#include "ops/attention_projections.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/reshape.h"

using namespace ssa;
using namespace ssa::test;

namespace {

constexpr int64_t kBatch = 2, kSeq = 5, kModel = 6, kHeads = 4, kKvHeads = 2, kHeadDim = 4;

// The weights of one layer in `buffer` (f64, requiring grad), laid out in the order `order`
// names them ("qkvg": the stacking order; "qvkg": wv before wk, so they cannot be one view).
AttentionWeights weights_in(const Tensor& buffer, const std::string& order) {
  AttentionWeights w;
  int64_t offset = 0;
  for (char name : order) {
    const int64_t rows = name == 'q'   ? kHeads * kHeadDim
                         : name == 'g' ? kHeads
                                       : kKvHeads * kHeadDim;
    Tensor t = buffer.view(offset, {rows, kModel});
    t.set_requires_grad(true);
    (name == 'q' ? w.wq : name == 'k' ? w.wk : name == 'v' ? w.wv : w.wg) = t;
    offset += rows * kModel;
  }
  return w;
}

Tensor weight_buffer(uint64_t seed) {
  return random_tensor({(kHeads + 2 * kKvHeads * kHeadDim + kHeads * kHeadDim) * kModel}, seed,
                       DType::f64, false);
}

// The same inputs from separate linear ops and rope, as the decoder computed them before.
AttentionInputs separate_ops(const Tensor& h, const AttentionWeights& w, const RopeTable& table,
                             int64_t offset) {
  auto heads = [&](const Tensor& weight, int64_t count) {
    return reshape(linear(h, weight), {kBatch, kSeq, count, kHeadDim});
  };
  return {rope(heads(w.wq, kHeads), table, offset), rope(heads(w.wk, kKvHeads), table, offset),
          heads(w.wv, kKvHeads), reshape(linear(h, w.wg), {kBatch, kSeq, kHeads})};
}

// Σ over the four outputs of sum(output · fixed random tensor).
Tensor weighted_total(const AttentionInputs& in) {
  Tensor total;
  uint64_t seed = 90;
  for (const Tensor& out : {in.q, in.k, in.v, in.gate_logits}) {
    Tensor term = sum(mul(out, random_tensor(out.shape(), seed++, DType::f64, false)));
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

std::vector<double> grad_of(const Tensor& t) { return t.grad().to_vector(); }

}  // namespace

TEST_CASE(
    "attention_projections: equal to separate linear ops and rope, the weights one view "
    "of a buffer or not") {
  const RopeTable table = rope_table(12, kHeadDim, 10000.0, DType::f64);
  for (const std::string order : {"qkvg", "qvkg"}) {
    CAPTURE(order);
    const Tensor h = random_tensor({kBatch, kSeq, kModel}, 3);
    const Tensor h_separate = h.detach().clone().set_requires_grad(true);
    const AttentionWeights w = weights_in(weight_buffer(5), order);
    const AttentionWeights w_separate = weights_in(weight_buffer(5), order);

    const AttentionInputs got = attention_projections(h, w, kHeadDim, table, 2);
    const AttentionInputs want = separate_ops(h_separate, w_separate, table, 2);
    CHECK(max_abs_diff(got.q, want.q) < 1e-13);
    CHECK(max_abs_diff(got.k, want.k) < 1e-13);
    CHECK(max_abs_diff(got.v, want.v) < 1e-13);
    CHECK(max_abs_diff(got.gate_logits, want.gate_logits) < 1e-13);

    backward(weighted_total(got));
    backward(weighted_total(want));
    CHECK(max_abs_diff(grad_of(h), grad_of(h_separate)) < 1e-12);
    CHECK(max_abs_diff(grad_of(w.wq), grad_of(w_separate.wq)) < 1e-12);
    CHECK(max_abs_diff(grad_of(w.wk), grad_of(w_separate.wk)) < 1e-12);
    CHECK(max_abs_diff(grad_of(w.wv), grad_of(w_separate.wv)) < 1e-12);
    CHECK(max_abs_diff(grad_of(w.wg), grad_of(w_separate.wg)) < 1e-12);
  }
}

TEST_CASE("attention_projections: an output used twice sums its gradients; unused ones give none") {
  const RopeTable table = rope_table(8, kHeadDim, 10000.0, DType::f64);
  const Tensor h = random_tensor({kBatch, kSeq, kModel}, 7);
  const AttentionWeights w = weights_in(weight_buffer(8), "qkvg");
  const AttentionInputs out = attention_projections(h, w, kHeadDim, table);
  backward(sum(add(out.v, out.v)));
  // d sum(2v)/dwv = 2 · Σ_tokens h; wq, wk and wg get zero gradients.
  const std::vector<double> hv = h.to_vector(), dwv = grad_of(w.wv);
  for (int64_t i = 0; i < kModel; ++i) {
    double column = 0;
    for (int64_t t = 0; t < kBatch * kSeq; ++t) column += hv[t * kModel + i];
    CHECK(dwv[i] == doctest::Approx(2 * column));
  }
  for (const Tensor& zero : {w.wq, w.wk, w.wg})
    for (double g : grad_of(zero)) CHECK(g == 0);
}

TEST_CASE("attention_projections: weights that do not fit name their shapes") {
  const RopeTable table = rope_table(8, kHeadDim, 10000.0, DType::f64);
  const Tensor h = random_tensor({kBatch, kSeq, kModel}, 7);
  AttentionWeights w = weights_in(weight_buffer(8), "qkvg");
  w.wg = random_tensor({kHeads + 1, kModel}, 9);
  CHECK_THROWS_WITH(attention_projections(h, w, kHeadDim, table),
                    doctest::Contains("wg [5, 6] (expected [4, 6]"));
  w = weights_in(weight_buffer(8), "qkvg");
  CHECK_THROWS_WITH(attention_projections(h, w, 3, table), doctest::Contains("head_dim 3"));
  CHECK_THROWS_WITH(
      attention_projections(random_tensor({kBatch, kSeq, kModel + 1}, 7), w, kHeadDim, table),
      doctest::Contains("(expected [out, 7])"));
}
