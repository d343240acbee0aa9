// Errors of the ops on CUDA tensors: they name the op and the bad value; weight gradients added
// by the product (and the embedding's, by its backward) into their f32 buffers, and input gradients
// (a product's, SmoothL1's) into the one summed so far. (The parity of every op with the CPU:
// test_gpu_op_table.cpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cuda/runtime/memory.h"
#include "op_checks.h"
#include "op_test_util.h"
#include "ops/attention_projections.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gate.h"
#include "ops/linear.h"
#include "ops/smooth_l1.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// bf16 weights of these shapes as adjacent views of one buffer, each requiring grad; with
// `buffered`, each grad() a view of one f32 buffer of ones (as the model's, after an earlier
// gradient of 1), in the same order.
std::vector<Tensor> bf16_weights(const std::vector<Shape>& shapes, bool buffered) {
  int64_t total = 0;
  for (const Shape& s : shapes) total += s.numel();
  const Tensor values = random_tensor({total}, 5, DType::f32, false).to(Device::cuda);
  const Tensor weights = values.to(DType::bf16);
  const Tensor grads = Tensor::full({total}, 1.0, DType::f32, Device::cuda);
  std::vector<Tensor> out;
  int64_t offset = 0;
  for (const Shape& s : shapes) {
    out.push_back(weights.view(offset, s));
    out.back().set_requires_grad(true);
    if (buffered) out.back().set_grad(grads.view(offset, s));
    offset += s.numel();
  }
  return out;
}

// Each buffered gradient minus its 1 against the gradient computed without buffers.
void check_added_into_buffers(const std::vector<Tensor>& buffered,
                              const std::vector<Tensor>& plain) {
  for (size_t i = 0; i < buffered.size(); ++i) {
    CAPTURE(i);
    REQUIRE(buffered[i].grad().dtype() == DType::f32);
    const std::vector<double> want = plain[i].grad().to(DType::f32).to_vector();
    std::vector<double> got = buffered[i].grad().to_vector();
    for (double& g : got) g -= 1.0;
    CHECK(relative_error(got, want) < 2e-2);  // the plain gradient is rounded to bf16
  }
}

}  // namespace

TEST_CASE("gpu: weight gradients are added into their f32 buffers by the product") {
  const Tensor x = random_tensor({3, 5, 16}, 1, DType::f32, false).to(Device::cuda).to(DType::bf16);
  const Tensor dy = random_tensor({3, 5, 8}, 2, DType::f32, false).to(Device::cuda).to(DType::bf16);
  std::vector<Tensor> weights[2];
  for (bool buffered : {true, false}) {
    weights[buffered] = bf16_weights({{8, 16}}, buffered);
    backward(linear(x, weights[buffered][0]), dy);
  }
  check_added_into_buffers(weights[1], weights[0]);

  // The attention projections: one product into the four adjacent buffers.
  const std::vector<Shape> shapes{{4 * 8, 16}, {8, 16}, {8, 16}, {4, 16}};
  const RopeTable table = rope_table(5, 8, 10000.0, DType::f32, Device::cuda);
  std::vector<Tensor> projections[2];
  for (bool buffered : {true, false}) {
    const std::vector<Tensor> w = bf16_weights(shapes, buffered);
    const AttentionInputs out = attention_projections(x, {w[0], w[1], w[2], w[3]}, 8, table, 0);
    backward(add(add(sum(mul(out.q, out.q)), sum(mul(out.k, out.v))), sum(out.gate_logits)));
    projections[buffered] = w;
  }
  check_added_into_buffers(projections[1], projections[0]);
}

