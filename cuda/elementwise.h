#pragma once
// Elementwise kernels over n contiguous elements: f32 or bf16 storage, fp32 math.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

void add(const void* a, const void* b, void* out, DType dtype, int64_t n);
void mul(const void* a, const void* b, void* out, DType dtype, int64_t n);
// out = a · factor, the product taken in double and rounded once (as the CPU op does).
void scale(const void* a, void* out, DType dtype, double factor, int64_t n);
// dst += src: the same dtype (f32, f64 or bf16), or a bf16 src into an f32 dst.
void accumulate(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);
// out[i] = g[0] · factor with g a device scalar, so the host never waits to read it.
void broadcast_scalar(const void* g, DType g_dtype, double factor, void* out, DType out_dtype,
                      int64_t n);

}  // namespace ssa::cuda
