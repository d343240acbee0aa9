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

}  // namespace ssa
