// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
#include "eval/bench/bench_timeline.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <utility>

#include "core/error.h"
#ifdef SSA_HAVE_CUPTI
#include <cupti.h>
#endif

namespace ssa {
namespace {

// [start, end) in nanoseconds of the GPU's clock.
using Interval = std::pair<uint64_t, uint64_t>;

#ifdef SSA_HAVE_CUPTI
constexpr CUpti_ActivityKind kActivities[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                              CUPTI_ACTIVITY_KIND_MEMCPY,
                                              CUPTI_ACTIVITY_KIND_MEMSET};
constexpr size_t kBufferBytes = size_t{8} << 20;

std::mutex g_mutex;
std::vector<Interval> g_intervals;  // delivered by CUPTI, possibly from its own thread

void check_cupti(CUptiResult result, const char* call) {
  if (result == CUPTI_SUCCESS) return;
  const char* text = nullptr;
  cuptiGetResultString(result, &text);
  fail("CUPTI: {} failed: {}", call, text ? text : "unknown error");
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

template <typename Record>
Interval interval_of(const CUpti_Activity* record) {
  const auto* r = reinterpret_cast<const Record*>(record);
  return {r->start, r->end};
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL)
      g_intervals.push_back(interval_of<CUpti_ActivityKernel10>(record));
    else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY)
      g_intervals.push_back(interval_of<CUpti_ActivityMemcpy6>(record));
    else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET)
      g_intervals.push_back(interval_of<CUpti_ActivityMemset4>(record));
  }
  std::free(buffer);
}

void start_activity() {
  static const bool registered = [] {
    check_cupti(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed),
                "cuptiActivityRegisterCallbacks");
    return true;
  }();
  (void)registered;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_intervals.clear();
  for (CUpti_ActivityKind kind : kActivities)
    check_cupti(cuptiActivityEnable(kind), "cuptiActivityEnable");
}

void stop_activity() {
  for (CUpti_ActivityKind kind : kActivities) cuptiActivityDisable(kind);
}

// The union of the intervals, sorted and merged, in ms from the first start.
std::vector<std::pair<double, double>> merged_ms(std::vector<Interval> intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::vector<std::pair<double, double>> merged;
  if (intervals.empty()) return merged;
  const uint64_t origin = intervals.front().first;
  for (const auto& [start, end] : intervals) {
    const double s = 1e-6 * static_cast<double>(start - origin);
    const double e = 1e-6 * static_cast<double>(end - origin);
    if (!merged.empty() && s <= merged.back().second)
      merged.back().second = std::max(merged.back().second, e);
    else
      merged.emplace_back(s, e);
  }
  return merged;
}

std::vector<Interval> recorded_activity() {
  check_cupti(cuptiActivityFlushAll(0), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_intervals;
}
#else
void start_activity() {}
void stop_activity() {}
#endif

}  // namespace

StepTimeline::StepTimeline(std::vector<std::string> phase_names)
    : names_(std::move(phase_names)), events_(names_.size() + 1) {
  start_activity();
}

StepTimeline::~StepTimeline() { stop_activity(); }

void StepTimeline::mark(size_t boundary) { events_.record(boundary); }

bool StepTimeline::measures_activity() {
#ifdef SSA_HAVE_CUPTI
  return true;
#else
  return false;
#endif
}

// The first activity starts right after boundary 0 (the device was idle), so activity times
// count from it.
std::vector<PhaseTime> StepTimeline::phases() const {
  std::vector<PhaseTime> out;
#ifdef SSA_HAVE_CUPTI
  const std::vector<std::pair<double, double>> busy = merged_ms(recorded_activity());
#else
  const std::vector<std::pair<double, double>> busy;
#endif
  for (size_t p = 0; p < names_.size(); ++p) {
    const double begin = events_.ms_between(0, p), end = events_.ms_between(0, p + 1);
    double busy_ms = measures_activity() ? 0 : std::numeric_limits<double>::quiet_NaN();
    for (const auto& [s, e] : busy) busy_ms += std::max(0.0, std::min(e, end) - std::max(s, begin));
    out.push_back({names_[p], end - begin, busy_ms});
  }
  return out;
}

}  // namespace ssa
#endif
