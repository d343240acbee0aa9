#pragma once
// dK, dV of the block-sparse attention (sparse_attention_dkdv.cu), for sparse_attention.cu's
// backward.
#include "cuda/attention/sparse_attention.h"
#include "cuda/attention/sparse_tiles.cuh"

namespace ssa::cuda::sparse {

// ptr.dk and ptr.dv from ptr's inputs and its delta (already computed); f32 or bf16 storage,
// head_dim 64 or 128.
template <typename T, int D>
void dkdv(const SparseDims& dims, const Geometry& geo, const BackwardPointers<T>& ptr);

}  // namespace ssa::cuda::sparse
