#pragma once
// Deterministic global sums (a fixed two-level tree in double, one kernel; see reduce.cuh).
#include <cstdint>
#include <limits>

#include "core/dtype.h"

namespace ssa::cuda {

// out[0] = factor · Σ x[i] over n elements of dtype (f32 or bf16); out is a device scalar of
// out_dtype (f32 or bf16).
void sum(const void* x, DType dtype, int64_t n, double factor, void* out, DType out_dtype);

constexpr int64_t kNoIgnoredId = std::numeric_limits<int64_t>::min();

struct IdScan {
  int64_t first_invalid;  // the first position whose id is invalid, or -1
  int64_t counted;        // ids that are not `ignore`
};

// Scans n ids for those outside [0, limit) that differ from `ignore` (kNoIgnoredId: none is
// ignored). Synchronizes: the host needs the answer.
IdScan scan_ids(const int32_t* ids, int64_t n, int64_t limit, int64_t ignore);

}  // namespace ssa::cuda
