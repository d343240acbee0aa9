#include "train/device.h"

#include <fmt/format.h>
#include <omp.h>

#include "core/error.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/memory.h"
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {

void require_device(Device device) {
  if (device == Device::cpu) return;
#ifdef SSA_HAVE_CUDA
  if (cuda::device_count() == 0)
    fail("a CUDA device was asked for, but no GPU is usable: {}", cuda::no_device_reason());
#else
  fail(
      "a CUDA device was asked for, but this build has no CUDA backend (configure with "
      "-DSSA_CUDA=ON)");
#endif
}

bool gpu_usable() {
#ifdef SSA_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

std::string device_description(Device device) {
  if (device == Device::cpu) return fmt::format("cpu ({} threads)", omp_get_max_threads());
#ifdef SSA_HAVE_CUDA
  return "cuda: " + cuda::current_device_description();
#else
  return "cuda (not built)";
#endif
}

int64_t peak_device_bytes(Device device) {
  if (device == Device::cpu) return 0;
#ifdef SSA_HAVE_CUDA
  return static_cast<int64_t>(cuda::memory_stats().peak);
#else
  return 0;
#endif
}

}  // namespace ssa
