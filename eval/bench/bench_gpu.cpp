// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
#include "eval/bench/bench_gpu.h"

#include <algorithm>

#include "cuda/reduce.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/runtime.h"
#include "cuda/runtime/stream.h"

namespace ssa {

CommandLine& declare_timing_options(CommandLine& line) {
  return line.option("--warmup", "N", "untimed runs first (default 3)")
      .option("--repeats", "N", "timed runs, of which the median counts (default 10)");
}

TimingOptions timing_options(const CommandLine& line) {
  return {line.get_int("--warmup", 3, 0), line.get_int("--repeats", 10, 1)};
}
namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

int64_t l2_cache_bytes() {
  int device = 0, bytes = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, device));
  return bytes;
}

}  // namespace

CudaEvents::CudaEvents(size_t count) : events_(count) {
  for (void*& event : events_) CUDA_CHECK(cudaEventCreate(reinterpret_cast<cudaEvent_t*>(&event)));
}

CudaEvents::~CudaEvents() {
  for (void* event : events_) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void CudaEvents::record(size_t index) {
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[index]), cuda::compute_stream()));
}

double CudaEvents::ms_between(size_t from, size_t to) const {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(events_[from]),
                                  static_cast<cudaEvent_t>(events_[to])));
  return ms;
}

GpuTimer::GpuTimer(TimingOptions options)
    : options_(options),
      evict_(Tensor::zeros({std::max<int64_t>(2 * l2_cache_bytes() / 4, 1)}, DType::f32,
                           Device::cuda)),
      evict_sum_(Tensor::scalar(0, DType::f32, Device::cuda)) {}

void GpuTimer::evict_l2() const {
  cuda::sum(evict_.raw(), DType::f32, evict_.numel(), 1.0, evict_sum_.raw(), DType::f32);
}

std::vector<double> GpuTimer::median_phase_ms(
    const std::vector<std::function<void()>>& phases) const {
  for (int64_t i = 0; i < options_.warmup; ++i)
    for (const auto& phase : phases) phase();
  const size_t marks = phases.size() + 1;
  CudaEvents events(marks * static_cast<size_t>(options_.repeats));
  for (int64_t r = 0; r < options_.repeats; ++r) {
    evict_l2();
    const size_t first = static_cast<size_t>(r) * marks;
    events.record(first);
    for (size_t p = 0; p < phases.size(); ++p) {
      phases[p]();
      events.record(first + p + 1);
    }
  }
  synchronize_device();
  std::vector<double> medians;
  for (size_t p = 0; p < phases.size(); ++p) {
    std::vector<double> times;
    for (int64_t r = 0; r < options_.repeats; ++r) {
      const size_t first = static_cast<size_t>(r) * marks;
      times.push_back(events.ms_between(first + p, first + p + 1));
    }
    medians.push_back(median(times));
  }
  return medians;
}

double GpuTimer::median_ms(const std::function<void()>& run) const {
  return median_phase_ms({run})[0];
}

void synchronize_device() { CUDA_CHECK(cudaStreamSynchronize(cuda::compute_stream())); }

Tensor random_tensor(const Shape& shape, DType dtype, double std, Rng& rng) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda);
  rng.fill_normal(t, 0.0, std);
  return t;
}

Tensor random_ids(const Shape& shape, int64_t limit, Rng& rng) {
  std::vector<double> ids(static_cast<size_t>(shape.numel()));
  for (double& id : ids) id = static_cast<double>(rng.below(static_cast<uint64_t>(limit)));
  return Tensor::from(ids, shape, DType::i32).to(Device::cuda);
}

BenchOutput::BenchOutput(const std::string& path)
    : file_(path.empty() ? nullptr : std::make_unique<JsonlFile>(path)),
      device_(cuda::current_device_description()) {}

void BenchOutput::write(JsonLine line) const {
  if (file_) file_->write(line.add("impl", std::string("ssa")).add("device", device_));
}

}  // namespace ssa
#endif
