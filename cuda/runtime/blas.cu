#include <cublasLt.h>

#include <climits>
#include <limits>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/device.cuh"
#include "cuda/runtime/blas.h"

namespace ssa::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS's advice for Hopper
constexpr int kCandidates = 8;                        // algorithms timed per product shape
constexpr int kTimedRuns = 2;                         // runs timed per candidate
// The largest c copied aside to time the candidates of an added product (c += a·b); a larger
// one keeps the heuristic's first choice.
constexpr size_t kLargestTimedAddBytes = size_t{256} << 20;

// Created on first use and never freed, like the handles below.
void* blas_workspace() {
  static void* workspace = device_allocator().allocate(kWorkspaceBytes);
  return workspace;
}

// Created on first use and never destroyed (the driver may be gone at static destruction).
cublasHandle_t blas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t created = nullptr;
    CUBLAS_CHECK(cublasCreate(&created));
    CUBLAS_CHECK(cublasSetStream(created, compute_stream()));
    CUBLAS_CHECK(cublasSetWorkspace(created, blas_workspace(), kWorkspaceBytes));
    return created;
  }();
  return handle;
}

cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t handle = [] {
    cublasLtHandle_t created = nullptr;
    CUBLAS_CHECK(cublasLtCreate(&created));
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

// --- bf16 products through cuBLASLt, each shape's algorithm chosen once by timing -------------
// cuBLAS's heuristic often misses the fastest of its own algorithms (by up to 25% on the
// training step's shapes). On a shape's first product its first kCandidates are each run and
// timed on the operands at hand, and the fastest is kept whose result has the bits of the
// heuristic's first choice: which one wins depends on the timing, the result never does.

uint32_t alignment(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t bytes = 256;  // the most cuBLASLt asks for
  while (address % bytes != 0) bytes /= 2;
  return bytes;
}

struct LtKey {
  cudaDataType_t c_type;
  int64_t m, n, k;
  bool transpose_a, transpose_b, add;
  uint32_t align_a, align_b, align_c;  // of the pointers: algorithms needing more are excluded
  auto tied() const {
    return std::tie(c_type, m, n, k, transpose_a, transpose_b, add, align_a, align_b, align_c);
  }
  bool operator<(const LtKey& o) const { return tied() < o.tied(); }
};

// Operands in cuBLAS's order (see gemm_ex): `first` describes b, `second` a.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, c = nullptr;
  std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's order; empty: use gemm_ex
  size_t chosen = 0;
};

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols) {
  cublasLtMatrixLayout_t created = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&created, type, rows, cols, rows));
  return created;
}

template <typename T>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t what, T value) {
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, what, &value, sizeof value));
}

// An algorithm's K split and its reduction scheme: candidates that split K otherwise than the
// heuristic's first add in another order, so their bits differ on some operands.
std::pair<int32_t, uint32_t> k_split(const cublasLtMatmulAlgo_t& algo) {
  int32_t splits = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  size_t written = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                                    sizeof splits, &written));
  CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                    &scheme, sizeof scheme, &written));
  return {splits, scheme};
}

LtPlan make_plan(const LtKey& key) {
  LtPlan plan;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = key.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = key.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                              sizeof op_first));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                              sizeof op_second));
  plan.first =
      key.transpose_b ? layout(CUDA_R_16BF, key.k, key.n) : layout(CUDA_R_16BF, key.n, key.k);
  plan.second =
      key.transpose_a ? layout(CUDA_R_16BF, key.m, key.k) : layout(CUDA_R_16BF, key.k, key.m);
  plan.c = layout(key.c_type, key.n, key.m);

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c);
  set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c);
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(lt_handle(), plan.op, plan.first, plan.second, plan.c, plan.c,
                                     pref, kCandidates, results, &found);
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  if (status != CUBLAS_STATUS_SUCCESS) return plan;  // no algorithm: gemm_ex
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS &&
        (plan.candidates.empty() || k_split(results[i].algo) == k_split(plan.candidates[0])))
      plan.candidates.push_back(results[i].algo);
  return plan;
}

cublasStatus_t lt_run(const LtPlan& plan, size_t candidate, const void* a, const void* b, void* c,
                      float beta) {
  const float one = 1;
  return cublasLtMatmul(lt_handle(), plan.op, &one, b, plan.first, a, plan.second, &beta, c, plan.c,
                        c, plan.c, &plan.candidates[candidate], blas_workspace(), kWorkspaceBytes,
                        compute_stream());
}

