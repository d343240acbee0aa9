#include "core/allocator.h"

#include <atomic>
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
    const size_t now = allocated_ += bytes;
    for (size_t peak = peak_; now > peak && !peak_.compare_exchange_weak(peak, now);) {
    }
    return ptr;
  }
  void deallocate(void* ptr, size_t bytes) override {
    std::free(ptr);
    allocated_ -= bytes;
  }
  HostMemoryStats stats() const { return {allocated_, peak_}; }
  void reset_peak() { peak_ = allocated_.load(); }

 private:
  std::atomic<size_t> allocated_{0}, peak_{0};
};

CpuAllocator& host_allocator() {
  static CpuAllocator allocator;
  return allocator;
}

}  // namespace

Allocator& cpu_allocator() { return host_allocator(); }

HostMemoryStats host_memory_stats() { return host_allocator().stats(); }
void reset_host_peak_memory() { host_allocator().reset_peak(); }

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
