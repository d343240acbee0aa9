#pragma once
// The bf16 tensor-core path of cuda/attention/flash_attention.h; head_dim 64 or 128.
#include "cuda/attention/flash_attention_common.cuh"

namespace ssa::cuda::flash {

void forward_bf16(const Problem& pb, const FlashForward& args);
// dq, dk, dv from the inputs and delta (already computed).
void backward_bf16(const Problem& pb, const FlashBackward& args);

}  // namespace ssa::cuda::flash
