#pragma once
#include <vector>

#include "core/tensor.h"

namespace ssa {

// y[..., out] = x[..., in] · w[out, in]ᵀ (w in PyTorch's layout). Backward: dx = dy·w (added into
// the gradient backward() has summed for x so far, when it offers it: pending_gradient), dw =
// dyᵀ·x (weight_gradients).
Tensor linear(const Tensor& x, const Tensor& w);
// x [..., n] viewed as [rows, n] (a reshape: shares x's storage).
Tensor as_matrix(const Tensor& x);

// c = op(a) · op(b), op = transpose when asked. 2-D [m,k]·[k,n], or batched 3-D with equal
// leading batch dimension.
// CPU: both run Eigen GEMMs over a tile grid fixed by the shape, threaded with OpenMP; results are
// bit-identical for any thread count. CUDA: cuBLAS, f32 without TF32, or bf16 with fp32
// accumulation (cuda/runtime/blas.h).
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);
// The same product, checked but not recorded: for ops whose own backward takes products.
Tensor matrix_product(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);
// c += op(a) · op(b) (add) or c = op(a) · op(b) for 2-D operands, c in f32 or a's dtype (a and b
// f32 or bf16); on CUDA one product with the result written by cuBLAS (no product tensor, no
// separate add).
void matrix_product_into(const Tensor& c, const Tensor& a, const Tensor& b, bool transpose_a,
                         bool transpose_b, bool add);
// Weights [out_i, in] stacked by rows into one [Σ out_i, in] matrix, for one product in place of
// several: a view of their buffer when they lie in this order in it (the model's parameters do),
// else a copy.
Tensor stacked_rows(const std::vector<Tensor>& parts);
// The weight gradients of y = x·stacked_rows(parts)ᵀ (one part: y = x·wᵀ), from dy [rows,
// Σ out_i] and x [rows, in]: one product dyᵀ·x, written into the parts' gradient buffers when each
// has one (gradient_buffer) and they lie in this order in one buffer (every entry then undefined:
// delivered; the product overwrites them when all are unwritten, else adds), else returned as
// each part's rows (undefined for a part not requiring grad).
std::vector<Tensor> weight_gradients(const Tensor& dy, const Tensor& x,
                                     const std::vector<Tensor>& parts);

}  // namespace ssa
