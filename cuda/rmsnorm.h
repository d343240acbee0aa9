#pragma once
// RMSNorm over rows of `dim`: fp32 statistics whatever the storage dtype (f32 or bf16).
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// y = x · rstd · w per row, rstd = 1 / sqrt(mean(x²) + eps); rstd[rows] (f32) is kept for backward.
// With a residual, the norm is of s = x + residual, rounded to dtype and written to sum: a
// residual stream's add and the norm after it in one pass.
void rmsnorm_forward(const void* x, const void* weight, void* y, float* rstd, DType dtype,
                     int64_t rows, int64_t dim, double eps, const void* residual = nullptr,
                     void* sum = nullptr);

// dx = rstd · (dy·w − x̂ · mean(dy·w·x̂)) with x̂ = x · rstd, and dw_j = Σ_r dy[r, j] · x̂[r, j]
// (either may be null: not computed). dw is summed over fixed chunks of rows, then over the
// chunks in order, so it is bit-reproducible; one pass over x and dy gives both where the row
// kernels take the shape. d_through, when not null, is added to dx rounded to dtype (the
// gradient of a residual sum that reaches it past the norm as well: the same bits as adding the
// two gradients after the norm's backward).
void rmsnorm_backward(const void* x, const void* weight, const void* dy, const float* rstd,
                      void* dx, void* dw, DType dtype, int64_t rows, int64_t dim,
                      const void* d_through = nullptr);

}  // namespace ssa::cuda
