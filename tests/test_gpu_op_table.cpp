// CPU-vs-CUDA parity of every op of the op table (ops/op_table.h, op_cases.cpp) on its CUDA
// cases: forward and every input gradient, in f32 and bf16, against the CPU op in f64 on the
// same (rounded) inputs, so the error measures the GPU arithmetic alone; a second GPU run gives
// the same bits. Prints one line per case and dtype: the errors, output first.
#include <algorithm>
#include <cstdio>
#include <string>

#include "op_checks.h"

using namespace ssa;
using namespace ssa::test;

namespace {

void check_every_op(DType dtype) {
  for (size_t i = 0; i < kOpCount; ++i) {
    const Op op = static_cast<Op>(i);
    const OpEntry& entry = op_entry(op);
    const double tolerance = dtype == DType::f32 ? entry.tolerance.f32 : entry.tolerance.bf16;
    for (const OpCase& c : entry.cuda_cases()) {
      if (std::find(c.cuda_dtypes.begin(), c.cuda_dtypes.end(), dtype) == c.cuda_dtypes.end())
        continue;
      const std::string name = case_name(op, c);
      CAPTURE(name);
      std::string errors;
      CHECK_NOTHROW(errors = check_parity(op, c, dtype, Device::cuda, tolerance));
      std::printf("parity %-60s %-4s%s\n", name.c_str(), std::string(dtype_name(dtype)).c_str(),
                  errors.c_str());
    }
  }
}

}  // namespace

TEST_CASE("gpu parity: every op in f32 against f64 on the CPU") { check_every_op(DType::f32); }

TEST_CASE("gpu parity: every op in bf16 against f64 on the CPU") { check_every_op(DType::bf16); }
