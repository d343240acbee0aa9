#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

// CUDA_CHECK(call): raises ssa::Error naming the call, the file:line and CUDA's message.
#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    cudaError_t status_ = (call);                                                               \
    if (status_ != cudaSuccess)                                                                 \
      ::ssa::detail::check_failed(__FILE__, __LINE__, #call,                                    \
                                  ::fmt::format("CUDA error {}: {}", cudaGetErrorName(status_), \
                                                cudaGetErrorString(status_)));                  \
  } while (0)

// CUBLAS_CHECK(call): the same for cuBLAS status codes.
#define CUBLAS_CHECK(call)                                                   \
  do {                                                                       \
    cublasStatus_t status_ = (call);                                         \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                    \
      ::ssa::detail::check_failed(                                           \
          __FILE__, __LINE__, #call,                                         \
          ::fmt::format("cuBLAS error {}: {}", cublasGetStatusName(status_), \
                        cublasGetStatusString(status_)));                    \
  } while (0)
