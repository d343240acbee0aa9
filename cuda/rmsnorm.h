#pragma once
// RMSNorm over rows of `dim`: fp32 statistics whatever the storage dtype (f32 or bf16).
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// y = x · rstd · w per row, rstd = 1 / sqrt(mean(x²) + eps); rstd[rows] (f32) is kept for backward.
void rmsnorm_forward(const void* x, const void* weight, void* y, float* rstd, DType dtype,
                     int64_t rows, int64_t dim, double eps);

// dx = rstd · (dy·w − x̂ · mean(dy·w·x̂)) with x̂ = x · rstd.
void rmsnorm_backward_input(const void* x, const void* weight, const void* dy, const float* rstd,
                            void* dx, DType dtype, int64_t rows, int64_t dim);

// dw_j = Σ_r dy[r, j] · x̂[r, j]: each block sums a fixed chunk of rows for 32 columns, then the
// chunks are summed in order, so the result is bit-reproducible.
void rmsnorm_backward_weight(const void* x, const void* dy, const float* rstd, void* dw,
                             DType dtype, int64_t rows, int64_t dim);

}  // namespace ssa::cuda
