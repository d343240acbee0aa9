#pragma once
// The one compute stream every kernel and cuBLAS call of a training step is issued on.
#include <cuda_runtime.h>

namespace ssa::cuda {

// Created on first use with cudaStreamCreate, so it stays ordered with the legacy default
// stream (host<->device copies in core/ use that).
cudaStream_t compute_stream();

}  // namespace ssa::cuda
