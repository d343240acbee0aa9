// The sparse path on the GPU: block means in k's dtype, ties in the selection,
// block_sparse_attention as the composition of the GPU ops with bit-identical reruns, errors for
// what the kernels do not take. (The parity of block_means, select_blocks and sparse_attention
// with the CPU ops: test_gpu_op_table.cpp.)
#include <doctest/doctest.h>

#include <vector>

#include "op_test_util.h"
#include "ops/sparse_attention.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Config {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim, block_size, top_k;
};

struct Inputs {
  Tensor q, k, v, d_out;
};

// Inputs drawn in f64 and rounded to the tested dtype, so reference and kernel see equal values.
Inputs random_inputs(const Config& c, DType dtype, uint64_t seed) {
  auto draw = [&](Shape shape, uint64_t offset, double scale) {
    return random_tensor(shape, seed + offset, DType::f64, false, scale).to(dtype);
  };
  const Shape q_shape{c.batch, c.q_len, c.heads, c.head_dim};
  const Shape kv_shape{c.batch, c.k_len, c.kv_heads, c.head_dim};
  return {draw(q_shape, 0, 1.5), draw(kv_shape, 1, 1.5), draw(kv_shape, 2, 1.0),
          draw(q_shape, 3, 1.0)};
}

Tensor on(const Tensor& t, DType dtype, Device device) { return t.to(dtype).to(device); }

// The GPU's selection for the inputs (block means and selection on the GPU).
Tensor gpu_selection(const Config& c, const Inputs& in, DType dtype) {
  const Tensor k = on(in.k, dtype, Device::cuda);
  return select_blocks(on(in.q, dtype, Device::cuda), block_means(k, c.block_size), c.k_len,
                       c.block_size, c.top_k);
}

// Output and gradients (dq, dk, dv) of sparse_attention with `selection` on `device`, as f64.
std::vector<std::vector<double>> run_sparse(const Config& c, const Inputs& in,
                                            const Tensor& selection, DType dtype, Device device) {
  auto prepare = [&](const Tensor& t) {
    Tensor moved = on(t, dtype, device);
    moved.set_requires_grad(true);
    return moved;
  };
  const Tensor q = prepare(in.q), k = prepare(in.k), v = prepare(in.v);
  const Tensor out = sparse_attention(q, k, v, selection.to(device), c.block_size);
  const std::vector<Tensor> grads = out.grad_fn()->backward(on(in.d_out, dtype, device));
  return {out.to_vector(), grads[0].to_vector(), grads[1].to_vector(), grads[2].to_vector()};
}

size_t mismatches(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  size_t count = 0;
  for (size_t i = 0; i < got.size(); ++i) count += got[i] != want[i];
  return count;
}

}  // namespace

TEST_SUITE("gpu sparse attention") {
  TEST_CASE("sparse block_means on the GPU keeps k's dtype") {
    const Config c{2, 100, 100, 4, 2, 64, 16, 1};
    for (DType dtype : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(dtype));
      const Tensor k = on(random_inputs(c, dtype, 5).k, dtype, Device::cuda);
      CHECK(block_means(k, c.block_size).dtype() == dtype);
    }
  }

  TEST_CASE("sparse select_blocks on the GPU breaks ties toward the lower block index") {
    const Config c{2, 200, 200, 8, 2, 64, 16, 5};
    const Tensor q = Tensor::zeros({2, 200, 8, 64}, DType::f32, Device::cuda);  // equal scores
    const Tensor k = random_inputs(c, DType::f32, 9).k.to(Device::cuda);
    const std::vector<double> got = select_blocks(q, block_means(k, 16), 200, 16, 5).to_vector();
    std::vector<double> want;
    for (int64_t row = 0; row < 2 * 200 * 2; ++row) {  // rows (b, t, kv head)
      const int64_t own = row / 2 % 200 / 16;
      for (int64_t slot = 0; slot < 5; ++slot)
        want.push_back(own < 5 ? (slot <= own ? slot : -1) : (slot < 4 ? slot : own));
    }
    CHECK(mismatches(got, want) == 0);
  }

  TEST_CASE("sparse attention: block_sparse_attention composes the GPU ops; reruns are identical") {
    const Config c{2, 257, 257, 8, 2, 64, 16, 4};
    for (DType dtype : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(dtype));
      const Inputs in = random_inputs(c, dtype, 41);
      auto run_block_sparse = [&] {
        Tensor q = on(in.q, dtype, Device::cuda), k = on(in.k, dtype, Device::cuda),
               v = on(in.v, dtype, Device::cuda);
        for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
        backward(block_sparse_attention(q, k, v, c.block_size, c.top_k),
                 on(in.d_out, dtype, Device::cuda));
        return std::vector<std::vector<double>>{q.grad().to_vector(), k.grad().to_vector(),
                                                v.grad().to_vector()};
      };
      const auto first = run_block_sparse();
      CHECK(first == run_block_sparse());
      const auto composed = run_sparse(c, in, gpu_selection(c, in, dtype), dtype, Device::cuda);
      CHECK(first[0] == composed[1]);
      CHECK(first[1] == composed[2]);
      CHECK(first[2] == composed[3]);
    }
  }

  TEST_CASE("sparse attention: unsupported inputs are errors naming the op") {
    auto zeros = [](Shape s, DType dtype) { return Tensor::zeros(s, dtype, Device::cuda); };
    const Tensor q64 = zeros({1, 32, 2, 64}, DType::f64), kv64 = zeros({1, 32, 1, 64}, DType::f64);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q64, kv64, kv64, 16, 2),
                         doctest::Contains("f32 or bf16"), Error);
    const Tensor q = zeros({1, 32, 2, 32}, DType::bf16), kv = zeros({1, 32, 1, 32}, DType::bf16);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q, kv, kv, 16, 2), doctest::Contains("head_dim"),
                         Error);
    const Tensor q_ok = zeros({1, 32, 2, 64}, DType::f32), kv_ok = zeros({1, 32, 1, 64}, DType::f32);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q_ok, kv_ok, kv_ok, 8, 2),
                         doctest::Contains("multiple of 16"), Error);
    const Tensor after_own = Tensor::from(std::vector<double>(32, 1.0), {1, 32, 1, 1}, DType::i32);
    CHECK_THROWS_WITH_AS(sparse_attention(q_ok, kv_ok, kv_ok, after_own.to(Device::cuda), 16),
                         doctest::Contains("selection row (b 0, t 0, kv head 0)"), Error);
    CHECK_THROWS_AS(sparse_attention(q_ok, kv_ok, kv_ok, after_own, 16), Error);  // on the CPU
  }
}
