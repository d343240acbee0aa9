#pragma once
// Statistics of the caching device allocator. Blocks are kept in free lists by size class and
// reused, so the steady state of a training step calls neither cudaMalloc nor cudaFree.
#include <cstddef>
#include <cstdint>

namespace ssa::cuda {

struct MemoryStats {
  size_t allocated = 0;        // bytes in blocks handed out now (rounded to size classes)
  size_t peak = 0;             // most `allocated` since start or the last reset_peak_memory()
  size_t reserved = 0;         // bytes held from cudaMalloc: allocated plus the free lists
  int64_t device_mallocs = 0;  // cudaMalloc calls so far
};

MemoryStats memory_stats();
void reset_peak_memory();
// Returns every cached free block to the driver (cudaFree; synchronizes the device).
void release_cached_memory();

}  // namespace ssa::cuda
