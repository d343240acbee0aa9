#pragma once
// What ssa-bench's measurements share (CUDA builds only; eval/bench/bench_main.cpp checks for a GPU
// first): CUDA-event timing on the compute stream, inputs filled fast, the JSON output.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/command_line.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "train/log.h"

namespace ssa {

// CUDA events recorded on the compute stream.
class CudaEvents {
 public:
  explicit CudaEvents(size_t count);
  ~CudaEvents();
  CudaEvents(const CudaEvents&) = delete;
  CudaEvents& operator=(const CudaEvents&) = delete;
  void record(size_t index);
  // Milliseconds from event `from` to event `to` (both recorded and reached).
  double ms_between(size_t from, size_t to) const;

 private:
  std::vector<void*> events_;  // cudaEvent_t, kept out of this header
};

struct TimingOptions {
  int64_t warmup = 3;
  int64_t repeats = 10;
};

// --warmup and --repeats on a bench command's line: declared before it parses, read after.
CommandLine& declare_timing_options(CommandLine& line);
TimingOptions timing_options(const CommandLine& line);

class GpuTimer {
 public:
  // Allocates the buffer that evicts the L2 cache (twice its size).
  explicit GpuTimer(TimingOptions options);

  // The median milliseconds of each phase over `repeats` runs, after `warmup` untimed runs. A
  // run calls the phases in order, each between two CUDA events on the compute stream, after a
  // read of the eviction buffer, so that no run finds its inputs in the cache. A read, not a
  // write: the cache then holds clean lines, and a run pays for no write-back but its own.
  std::vector<double> median_phase_ms(const std::vector<std::function<void()>>& phases) const;
  double median_ms(const std::function<void()>& run) const;

 private:
  void evict_l2() const;  // queued on the compute stream, no wait

  TimingOptions options_;
  Tensor evict_, evict_sum_;
};

// Waits for the compute stream.
void synchronize_device();

// normal(0, std) values on the GPU.
Tensor random_tensor(const Shape& shape, DType dtype, double std, Rng& rng);
// i32 ids uniform in [0, limit), on the GPU.
Tensor random_ids(const Shape& shape, int64_t limit, Rng& rng);

// The JSON lines of a subcommand: appended to `path` (nothing when empty), each tagged with
// impl "ssa" and the device.
class BenchOutput {
 public:
  explicit BenchOutput(const std::string& path);
  void write(JsonLine line) const;

 private:
  std::unique_ptr<JsonlFile> file_;
  std::string device_;
};

}  // namespace ssa
