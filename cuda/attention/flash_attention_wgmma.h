#pragma once
// The head_dim-64 bf16 kernels of cuda/attention/flash_attention.h on Hopper's wgmma
// (flash_attention_wgmma.cu); flash_attention_bf16.cu launches them where wgmma_path holds.
#include "cuda/attention/flash_attention_tiles.cuh"

namespace ssa::cuda::flash {

// Keys of a backward CTA's tile (the forward's query tiles are 192 rows).
constexpr int kWgmmaRows = 128;

// head_dim 64, built for sm_90a, running on a compute-capability 9.0 GPU, and SSA_NO_WGMMA
// unset (set, it keeps the mma.sync kernels, to compare the two).
bool wgmma_path(const Problem& pb);
void forward_wgmma(const Problem& pb, const FlashForward& args);
// dQ, and dK, dV (or their head-split partial sums) over ceil(Tk / kWgmmaRows) key tiles.
void backward_wgmma(const Problem& pb, const BackwardPointers& ptr);

}  // namespace ssa::cuda::flash
