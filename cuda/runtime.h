#pragma once
// CUDA runtime glue that core/ needs: device discovery, memory, copies, dtype conversion.
// Only raw pointers cross this boundary, so core/ can link it without a cycle.
#include <cstddef>
#include <cstdint>

#include "core/allocator.h"
#include "core/dtype.h"

namespace ssa::cuda {

// Number of usable GPUs; 0 when there is no driver or no device (never throws).
int device_count();
// Why device_count() is 0, for skip messages ("" when a GPU is present).
const char* no_device_reason();

Allocator& device_allocator();
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes);
void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);

}  // namespace ssa::cuda
