#pragma once
// The test inputs of every op of ops/op_table.h, one entry per Op. test_op_table.cpp generates
// from them the float64 gradcheck of every op with a gradient and the f32-against-f64 parity on
// the CPU; test_gpu_op_table.cpp the CPU-vs-CUDA parity, forward and backward, f32 and bf16.
#include <string>
#include <vector>

#include "op_test_util.h"
#include "ops/op_table.h"

namespace ssa::test {

// One call of an op.
struct OpCase {
  std::string arguments;  // what is not an input (transposes, beta, offsets), for messages
  OpFn f;
  // CPU; float inputs f64 (the harness rounds them), ids and selections i32. requires_grad marks
  // the inputs whose gradients are checked.
  std::vector<Tensor> inputs;
  std::vector<DType> cuda_dtypes = {DType::f32, DType::bf16};  // of a CUDA case
};

// Parity tolerance per dtype: max |got − reference| / max |reference| over each output and
// gradient. 0 (kExact): every value equals the reference rounded to the result's dtype.
struct Tolerance {
  double f32, bf16;
};
inline constexpr Tolerance kExact{0, 0};

struct OpEntry {
  Op op;
  Tolerance tolerance;
  // Small shapes and the edge cases of the op (T = 1, GQA groups, Tq < Tk, partial blocks):
  // the f64 gradcheck, and f32 against f64 on the CPU.
  std::vector<OpCase> (*cpu_cases)();
  // The shapes the CUDA kernels need checked (partial tiles, long rows, both head_dims): CUDA
  // against f64 on the CPU.
  std::vector<OpCase> (*cuda_cases)();
};

const OpEntry& op_entry(Op op);

// "matmul [3, 5] [5, 4] ta=0 tb=1": the op, its input shapes and its other arguments.
std::string case_name(Op op, const OpCase& c);

}  // namespace ssa::test