// 1200 tokens over ids 0..19 of a 64-row table (runs of about 60 over chunks of 32 sorted
// positions; rows 20..63 unused), in runs of 8 columns (24) and element by element (19).
TEST_CASE("gpu: the embedding adds its table gradient into the f32 buffer, at the ids' rows only") {
  const Tensor ids = random_ids({4, 300}, 20, 3).to(Device::cuda);
  for (const int64_t dim : {24, 19}) {
    CAPTURE(dim);
    const Tensor dout =
        random_tensor({4, 300, dim}, 4, DType::f32, false).to(Device::cuda).to(DType::bf16);
    std::vector<Tensor> tables[2];
    for (bool buffered : {true, false}) {
      tables[buffered] = bf16_weights({{64, dim}}, buffered);
      backward(embedding(ids, tables[buffered][0]), dout);
    }
    check_added_into_buffers(tables[1], tables[0]);
    const std::vector<double> unused = tables[1][0].grad().view(20 * dim, {44, dim}).to_vector();
    CHECK(std::all_of(unused.begin(), unused.end(), [](double g) { return g == 1.0; }));

    // An unwritten buffer is overwritten: its NaNs become the sums, and zeros where unused.
    const Tensor& table = tables[1][0];
    table.grad().copy_from(Tensor::full(table.shape(), NAN, DType::f32, Device::cuda));
    table.set_grad_unwritten(true);
    backward(embedding(ids, table), dout);
    const std::vector<double> want = tables[0][0].grad().to(DType::f32).to_vector();
    const std::vector<double> got = table.grad().to_vector();
    CHECK(relative_error(got, want) < 1e-2);  // the plain gradient is rounded to bf16
    CHECK(got.back() == 0.0);
  }
}

TEST_CASE("gpu: the embedding's backward into a buffer allocates no table-sized gradient") {
  constexpr int64_t kVocab = 100000, kDim = 64;
  const Tensor ids = random_ids({1000}, kVocab, 5).to(Device::cuda);
  const Tensor dout =
      random_tensor({1000, kDim}, 6, DType::f32, false).to(Device::cuda).to(DType::bf16);
  const Tensor table = bf16_weights({{kVocab, kDim}}, true)[0];
  Tensor out = embedding(ids, table);
  const size_t before = cuda::memory_stats().allocated;
  cuda::reset_peak_memory();
  backward(out, dout);
  const size_t growth = cuda::memory_stats().peak - before;
  std::printf("embedding backward into its buffer: %zu bytes at the peak\n", growth);
  CHECK(growth < kVocab * kDim * sizeof(bf16) / 4);
}

TEST_CASE("gpu: a product adds its input gradient into the one summed so far, in bf16") {
  // Two products of one activation h = x ⊙ x: the second's dh is written into the first's by
  // cuBLAS (beta = 1, one rounding); against the same graph on the CPU in f64.
  std::vector<double> grads[2];
  for (const Device device : {Device::cpu, Device::cuda}) {
    const DType dtype = device == Device::cpu ? DType::f64 : DType::bf16;
    auto leaf = [&](const Shape& shape, uint64_t seed) {
      Tensor t = random_tensor(shape, seed, DType::f32, false).to(device).to(dtype);
      t.set_requires_grad(true);
      return t;
    };
    Tensor x = leaf({6, 32}, 11), w1 = leaf({24, 32}, 12), w3 = leaf({40, 32}, 13);
    const Tensor h = mul(x, x);
    backward(add(sum(mul(linear(h, w1), linear(h, w1))), sum(linear(h, w3))));
    grads[device == Device::cuda] = x.grad().to(Device::cpu).to(DType::f64).to_vector();
  }
  CHECK(relative_error(grads[1], grads[0]) < 3e-2);
}

// In ssa mode the alignment loss's backward runs after the output projection's, which has given
// one side (the output the layer passes on) a gradient: SmoothL1 adds its own into it, with the
// bits of the separate sum. Either side, both dtypes.
TEST_CASE("gpu: smooth_l1 adds its gradient into the one summed so far, as a separate sum would") {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const bool on_a : {true, false}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(on_a);
      auto draw = [&](uint64_t seed) {
        return random_tensor({4, 100}, seed, DType::f32, false, 2.0).to(Device::cuda).to(dtype);
      };
      const Tensor weights = draw(23);
      Tensor a = draw(21), b = draw(22), a_alone = a.clone(), b_alone = b.clone();
      for (Tensor* t : {&a, &b, &a_alone, &b_alone}) t->set_requires_grad(true);
      // scale(·, 1) makes each side an op's output, whose gradients autograd sums; the product's
      // backward (recorded later) runs first.
      const Tensor x = scale(a, 1.0), y = scale(b, 1.0);
      backward(add(smooth_l1(x, y, 1.0), sum(mul(on_a ? x : y, weights))));
      backward(smooth_l1(a_alone, b_alone, 1.0));
      const Tensor summed = add(on_a ? a_alone.grad() : b_alone.grad(), weights);
      CHECK((on_a ? a : b).grad().to_vector() == summed.to_vector());
      CHECK((on_a ? b : a).grad().to_vector() == (on_a ? b_alone : a_alone).grad().to_vector());
    }
  }
}

