#pragma once
// SwiGLU, out = silu(a) · b elementwise, and its backward; fp32 math.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// The operands' layout: rows of `width` elements; a and b (and da, db) have their rows `pitch`
// elements apart (pitch == width: contiguous; 2·width: the two halves of one stacked product),
// out and g are contiguous [rows, width].
struct SwigluRows {
  int64_t rows, width, pitch;
};

void swiglu_forward(const void* a, const void* b, void* out, DType dtype, const SwigluRows& rows);
// da = g · b · s · (1 + a · (1 − s)), db = g · a · s, with s = sigmoid(a).
void swiglu_backward(const void* a, const void* b, const void* g, void* da, void* db, DType dtype,
                     const SwigluRows& rows);

}  // namespace ssa::cuda
