#pragma once
// The one compute stream every kernel, cuBLAS call and copy of ours is issued on, so that work
// is ordered without events and the caching allocator may reuse a block as soon as the host
// frees it.
#include <cuda_runtime.h>

namespace ssa::cuda {

// Created on first use with cudaStreamCreate (a blocking stream: it also stays ordered with the
// legacy default stream, for code that still uses it).
cudaStream_t compute_stream();

}  // namespace ssa::cuda