// An order-free digest of n 16-bit words: the sum (mod 2^64) of each word mixed with its index.
__global__ void digest_kernel(const uint16_t* words, int64_t n, unsigned long long* sum) {
  unsigned long long local = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) << 16 | words[i]) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    local += x ^ (x >> 32);
  }
  atomicAdd(sum, local);
}

uint64_t digest(const void* data, size_t bytes) {
  static auto* sum =
      static_cast<unsigned long long*>(device_allocator().allocate(sizeof(uint64_t)));
  CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof *sum, compute_stream()));
  digest_kernel<<<1024, kThreads, 0, compute_stream()>>>(static_cast<const uint16_t*>(data),
                                                         static_cast<int64_t>(bytes / 2), sum);
  CUDA_CHECK(cudaGetLastError());
  unsigned long long host = 0;
  copy(&host, false, sum, true, sizeof host);
  return host;
}

template <typename Fn>
float milliseconds(Fn&& fn) {
  static cudaEvent_t start = nullptr, stop = nullptr;
  if (start == nullptr) {
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
  }
  CUDA_CHECK(cudaEventRecord(start, compute_stream()));
  for (int i = 0; i < kTimedRuns; ++i) fn();
  CUDA_CHECK(cudaEventRecord(stop, compute_stream()));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  return ms;
}

// Sets plan.chosen by timing every candidate on a, b and c (an added product runs on a copy of
// c, so c is left as it was; an overwritten c is left holding some candidate's result). A
// candidate that cannot run, or whose result's digest differs from the first's (a check on top
// of make_plan's same K split), is skipped; when the first cannot run, the plan falls back to
// gemm_ex.
void choose(LtPlan& plan, const void* a, const void* b, void* c, size_t c_bytes, bool add) {
  if (add && c_bytes > kLargestTimedAddBytes) return;
  void* out = add ? device_allocator().allocate(c_bytes) : c;
  const float beta = add ? 1.0f : 0.0f;
  uint64_t first_digest = 0;
  float fastest = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    if (add) copy(out, true, c, true, c_bytes);
    if (lt_run(plan, i, a, b, out, beta) != CUBLAS_STATUS_SUCCESS) {
      if (i == 0) break;
      continue;
    }
    const uint64_t result_digest = digest(out, c_bytes);
    if (i == 0) first_digest = result_digest;
    if (result_digest != first_digest) continue;
    const float ms = milliseconds([&] { CUBLAS_CHECK(lt_run(plan, i, a, b, out, beta)); });
    if (ms < fastest) {
      fastest = ms;
      plan.chosen = i;
    }
  }
  if (add) device_allocator().deallocate(out, c_bytes);
  if (fastest == std::numeric_limits<float>::infinity()) plan.candidates.clear();
}

// False when the shape has no cuBLASLt algorithm (the caller uses gemm_ex).
bool lt_gemm(const void* a, const void* b, void* c, cudaDataType_t c_type, const GemmDims& d,
             bool add) {
  static std::map<LtKey, LtPlan> plans;
  const LtKey key{c_type,        d.m, d.n,          d.k,          d.transpose_a,
                  d.transpose_b, add, alignment(a), alignment(b), alignment(c)};
  auto found = plans.find(key);
  if (found == plans.end()) {
    found = plans.emplace(key, make_plan(key)).first;
    const size_t c_bytes = static_cast<size_t>(d.m * d.n) * (c_type == CUDA_R_32F ? 4 : 2);
    if (!found->second.candidates.empty()) choose(found->second, a, b, c, c_bytes, add);
  }
  const LtPlan& plan = found->second;
  if (plan.candidates.empty()) return false;
  CUBLAS_CHECK(lt_run(plan, plan.chosen, a, b, c, add ? 1.0f : 0.0f));
  return true;
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
  if (dtype == DType::bf16 && d.batch == 1 && lt_gemm(a, b, c, blas_type(c_dtype), d, add)) return;
  gemm_ex(a, b, c, type, blas_type(c_dtype), add ? 1.0f : 0.0f, d);
}

}  // namespace ssa::cuda
