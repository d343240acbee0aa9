#pragma once
#include <cstddef>

#include "core/dtype.h"

namespace ssa {

// Hands out raw memory on one device. CPU: 64-byte aligned; CUDA: cuda/ provides it.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
};

Allocator& cpu_allocator();
Allocator& allocator_for(Device device);

// Bytes the CPU allocator has handed out and not taken back (as asked, before alignment), and
// the most of that since the start or the last reset_host_peak_memory().
struct HostMemoryStats {
  size_t allocated = 0, peak = 0;
};
HostMemoryStats host_memory_stats();
void reset_host_peak_memory();

}  // namespace ssa
