#pragma once
// The checks generated from the op table (op_cases.h), one case at a time.
#include <string>

#include "op_cases.h"

namespace ssa::test {

// The f64 gradcheck of the case, for every input that requires grad (i32 inputs held fixed).
void check_case_gradients(const OpCase& c);

// The op in `dtype` on `device` against the op in f64 on the CPU, both on the case's inputs
// rounded to `dtype` and, for an op with a gradient, both after backward from the same random
// output gradient (rounded to `dtype`): the output and every gradient lie on `device`, the
// gradients in `dtype`, within `tolerance` of the reference (kExact's 0: equal to it rounded to
// their dtype), and a second run gives the same bits. Returns the errors, output first, for the
// log.
std::string check_parity(Op op, const OpCase& c, DType dtype, Device device, double tolerance);

// swiglu_linear(a, b, w) against linear(swiglu(a, b), w), a and b [3, 5, hidden], w [out,
// hidden], random, of `dtype` on `device`, backward from the same random gradient: the outputs
// and the gradients of a, b and w must be the same bits.
void check_swiglu_linear_bits(Device device, DType dtype, int64_t hidden, int64_t out);

}  // namespace ssa::test
