#pragma once
// Embedding lookup and its deterministic backward. ids are valid (checked by the caller).
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// out[t, :] = table[ids[t], :] for t < tokens; table is [vocab, dim].
void embedding_forward(const int32_t* ids, const void* table, void* out, DType dtype,
                       int64_t tokens, int64_t dim);

// dtable[v, :] = Σ dout[t, :] over the tokens t with ids[t] = v, in token order, in fp32; rows
// no token uses are zero (a fill). The positions are sorted by id (a stable radix sort); warps
// sum the runs of equal ids within fixed chunks of sorted positions, and a run over several
// chunks is the sum of its chunks' parts in chunk order: no atomics, so the result is
// bit-reproducible.
void embedding_backward(const int32_t* ids, const void* dout, void* dtable, DType dtype,
                        int64_t tokens, int64_t vocab, int64_t dim);

}  // namespace ssa::cuda
