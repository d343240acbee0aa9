#pragma once
#include "core/tensor.h"

namespace ssa {

// out[..., :] = table[ids[...], :]. ids: i32 of any shape; table: [vocab, dim].
// An id outside [0, vocab) is an error naming it. Backward: a scatter-add into the table's
// gradient in token order (deterministic). On CUDA the positions are sorted by id and each id's
// sum is added in place into the table's f32 gradient buffer where it has one (the model's),
// touching only the rows the ids name; see cuda/embedding.h.
Tensor embedding(const Tensor& ids, const Tensor& table);

}  // namespace ssa
