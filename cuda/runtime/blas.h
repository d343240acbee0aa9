#pragma once
// Matrix products through cuBLAS, on compute_stream(), with one handle and its own workspace.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// c[i] = op(a[i]) · op(b[i]) for i < batch, every matrix row-major and densely packed;
// op(a) is [m, k], op(b) is [k, n], c is [m, n].
struct GemmDims {
  int64_t batch, m, n, k;
  bool transpose_a, transpose_b;
};

// f32: fp32 compute without TF32 (CUBLAS_COMPUTE_32F); bf16: bf16 operands and result, fp32
// accumulation. Deterministic: the same inputs give the same bits on the same GPU. A bf16
// product (batch 1) runs through cuBLASLt with the algorithm its shape was given on its first
// product: the fastest of the heuristic's candidates whose result has the bits of its first.
void gemm(const void* a, const void* b, void* c, DType dtype, const GemmDims& dims);
// c[i] += op(a[i]) · op(b[i]) (add), or c[i] = op(a[i]) · op(b[i]), with a, b of dtype (f32 or
// bf16) and c of c_dtype (f32, or dtype), fp32 accumulation, c rounded once: a weight gradient
// written into the f32 gradient buffer, or an input gradient added into the one already summed,
// by the product itself. Deterministic.
void gemm_into(const void* a, const void* b, void* c, DType dtype, DType c_dtype,
               const GemmDims& dims, bool add);

}  // namespace ssa::cuda
