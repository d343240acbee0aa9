#pragma once
// Rotary embedding ("rotate half" pairing), fp32 math.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// x [B, T, H, 2·half] viewed as rows of 2·half; row r sits at sequence position (r / H) % T.
// Token n's H rows start at element n·x_stride of x and n·out_stride of out (H·2·half when
// contiguous; more when they are a column window of a wider matrix).
struct RopeDims {
  int64_t rows, seq_len, heads, half, position_offset, x_stride, out_stride;
};

// Rotates each pair (i, i + half) of every row by +angle (direction 1) or −angle (−1), with the
// cos/sin tables [positions, half] stored in table_dtype (x's dtype, or f32 for a bf16 x).
void rope(const void* x, void* out, DType dtype, const void* cos, const void* sin,
          DType table_dtype, const RopeDims& dims, float direction);

}  // namespace ssa::cuda
