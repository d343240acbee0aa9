#include <climits>

#include "cuda/device.cuh"
#include "cuda/runtime/blas.h"

namespace ssa::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS's advice for Hopper

// Created on first use and never destroyed (the driver may be gone at static destruction).
cublasHandle_t blas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t created = nullptr;
    CUBLAS_CHECK(cublasCreate(&created));
    CUBLAS_CHECK(cublasSetStream(created, compute_stream()));
    void* workspace = device_allocator().allocate(kWorkspaceBytes);  // held for the process
    CUBLAS_CHECK(cublasSetWorkspace(created, workspace, kWorkspaceBytes));
    return created;
  }();
  return handle;
}

cudaDataType_t blas_type(DType dtype) {
  if (dtype == DType::f32) return CUDA_R_32F;
  if (dtype != DType::bf16)
    fail("matmul: dtype {} is not supported on CUDA (expected f32 or bf16)", dtype_name(dtype));
  return CUDA_R_16BF;
}

int as_int(int64_t size) {
  SSA_CHECK(size <= INT_MAX, "matmul: size {} exceeds cuBLAS's int range", size);
  return static_cast<int>(size);
}

// cuBLAS is column-major. A row-major matrix read column-major is its transpose, so row-major
// C = op(A)·op(B) is computed as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, the ops as asked.
// C = op(A)·op(B) + beta·C, with C of c_type.
void gemm_ex(const void* a, const void* b, void* c, cudaDataType_t operand_type,
             cudaDataType_t c_type, float beta, const GemmDims& d) {
  const float one = 1;
  const int lda = as_int(d.transpose_a ? d.m : d.k), ldb = as_int(d.transpose_b ? d.k : d.n);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      blas_handle(), d.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      d.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(d.n), as_int(d.m), as_int(d.k), &one, b,
      operand_type, ldb, d.k * d.n, a, operand_type, lda, d.m * d.k, &beta, c, c_type, as_int(d.n),
      d.m * d.n, as_int(d.batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void gemm(const void* a, const void* b, void* c, DType dtype, const GemmDims& d) {
  gemm_into(a, b, c, dtype, dtype, d, false);
}

void gemm_into(const void* a, const void* b, void* c, DType dtype, DType c_dtype, const GemmDims& d,
               bool add) {
  const cudaDataType_t type = blas_type(dtype);
  SSA_CHECK(c_dtype == DType::f32 || c_dtype == dtype,
            "matmul: cannot write a {} product into {} (expected f32 or {})", dtype_name(dtype),
            dtype_name(c_dtype), dtype_name(dtype));
  if (d.batch == 0 || d.m == 0 || d.n == 0) return;
  if (d.k == 0) {
    if (!add) fill(c, c_dtype, 0.0, d.batch * d.m * d.n);
    return;
  }
  gemm_ex(a, b, c, type, blas_type(c_dtype), add ? 1.0f : 0.0f, d);
}

}  // namespace ssa::cuda
