#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/runtime/check.h"
#include "cuda/runtime/memory.h"
#include "cuda/runtime/runtime.h"

namespace ssa::cuda {
namespace {

// Requests are rounded up to a size class: 8 classes per power of two (at most 12.5% extra),
// with steps between 512 bytes and 2 MiB. A block is reused only for its own class.
size_t size_class(size_t bytes) {
  constexpr size_t kMinStep = 512, kMaxStep = size_t{2} << 20;
  size_t top = 1;
  while (top <= bytes / 2) top *= 2;
  const size_t step = std::clamp(top / 8, kMinStep, kMaxStep);
  return (bytes + step - 1) / step * step;
}

// Blocks freed by the host go straight back to their free list: every device access is ordered
// on compute_stream(), so the next user of a block runs after the last one.
class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t block = size_class(bytes);
    std::lock_guard lock(mutex_);
    void* ptr = take_cached(block);
    if (ptr == nullptr) ptr = device_malloc(block);
    stats_.allocated += block;
    stats_.peak = std::max(stats_.peak, stats_.allocated);
    return ptr;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    const size_t block = size_class(bytes);
    std::lock_guard lock(mutex_);
    free_[block].push_back(ptr);
    stats_.allocated -= block;
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak = stats_.allocated;
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    release_locked();
  }

 private:
  void* take_cached(size_t block) {
    auto it = free_.find(block);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* ptr = it->second.back();
    it->second.pop_back();
    return ptr;
  }

  // On out-of-memory the cached blocks are returned to the driver and the call retried once.
  void* device_malloc(size_t block) {
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, block);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_locked();
      status = cudaMalloc(&ptr, block);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory(out_of_memory_message(block));
    }
    CUDA_CHECK(status);
    ++stats_.device_mallocs;
    stats_.reserved += block;
    return ptr;
  }

  // Names the allocation, what the tensors hold now and at their peak, and the GPU's memory.
  std::string out_of_memory_message(size_t block) const {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return fmt::format(
        "out of GPU memory: could not allocate {} (tensors hold {}, peak {}; the GPU has {} "
        "free of {})",
        byte_text(block), byte_text(stats_.allocated), byte_text(stats_.peak),
        byte_text(free_bytes), byte_text(total_bytes));
  }

  void release_locked() {
    for (auto& [block, pointers] : free_) {
      for (void* ptr : pointers) CUDA_CHECK(cudaFree(ptr));
      stats_.reserved -= block * pointers.size();
      pointers.clear();
    }
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  MemoryStats stats_;
};

// Never destroyed: blocks outlive static destruction, when the driver may already be gone.
CachingAllocator& caching_allocator() {
  static CachingAllocator* allocator = new CachingAllocator;
  return *allocator;
}

}  // namespace

Allocator& device_allocator() { return caching_allocator(); }
MemoryStats memory_stats() { return caching_allocator().stats(); }
void reset_peak_memory() { caching_allocator().reset_peak(); }
void release_cached_memory() { caching_allocator().release_cached(); }

}  // namespace ssa::cuda
