#pragma once
// CUDA runtime glue that core/ needs: device discovery, memory, copies, dtype conversion, fill.
// Only raw pointers cross this boundary, so core/ can link it without a cycle. Every device
// access is issued on compute_stream() (cuda/runtime/stream.h); copies that the host waits on end
// with a sync of that stream.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/allocator.h"
#include "core/dtype.h"

namespace ssa {
struct Distribution;  // core/random_draws.h
}

namespace ssa::cuda {

// Number of usable GPUs; 0 when there is no driver or no device (never throws).
int device_count();
// Why device_count() is 0, for skip messages ("" when a GPU is present).
const char* no_device_reason();

// "NAME, N GiB" of the current device, for startup tables.
std::string current_device_description();
// The caching allocator (cuda/runtime/memory.h has its statistics).
Allocator& device_allocator();
// Device-to-device copies stay asynchronous; a copy from or to the host returns once the host
// buffer may be read (device to host) or reused (host to device).
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes);
// Device to device, asynchronous: `rows` rows of `row_bytes`, read `src_pitch` bytes apart
// and written `dst_pitch` bytes apart (a column window of a matrix, or into one).
void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
               size_t rows);
void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);
// dst[i] = value (converted to dtype) for i < n.
void fill(void* dst, DType dtype, double value, int64_t n);
// dst[i] = draw(distribution, Philox block first + i) (core/random_draws.h), rounded to dtype (a
// float dtype) as the CPU fill rounds it, for i < n: the same bits as core's Rng on the CPU.
void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, uint64_t first,
                 const Distribution& distribution);

}  // namespace ssa::cuda
