#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "core/error.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    constexpr size_t kAlign = 64;
    size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* ptr = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (ptr == nullptr)
      throw OutOfMemory(fmt::format("out of host memory: could not allocate {}", byte_text(bytes)));
    return ptr;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator allocator;
  return allocator;
}

Allocator& allocator_for(Device device) {
  if (device == Device::cpu) return cpu_allocator();
#ifdef SSA_HAVE_CUDA
  return cuda::device_allocator();
#else
  fail(
      "a CUDA tensor was requested but this build has no CUDA backend (configure with "
      "SSA_CUDA=ON)");
#endif
}

}  // namespace ssa
