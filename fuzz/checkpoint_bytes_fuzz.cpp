// Checkpoint files as raw bytes (train/checkpoint.h): mutations of real checkpoints, read by the
// loader. HDF5 parses these bytes before our code sees anything, and HDF5 1.10 hangs and crashes
// on some damaged files (README.md), so this target is for running by hand; CI runs
// fuzz_checkpoint, which hands the loader well-formed HDF5 files of any content.
#include <hdf5.h>

#include "core/error.h"
#include "input_file.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ssa::read_checkpoint(ssa::fuzz::as_file(data, size));
  } catch (const ssa::Error&) {
  }
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) std::abort();
  return 0;
}