namespace {

// gated_smooth_l1(a, b, logits) and smooth_l1(a, head_gate(b, logits)) on the GPU: the same loss
// and gradients to the bit; a made by an op, and with a_summed also read by a product whose
// backward runs first (a's gradient is then added into that one's).
void check_gated_smooth_l1_bits(DType dtype, const Shape& o, double beta, bool a_summed) {
  auto draw = [&](const Shape& shape, uint64_t seed) {
    return random_tensor(shape, seed, DType::f32, false, 2.0).to(Device::cuda).to(dtype);
  };
  const Tensor weights = draw(o, 31);
  std::vector<Tensor> fused{draw(o, 32), draw(o, 33), draw({o[0], o[1], o[2]}, 34)};
  std::vector<Tensor> plain;
  for (Tensor& t : fused) {
    plain.push_back(t.clone());
    t.set_requires_grad(true);
    plain.back().set_requires_grad(true);
  }
  auto loss = [&](const std::vector<Tensor>& x, bool one_pass) {
    const Tensor a = scale(x[0], 1.0);
    const Tensor term =
        one_pass ? gated_smooth_l1(a, x[1], x[2], beta) : smooth_l1(a, head_gate(x[1], x[2]), beta);
    return a_summed ? add(term, sum(mul(a, weights))) : term;
  };
  const Tensor fused_loss = loss(fused, true), plain_loss = loss(plain, false);
  CHECK(fused_loss.to_vector() == plain_loss.to_vector());
  backward(fused_loss);
  backward(plain_loss);
  for (size_t i = 0; i < fused.size(); ++i) {
    CAPTURE(i);
    CHECK(fused[i].grad().to_vector() == plain[i].grad().to_vector());
  }
}

}  // namespace

// The alignment term of a gated model in one pass that never stores the gated b, against the
// two ops it replaces: head_dim 64 and 128 (the attention kernels'), a beta whose inverse is
// inexact in float.
TEST_CASE("gpu: gated_smooth_l1 has the bits of smooth_l1(a, head_gate(b, logits))") {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const bool a_summed : {true, false}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(a_summed);
      check_gated_smooth_l1_bits(dtype, {2, 7, 3, 64}, 0.5, a_summed);
      check_gated_smooth_l1_bits(dtype, {1, 5, 2, 128}, 0.3, a_summed);
    }
  }
}

TEST_CASE("gpu: swiglu_linear has the bits of linear(swiglu(a, b), w), values and gradients") {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(dtype));
    check_swiglu_linear_bits(Device::cuda, dtype, 41, 45);   // the element-by-element kernel
    check_swiglu_linear_bits(Device::cuda, dtype, 256, 96);  // runs of 8
  }
}

TEST_CASE("gpu ops name themselves on bad input") {
  Tensor table = Tensor::zeros({10, 4}, DType::f32, Device::cuda);
  Tensor ids = Tensor::from({1, 10, 2}, {3}, DType::i32).to(Device::cuda);
  CHECK_THROWS_WITH_AS(
      embedding(ids, table),
      "embedding: id 10 at position 1 of ids [3] is outside the vocabulary [0, 10)", Error);
  Tensor targets = Tensor::from({0, -1, 12}, {3}, DType::i32).to(Device::cuda);
  CHECK_THROWS_WITH_AS(
      cross_entropy(table.view(0, {3, 10}), targets),
      "cross_entropy: target 12 of row 2 is outside [0, 10) and is not ignore_index -1", Error);
  Tensor f64 = Tensor::zeros({4}, DType::f64, Device::cuda);
  CHECK_THROWS_WITH_AS(add(f64, f64),
                       "add: dtype f64 is not supported on CUDA (expected f32 or bf16)", Error);
}
