// Errors of the ops on CUDA tensors: they name the op and the bad value. (The parity of every
// op with the CPU: test_gpu_op_table.cpp.)
#include <doctest/doctest.h>

#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"

using namespace ssa;

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
