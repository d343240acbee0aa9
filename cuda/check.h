#pragma once
#include <cuda_runtime.h>

#include "core/error.h"

// CUDA_CHECK(call): raises ssa::Error naming the call, the file:line and CUDA's message.
#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    cudaError_t status_ = (call);                                                              \
    if (status_ != cudaSuccess)                                                                \
      ::ssa::detail::check_failed(__FILE__, __LINE__, #call,                                  \
                                  ::fmt::format("CUDA error {}: {}", cudaGetErrorName(status_), \
                                                cudaGetErrorString(status_)));                 \
  } while (0)
