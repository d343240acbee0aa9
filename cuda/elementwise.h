#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// dst[i] += src[i] for f32 or f64 device arrays.
void add_inplace(void* dst, const void* src, DType dtype, int64_t n);

}  // namespace ssa::cuda
