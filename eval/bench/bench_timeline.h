#pragma once
// One training step on the GPU's timeline, for `ssa-bench train --breakdown` (CUDA builds only):
// each phase's time on the GPU, from CUDA events at its boundaries, and how much of it the GPU
// spent running kernels, copies and memsets (CUPTI activity records, where the build found
// CUPTI). The rest of a phase is the GPU idle between them: waiting for the host's launches.
#include <memory>
#include <string>
#include <vector>

#include "eval/bench/bench_gpu.h"

namespace ssa {

struct PhaseTime {
  std::string name;
  double gpu_ms;   // from the phase's first boundary to its next, on the GPU
  double busy_ms;  // kernels, copies and memsets within it; NaN without CUPTI
};

// A stretch of the step with nothing running on the GPU, between two activities.
struct IdleGap {
  double ms;
  std::string previous, next;  // the kernels (or "memcpy", "memset") around it, demangled
  std::string host;            // the host's CUDA runtime calls during it, the longest first
};

// The GPU time of the activities of one name (a kernel's function, "memcpy" or "memset").
struct ActivityTotal {
  std::string name;
  int64_t count;
  double ms;
};

struct StepReport {
  std::vector<PhaseTime> phases;
  std::vector<IdleGap> gaps;         // the longest first
  std::vector<ActivityTotal> names;  // the most GPU time first
};

class StepTimeline {
 public:
  // Starts recording the GPU's activity; call with the device idle, right before the step.
  explicit StepTimeline(std::vector<std::string> phase_names);
  ~StepTimeline();
  StepTimeline(const StepTimeline&) = delete;
  StepTimeline& operator=(const StepTimeline&) = delete;
  // Boundary i comes before phase i; boundary phases (the last) after the last phase.
  void mark(size_t boundary);
  // Drops what was recorded so far (a step run to warm up the recording) and goes on recording.
  void restart();
  // After the step and a synchronize of the device: every phase, the `gaps` longest idle gaps and
  // the `names` activity names of most GPU time (no gaps or names without CUPTI).
  StepReport report(size_t gaps, size_t names) const;
  // Whether busy_ms is measured (the build has CUPTI).
  static bool measures_activity();

 private:
  std::vector<std::string> names_;
  CudaEvents events_;
};

}  // namespace ssa
