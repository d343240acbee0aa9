#pragma once
#include "core/tensor.h"

namespace ssa {

// cos/sin of position p and frequency i: angle = p · theta^(-2i/head_dim), i < head_dim/2.
// Computed in double, stored in `dtype`. Shapes [max_positions, head_dim/2].
struct RopeTable {
  Tensor cos, sin;
  int64_t max_positions() const { return cos.dim(0); }
};
RopeTable rope_table(int64_t max_positions, int64_t head_dim, double theta, DType dtype,
                     Device device = Device::cpu);

// Rotary embedding, "rotate half" pairing (element i with i + head_dim/2, as in HF Llama):
//   out[i]      = x[i]·cos − x[i+h]·sin,   out[i+h] = x[i+h]·cos + x[i]·sin,   h = head_dim/2,
// at position position_offset + t for x[b, t, head, :]. x: [B, T, H, head_dim]. A position past
// the table is an error. Backward rotates the gradient back (the rotation is orthogonal).
// The table has x's dtype, or f32 for a bf16 x (CUDA: the angles then keep fp32 precision).
Tensor rope(const Tensor& x, const RopeTable& table, int64_t position_offset = 0);

// Columns column .. of every row of a 2-D matrix.
struct ColumnWindow {
  Tensor matrix;
  int64_t column;
};

// The same rotation, not recorded, between a column window of a matrix [B·T, width] and a
// tensor [B, T, H, head_dim] of its own: for an op whose one product holds q and k side by side
// (ops/attention_projections.h). rope_from_columns returns rope(window as x of `shape`);
// rope_back_into_columns writes grad rotated back into the window.
Tensor rope_from_columns(const ColumnWindow& x, const Shape& shape, const RopeTable& table,
                         int64_t position_offset);
void rope_back_into_columns(const Tensor& grad, const ColumnWindow& out, const RopeTable& table,
                            int64_t position_offset);

}  // namespace ssa
