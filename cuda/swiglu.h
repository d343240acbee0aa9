#pragma once
// SwiGLU, out = silu(a) · b elementwise, and its backward; fp32 math.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

void swiglu_forward(const void* a, const void* b, void* out, DType dtype, int64_t n);
// da = g · b · s · (1 + a · (1 − s)), db = g · a · s, with s = sigmoid(a); out (unless null)
// gets silu(a) · b with the bits of swiglu_forward. da may be g.
void swiglu_backward(const void* a, const void* b, const void* g, void* da, void* db, void* out,
                     DType dtype, int64_t n);

}  // namespace ssa::cuda
