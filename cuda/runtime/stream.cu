#include "cuda/runtime/check.h"
#include "cuda/runtime/stream.h"

namespace ssa::cuda {

cudaStream_t compute_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t created = nullptr;
    CUDA_CHECK(cudaStreamCreate(&created));
    return created;
  }();
  return stream;
}

}  // namespace ssa::cuda
