// Main for tests labelled gpu: exits 77 (ctest's "skipped") with the reason when this machine
// has no usable GPU, so CI on CPU-only machines passes and says why. Under mpirun (test_nccl)
// MPI is up for the whole run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "cuda/runtime/runtime.h"
#include "train/dist/communicator.h"

int main(int argc, char** argv) {
  if (ssa::cuda::device_count() == 0) {
    std::printf("skipped: no GPU (%s)\n", ssa::cuda::no_device_reason());
    return 77;
  }
  ssa::Job job(argc, argv);
  doctest::Context context(argc, argv);
  return context.run();
}
