// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
#include "eval/bench/bench_timeline.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "core/error.h"
#ifdef SSA_HAVE_CUPTI
#include <cupti.h>
#endif

namespace ssa {
namespace {

// [start, end) in nanoseconds of the GPU's clock, and what ran.
struct Activity {
  uint64_t start, end;
  std::string name;
  bool operator<(const Activity& other) const { return start < other.start; }
};

#ifdef SSA_HAVE_CUPTI
constexpr CUpti_ActivityKind kActivities[] = {
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
    CUPTI_ACTIVITY_KIND_RUNTIME};
constexpr size_t kBufferBytes = size_t{8} << 20;

std::mutex g_mutex;
std::vector<Activity> g_activity;    // delivered by CUPTI, possibly from its own thread
std::vector<Activity> g_host_calls;  // CUDA runtime calls of the host, on the same clock

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
Activity activity_of(const CUpti_Activity* record, const char* name) {
  const auto* r = reinterpret_cast<const Record*>(record);
  return {r->start, r->end, name};
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
      const char* name = reinterpret_cast<const CUpti_ActivityKernel10*>(record)->name;
      g_activity.push_back(activity_of<CUpti_ActivityKernel10>(record, name ? name : "kernel"));
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      g_activity.push_back(activity_of<CUpti_ActivityMemcpy6>(record, "memcpy"));
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      g_activity.push_back(activity_of<CUpti_ActivityMemset4>(record, "memset"));
    } else if (record->kind == CUPTI_ACTIVITY_KIND_RUNTIME) {
      const char* name = nullptr;
      const auto* call = reinterpret_cast<const CUpti_ActivityAPI*>(record);
      cuptiGetCallbackName(CUPTI_CB_DOMAIN_RUNTIME_API, call->cbid, &name);
      g_host_calls.push_back(activity_of<CUpti_ActivityAPI>(record, name ? name : "runtime call"));
    }
  }
  std::free(buffer);
}

void clear_recorded() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_activity.clear();
  g_host_calls.clear();
}

void start_activity() {
  static const bool registered = [] {
    check_cupti(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed),
                "cuptiActivityRegisterCallbacks");
    return true;
  }();
  (void)registered;
  clear_recorded();
  for (CUpti_ActivityKind kind : kActivities)
    check_cupti(cuptiActivityEnable(kind), "cuptiActivityEnable");
}

void stop_activity() {
  for (CUpti_ActivityKind kind : kActivities) cuptiActivityDisable(kind);
}

// The GPU's activity and the host's runtime calls, each sorted by start.
std::pair<std::vector<Activity>, std::vector<Activity>> recorded_activity() {
  check_cupti(cuptiActivityFlushAll(0), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<Activity> activity = g_activity, host_calls = g_host_calls;
  std::sort(activity.begin(), activity.end());
  std::sort(host_calls.begin(), host_calls.end());
  return {activity, host_calls};
}
#else
void start_activity() {}
void stop_activity() {}
#endif

// The union of the activity (sorted by start), in ms from the first start.
std::vector<std::pair<double, double>> merged_ms(const std::vector<Activity>& activity) {
  std::vector<std::pair<double, double>> merged;
  if (activity.empty()) return merged;
  const uint64_t origin = activity.front().start;
  for (const Activity& a : activity) {
    const double s = 1e-6 * static_cast<double>(a.start - origin);
    const double e = 1e-6 * static_cast<double>(a.end - origin);
    if (!merged.empty() && s <= merged.back().second)
      merged.back().second = std::max(merged.back().second, e);
    else
      merged.emplace_back(s, e);
  }
  return merged;
}

std::string demangled(const std::string& name) {
  int status = 0;
  char* text = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  std::string out = status == 0 && text ? text : name;
  std::free(text);
  return out;
}

// A kernel's demangled name, cut to 100 characters.
std::string readable(const std::string& name) {
  const std::string out = demangled(name);
  return out.size() > 100 ? out.substr(0, 100) + "..." : out;
}

// What groups a kernel's launches: its demangled name without the return type, the namespaces of
// this project and the parameter list ("void ssa::cuda::(anonymous namespace)::f<float, 4>(float
// const*)" gives "f<float, 4>"), cut to 90 characters; other names as they are.
std::string function_name(const std::string& name) {
  std::string out = demangled(name);
  for (const std::string prefix : {"void ", "ssa::cuda::", "(anonymous namespace)::", "ssa::"})
    for (size_t at = out.find(prefix); at != std::string::npos; at = out.find(prefix))
      out.erase(at, prefix.size());
  int depth = 0;  // of template brackets
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '<') ++depth;
    if (out[i] == '>') --depth;
    if (out[i] == '(' && depth == 0) {
      out.resize(i);
      break;
    }
  }
  return out.size() > 90 ? out.substr(0, 90) + "..." : out;
}

