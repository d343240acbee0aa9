// The flash-attention kernels: bit-identical reruns, gradients through autograd, both bf16
// kernel families, errors. (Their parity with the CPU op, forward and dq, dk, dv in f32 and
// bf16: test_gpu_op_table.cpp.)
#include <doctest/doctest.h>

#include <cstdlib>
#include <vector>

#include "op_test_util.h"
#include "ops/attention.h"
#include "parity_tolerances.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Config {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
};

// Inputs drawn in f64 and rounded to the tested dtype, so reference and kernel see equal values.
struct Inputs {
  Tensor q, k, v, d_out;
};

Inputs random_inputs(const Config& c, DType dtype, uint64_t seed) {
  auto draw = [&](Shape shape, uint64_t offset, double scale) {
    return random_tensor(shape, seed + offset, DType::f64, false, scale).to(dtype);
  };
  const Shape q_shape{c.batch, c.q_len, c.heads, c.head_dim};
  const Shape kv_shape{c.batch, c.k_len, c.kv_heads, c.head_dim};
  return {draw(q_shape, 0, 1.5), draw(kv_shape, 1, 1.5), draw(kv_shape, 2, 1.0),
          draw(q_shape, 3, 1.0)};
}

// Output and gradients (dq, dk, dv) of attention on `device`, as f64 host vectors.
std::vector<std::vector<double>> run_attention(const Inputs& in, DType dtype, Device device) {
  auto prepare = [&](const Tensor& t) {
    Tensor moved = t.to(dtype).to(device);
    moved.set_requires_grad(true);
    return moved;
  };
  const Tensor q = prepare(in.q), k = prepare(in.k), v = prepare(in.v);
  const Tensor out = attention(q, k, v);
  const std::vector<Tensor> grads = out.grad_fn()->backward(in.d_out.to(dtype).to(device));
  return {out.to_vector(), grads[0].to_vector(), grads[1].to_vector(), grads[2].to_vector()};
}

}  // namespace

TEST_SUITE("gpu attention") {
  TEST_CASE("flash attention: forward and backward are bit-identical on reruns") {
    const Config c{2, 257, 257, 8, 2, 64};
    for (DType dtype : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(dtype));
      const Inputs in = random_inputs(c, dtype, 31);
      CHECK(run_attention(in, dtype, Device::cuda) == run_attention(in, dtype, Device::cuda));
    }
  }

  TEST_CASE("flash attention: leaf gradients flow through autograd") {
    const Config c{1, 50, 50, 4, 2, 64};
    const Inputs in = random_inputs(c, DType::f32, 41);
    Tensor q = in.q.to(Device::cuda), k = in.k.to(Device::cuda), v = in.v.to(Device::cuda);
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
    backward(attention(q, k, v), in.d_out.to(Device::cuda));
    const auto want = run_attention(in, DType::f32, Device::cuda);
    CHECK(q.grad().to_vector() == want[1]);
    CHECK(k.grad().to_vector() == want[2]);
    CHECK(v.grad().to_vector() == want[3]);
  }

  // On a Hopper GPU the bf16 kernels at head_dim 64 are the wgmma ones; SSA_NO_WGMMA=1 keeps
  // the mma.sync ones (elsewhere both runs take the latter). Each must match the CPU in f64.
  TEST_CASE("flash attention: the wgmma and the mma.sync bf16 kernels both match the CPU") {
    for (const Config& c : {Config{1, 300, 300, 4, 1, 64}, Config{2, 100, 257, 8, 2, 64},
                            Config{1, 1000, 1000, 16, 1, 64}, Config{1, 700, 1500, 16, 2, 64}}) {
      CAPTURE(c.q_len);
      const Inputs in = random_inputs(c, DType::bf16, 51);
      const auto want = run_attention(in, DType::f64, Device::cpu);
      const auto wgmma = run_attention(in, DType::bf16, Device::cuda);
      setenv("SSA_NO_WGMMA", "1", 1);
      const auto mma = run_attention(in, DType::bf16, Device::cuda);
      unsetenv("SSA_NO_WGMMA");
      for (size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);  // out, dq, dk, dv
        CHECK(relative_error(wgmma[i], want[i]) <= kAttentionBf16Tolerance);
        CHECK(relative_error(mma[i], want[i]) <= kAttentionBf16Tolerance);
      }
    }
  }

  // Keys scaled up along the sequence: a row's largest score grows tile after tile, so its
  // running max moves again and again and O is rescaled by factors far from 1. Random scores
  // settle in the first tile.
  TEST_CASE("flash attention: bf16 matches the CPU when later keys raise a row's max") {
    const Config c{1, 1000, 1000, 4, 1, 64};
    Inputs in = random_inputs(c, DType::bf16, 71);
    in.k = grown_along_sequence(in.k, 100.0);
    const auto want = run_attention(in, DType::f64, Device::cpu);
    const auto got = run_attention(in, DType::bf16, Device::cuda);
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);  // out, dq, dk, dv
      CHECK(relative_error(got[i], want[i]) <= kAttentionBf16Tolerance);
    }
  }

  // B 8, T 4096, 16 heads on one KV head: each dK/dV CTA takes two query heads of the group (the
  // head split, on the wgmma kernels), with up to 64 query tiles per head.
  TEST_CASE(
      "flash attention: bf16 with two query heads per dK/dV CTA matches f32, bit-identically") {
    const Config c{8, 4096, 4096, 16, 1, 64};
    const Inputs in = random_inputs(c, DType::bf16, 61);
    const auto want = run_attention(in, DType::f32, Device::cuda);
    const auto got = run_attention(in, DType::bf16, Device::cuda);
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);  // out, dq, dk, dv
      CHECK(relative_error(got[i], want[i]) <= kAttentionBf16Tolerance);
    }
    CHECK(run_attention(in, DType::bf16, Device::cuda) == got);
  }

  TEST_CASE("flash attention: unsupported dtype or head_dim is an error naming the op") {
    auto zeros = [](Shape s, DType dtype) { return Tensor::zeros(s, dtype, Device::cuda); };
    const Tensor q64 = zeros({1, 4, 2, 64}, DType::f64), kv64 = zeros({1, 4, 1, 64}, DType::f64);
    CHECK_THROWS_WITH_AS(attention(q64, kv64, kv64), doctest::Contains("attention"), Error);
    const Tensor q = zeros({1, 4, 2, 32}, DType::bf16), kv = zeros({1, 4, 1, 32}, DType::bf16);
    CHECK_THROWS_WITH_AS(attention(q, kv, kv), doctest::Contains("head_dim"), Error);
  }
}
