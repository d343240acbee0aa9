// Generated from the op table (ops/op_table.h, op_cases.cpp): the table covers every op, the
// float64 gradcheck of every op with a gradient, and the parity harness of the CUDA test run on
// the CPU (f32 against f64).
#include <string>

#include "op_checks.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// Every op, in the order of enum Op.
std::vector<Op> all_ops() {
  std::vector<Op> ops;
  for (size_t i = 0; i < kOpCount; ++i) ops.push_back(static_cast<Op>(i));
  return ops;
}

bool any_requires_grad(const OpCase& c) {
  for (const Tensor& t : c.inputs)
    if (t.requires_grad()) return true;
  return false;
}

// The case on copies of its inputs, every float one requiring grad.
Tensor run_with_grads(const OpCase& c) {
  std::vector<Tensor> inputs;
  for (const Tensor& t : c.inputs) {
    inputs.push_back(t.clone());
    if (t.dtype() != DType::i32) inputs.back().set_requires_grad(true);
  }
  return c.f(inputs);
}

// CPU inputs, f64 or i32; gradients asked where the op has them; CUDA dtypes given.
void check_case_inputs(Op op, const OpCase& c, bool cuda_case) {
  CAPTURE(case_name(op, c));
  for (const Tensor& t : c.inputs)
    CHECK((t.is_cpu() && (t.dtype() == DType::f64 || t.dtype() == DType::i32)));
  CHECK(any_requires_grad(c) == op_info(op).has_gradient);
  if (cuda_case) CHECK_FALSE(c.cuda_dtypes.empty());
}

}  // namespace

TEST_CASE("op table: every op has CPU and CUDA cases, with gradients exactly where it has them") {
  for (Op op : all_ops()) {
    const OpEntry& entry = op_entry(op);
    CAPTURE(op_info(op).name);
    CHECK(entry.op == op);
    const std::vector<OpCase> cpu = entry.cpu_cases(), cuda = entry.cuda_cases();
    CHECK_FALSE(cpu.empty());
    CHECK_FALSE(cuda.empty());
    for (const OpCase& c : cpu) check_case_inputs(op, c, false);
    for (const OpCase& c : cuda) check_case_inputs(op, c, true);
    if (!op_info(op).has_gradient)
      for (const OpCase& c : cpu) CHECK_FALSE(run_with_grads(c).requires_grad());
  }
}

TEST_CASE("gradcheck: every op with a gradient, on its CPU cases") {
  for (Op op : all_ops()) {
    if (!op_info(op).has_gradient) continue;
    for (const OpCase& c : op_entry(op).cpu_cases()) {
      const std::string name = case_name(op, c);
      CAPTURE(name);
      CHECK_NOTHROW(check_case_gradients(c));
    }
  }
}

TEST_CASE("parity harness on the CPU: every op in f32 against f64, on its CPU cases") {
  for (Op op : all_ops()) {
    for (const OpCase& c : op_entry(op).cpu_cases()) {
      const std::string name = case_name(op, c);
      CAPTURE(name);
      CHECK_NOTHROW(check_parity(op, c, DType::f32, Device::cpu, op_entry(op).tolerance.f32));
    }
  }
}
