// The flash-attention kernels against the CPU op in float64 on the same (rounded) inputs:
// forward output and dq, dk, dv, in f32 and bf16; bit-identical reruns.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention_tolerances.h"
#include "op_test_util.h"
#include "ops/attention.h"

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

void check_against_cpu(const Config& c, DType dtype, double tolerance, uint64_t seed) {
  CAPTURE(c.batch);
  CAPTURE(c.q_len);
  CAPTURE(c.k_len);
  CAPTURE(c.heads);
  CAPTURE(c.kv_heads);
  CAPTURE(c.head_dim);
  const Inputs in = random_inputs(c, dtype, seed);
  const auto want = run_attention(in, DType::f64, Device::cpu);
  const auto got = run_attention(in, dtype, Device::cuda);
  const std::string names[] = {"out", "dq", "dk", "dv"};
  for (size_t i = 0; i < want.size(); ++i) {
    const double error = relative_error(got[i], want[i]);
    CHECK_MESSAGE(error <= tolerance, names[i], " relative error ", error);
  }
}

// T = 1, odd, a tile, not a tile multiple; GQA 1, 4, 16; head_dim 64 and 128; decoding
// (Tq = 1, Tk = 300) and Tq < Tk.
const std::vector<Config> kShapes = {
    {1, 1, 1, 4, 1, 64},       {2, 7, 7, 4, 4, 128},      {2, 64, 64, 4, 1, 64},
    {1, 64, 64, 16, 1, 128},   {2, 100, 100, 16, 1, 64},  {2, 257, 257, 8, 2, 128},
    {1, 257, 257, 4, 4, 64},   {1, 1024, 1024, 4, 1, 64}, {1, 1024, 1024, 4, 4, 128},
    {2, 1, 300, 8, 2, 64},     {2, 1, 300, 16, 1, 128},   {1, 100, 257, 4, 1, 128},
};

}  // namespace

TEST_SUITE("gpu attention") {
  TEST_CASE("flash attention f32: forward and gradients match the CPU op") {
    for (const Config& c : kShapes) check_against_cpu(c, DType::f32, kAttentionF32Tolerance, 11);
    check_against_cpu({1, 4096, 4096, 2, 1, 64}, DType::f32, kAttentionF32Tolerance, 13);
  }

  TEST_CASE("flash attention f32: head_dim not a multiple of 16") {
    check_against_cpu({2, 33, 40, 4, 2, 4}, DType::f32, kAttentionF32Tolerance, 15);
    check_against_cpu({1, 70, 70, 2, 1, 100}, DType::f32, kAttentionF32Tolerance, 16);
  }

  TEST_CASE("flash attention bf16: forward and gradients match the CPU op") {
    for (const Config& c : kShapes) check_against_cpu(c, DType::bf16, kAttentionBf16Tolerance, 21);
    check_against_cpu({1, 4096, 4096, 2, 1, 128}, DType::bf16, kAttentionBf16Tolerance, 23);
  }

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

  TEST_CASE("flash attention: unsupported dtype or head_dim is an error naming the op") {
    auto zeros = [](Shape s, DType dtype) { return Tensor::zeros(s, dtype, Device::cuda); };
    const Tensor q64 = zeros({1, 4, 2, 64}, DType::f64), kv64 = zeros({1, 4, 1, 64}, DType::f64);
    CHECK_THROWS_WITH_AS(attention(q64, kv64, kv64), doctest::Contains("attention"), Error);
    const Tensor q = zeros({1, 4, 2, 32}, DType::bf16), kv = zeros({1, 4, 1, 32}, DType::bf16);
    CHECK_THROWS_WITH_AS(attention(q, kv, kv), doctest::Contains("head_dim"), Error);
  }
}