// Sorts items by their ms, the largest first, and keeps the first `count`.
template <typename Item>
void keep_largest(std::vector<Item>& items, size_t count) {
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.ms > b.ms; });
  if (items.size() > count) items.resize(count);
}

// What the host was in during [start, end): "cudaMemcpy 3.912 ms, cudaLaunchKernel 0.041 ms",
// the runtime calls by time within the stretch (at most three), or "no CUDA runtime call".
std::string host_during(const std::vector<Activity>& host_calls, uint64_t start, uint64_t end) {
  std::map<std::string, uint64_t> ns_by_name;
  for (const Activity& call : host_calls)
    if (call.start < end && call.end > start)
      ns_by_name[call.name] += std::min(call.end, end) - std::max(call.start, start);
  std::vector<std::pair<uint64_t, std::string>> calls;
  for (const auto& [name, ns] : ns_by_name) calls.emplace_back(ns, name);
  std::sort(calls.rbegin(), calls.rend());
  if (calls.size() > 3) calls.resize(3);
  std::string out;
  for (const auto& [ns, name] : calls)
    out += fmt::format("{}{} {:.3f} ms", out.empty() ? "" : ", ", name,
                       1e-6 * static_cast<double>(ns));
  return out.empty() ? "no CUDA runtime call" : out;
}

// The `count` longest stretches with nothing running, longest first.
std::vector<IdleGap> longest_gaps(const std::vector<Activity>& activity,
                                  const std::vector<Activity>& host_calls, size_t count) {
  std::vector<IdleGap> gaps;
  uint64_t busy_until = 0;
  for (size_t i = 0; i < activity.size(); ++i) {
    if (i > 0 && activity[i].start > busy_until)
      gaps.push_back({1e-6 * static_cast<double>(activity[i].start - busy_until),
                      readable(activity[i - 1].name), readable(activity[i].name),
                      host_during(host_calls, busy_until, activity[i].start)});
    busy_until = std::max(busy_until, activity[i].end);
  }
  keep_largest(gaps, count);
  return gaps;
}

// The `count` names of most GPU time (kernels by function: template arguments and parameters
// dropped), most first.
std::vector<ActivityTotal> largest_totals(const std::vector<Activity>& activity, size_t count) {
  std::map<std::string, ActivityTotal> by_name;
  for (const Activity& a : activity) {
    const std::string name = function_name(a.name);
    ActivityTotal& total = by_name.try_emplace(name, ActivityTotal{name, 0, 0.0}).first->second;
    ++total.count;
    total.ms += 1e-6 * static_cast<double>(a.end - a.start);
  }
  std::vector<ActivityTotal> totals;
  for (auto& entry : by_name) totals.push_back(std::move(entry.second));
  keep_largest(totals, count);
  return totals;
}

}  // namespace

StepTimeline::StepTimeline(std::vector<std::string> phase_names)
    : names_(std::move(phase_names)), events_(names_.size() + 1) {
  start_activity();
}

StepTimeline::~StepTimeline() { stop_activity(); }

void StepTimeline::mark(size_t boundary) { events_.record(boundary); }

void StepTimeline::restart() {
#ifdef SSA_HAVE_CUPTI
  check_cupti(cuptiActivityFlushAll(0), "cuptiActivityFlushAll");
  clear_recorded();
  // After a flush, CUPTI holds up the host's next CUDA call by milliseconds (4-5 ms at bench-1b
  // on an H200): this call takes the delay, so that the GPU does not sit idle after the step's
  // first boundary as it never does in a step without recording.
  synchronize_device();
#endif
}

bool StepTimeline::measures_activity() {
#ifdef SSA_HAVE_CUPTI
  return true;
#else
  return false;
#endif
}

StepReport StepTimeline::report(size_t gaps, size_t names) const {
#ifdef SSA_HAVE_CUPTI
  const auto [activity, host_calls] = recorded_activity();
#else
  const std::vector<Activity> activity, host_calls;
#endif
  // The first activity starts right after boundary 0 (the device was idle), so activity times
  // count from it.
  const std::vector<std::pair<double, double>> busy = merged_ms(activity);
  StepReport out{{}, longest_gaps(activity, host_calls, gaps), largest_totals(activity, names)};
  for (size_t p = 0; p < names_.size(); ++p) {
    const double begin = events_.ms_between(0, p), end = events_.ms_between(0, p + 1);
    double busy_ms = measures_activity() ? 0 : std::numeric_limits<double>::quiet_NaN();
    for (const auto& [s, e] : busy) busy_ms += std::max(0.0, std::min(e, end) - std::max(s, begin));
    out.phases.push_back({names_[p], end - begin, busy_ms});
  }
  return out;
}

}  // namespace ssa
#endif
