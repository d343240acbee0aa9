#pragma once
// Embedding lookup and its deterministic backward. ids are valid (checked by the caller).
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// out[t, :] = table[ids[t], :] for t < tokens; table is [vocab, dim].
void embedding_forward(const int32_t* ids, const void* table, void* out, DType dtype,
                       int64_t tokens, int64_t dim);

// grad[v, :] += Σ dout[t, :] over the tokens t with ids[t] = v, summed in token order in fp32
// and then added; rows no token uses are not touched. grad is [vocab, dim] f32 (a parameter's
// gradient buffer); dout is f32 or bf16. The positions are sorted by id (a stable radix sort);
// warps sum the runs of equal ids within fixed chunks of sorted positions, and a run over
// several chunks is the sum of its chunks' parts in chunk order: no atomics, so the result is
// bit-reproducible.
void embedding_backward(const int32_t* ids, const void* dout, DType dtype, float* grad,
                        int64_t tokens, int64_t vocab, int64_t dim);

}  // namespace ssa::cuda
