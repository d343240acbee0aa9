#pragma once
// Where a run trains: checking that the device exists, describing it, its memory peak.
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace ssa {

// Fails with the reason when `device` cannot be used (no CUDA backend in this build, no GPU).
void require_device(Device device);
// Whether this build has the CUDA backend and a GPU is usable.
bool gpu_usable();
// "cpu (N threads)" or the GPU's name and memory.
std::string device_description(Device device);
// Peak bytes held by tensors on `device` since the start (0 on the CPU, which is not tracked).
int64_t peak_device_bytes(Device device);

}  // namespace ssa
