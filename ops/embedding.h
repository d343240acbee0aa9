#pragma once
#include "core/tensor.h"

namespace ssa {

// out[..., :] = table[ids[...], :]. ids: i32 of any shape; table: [vocab, dim].
// An id outside [0, vocab) is an error naming it. Backward: a scatter-add into the table's
// gradient in token order (deterministic; CUDA sorts the positions by id, see cuda/embedding.h).
Tensor embedding(const Tensor& ids, const Tensor& table);

}  // namespace ssa
