// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
// ssa-bench train: training steps of a config on random tokens: tokens/s, MFU, peak memory.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "autograd/autograd.h"
#include "core/command_line.h"
#include "cuda/runtime/memory.h"
#include "cuda/runtime/runtime.h"
#include "eval/bench/bench.h"
#include "eval/bench/bench_gpu.h"
#include "eval/bench/bench_timeline.h"
#include "train/optimizer.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "Training steps of the config's model on random token ids (no shards), as ssa-train takes\n"
    "them: the config's precision (train.dtype = bf16: f32 master weights, bf16 compute), loss,\n"
    "backward, gradient norm and clipping, AdamW. After the warm-up steps, the timed steps give\n"
    "tokens/s (wall clock, the device synchronized around each step), MFU = tokens/s · FLOPs\n"
    "per token / 989e12 (H100/H200 dense bf16), and the peak of device memory held by tensors\n"
    "during the steps, weights and optimizer state included. FLOPs per token are the model's\n"
    "with full causal attention in every mode (Decoder::flops_per_token), so the modes compare\n"
    "by time. In ssa mode the steps alternate between passing on the full and the sparse path\n"
    "(training draws it with attention.p_full); both are computed every step.\n"
    "With --breakdown, one more step (after one that warms up the recording) is timed on the\n"
    "GPU's timeline: forward (to the loss), backward, optimizer (gradient norm, the loss read\n"
    "back to the host, clipping, AdamW), each from CUDA events at its boundaries, and the part\n"
    "of each when no kernel, copy or memset ran (CUPTI's activity records): the GPU waiting for\n"
    "the host's launches. The five longest idle gaps follow, with the kernels around each and\n"
    "the CUDA runtime calls the host was in meanwhile (none: the host was computing).";

constexpr double kPeakFlops = 989e12;

using Mode = TrainAttention::Mode;

Mode parse_mode(const std::string& name) {
  if (name == "full") return Mode::full;
  if (name == "sparse") return Mode::sparse;
  if (name == "ssa") return Mode::ssa;
  usage_error("--mode: unknown mode '{}' (expected full, sparse or ssa)", name);
}

const char* mode_name(Mode mode) {
  return mode == Mode::full ? "full" : mode == Mode::sparse ? "sparse" : "ssa";
}

ForwardOptions step_options(const TrainSettings& s, Mode mode, int64_t step) {
  ForwardOptions options{s.attention};
  options.align = mode == Mode::ssa;
  options.recompute_ffn = s.run.recompute_ffn;
  const bool sparse = mode == Mode::sparse || (mode == Mode::ssa && step % 2 == 1);
  options.path = sparse ? AttentionPath::sparse : AttentionPath::full;
  return options;
}

struct StepTimes {
  std::vector<double> seconds;
  double last_loss = 0;
  double flops_per_token = 0;  // with full attention
  StepReport breakdown;        // of one more step, with --breakdown
};

const std::vector<std::string> kPhases = {"forward", "backward", "optimizer"};
constexpr size_t kGapsShown = 5;
constexpr int64_t kDefaultNamesShown = 15;  // --kernels

// The model's parameters, drawn from rng first (then the ids and targets, as before).
const Parameters& initialized(Decoder& model, Rng& rng) {
  model.params().initialize(rng);
  return model.params();
}

// One step as ssa-train takes it; marks the boundaries of kPhases when given a timeline.
class Step {
 public:
  Step(const TrainSettings& s, Rng& rng)
      : s_(s),
        model_(s.model, s.run.dtype, Device::cuda, s.run.compute_dtype),
        optimizer_(initialized(model_, rng), s.adamw),
        ids_(random_ids({s.run.micro_batch, s.run.seq_len}, s.model.vocab_size, rng)),
        targets_(random_ids(ids_.shape(), s.model.vocab_size, rng)) {}

  double flops_per_token() const { return model_.flops_per_token(s_.run.seq_len); }

  // Returns the loss.
  double run(Mode mode, int64_t step, StepTimeline* timeline) {
    const Parameters& params = model_.params();
    auto mark = [timeline](size_t boundary) {
      if (timeline) timeline->mark(boundary);
    };
    mark(0);
    params.zero_grad();
    Tensor loss = model_.loss(ids_, targets_, 0, step_options(s_, mode, step));
    mark(1);
    backward(loss);
    mark(2);
    const double norm = gradient_norm(params.flat_grad());
    const double value = loss.item();  // after the norm's kernels, as ssa-train reads it
    optimizer_.step(s_.schedule.lr, params.mixed_precision() ? params.compute_flat() : Tensor(),
                    clip_factor(norm, s_.run.grad_clip));
    mark(3);
    synchronize_device();
    return value;
  }

 private:
  const TrainSettings& s_;
  Decoder model_;
  AdamW optimizer_;
  Tensor ids_, targets_;
};

// With breakdown, the report lists the `names_shown` kernels with the most GPU time.
StepTimes run_steps(const BenchConfig& config, Mode mode, int64_t warmup, int64_t steps,
                    bool breakdown, size_t names_shown) {
  Rng rng(config.settings.run.seed);
  Step step(config.settings, rng);
  StepTimes times;
  times.flops_per_token = step.flops_per_token();
  synchronize_device();
  cuda::reset_peak_memory();
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    times.last_loss = step.run(mode, i, nullptr);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (i >= warmup) times.seconds.push_back(elapsed.count());
  }
  if (breakdown) {
    // The first launches after CUPTI starts recording are slow: one step warms it up.
    StepTimeline timeline(kPhases);
    step.run(mode, warmup + steps, &timeline);
    timeline.restart();
    step.run(mode, warmup + steps, &timeline);
    times.breakdown = timeline.report(kGapsShown, names_shown);
  }
  return times;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// "forward 30.1 ms (idle 0.2) | ...": each phase's GPU time and the part of it without kernels;
// then the longest idle gaps and the kernels of most GPU time.
void print_breakdown(const StepReport& report, JsonLine& json) {
  std::string line;
  double total = 0, idle = 0;
  for (const PhaseTime& phase : report.phases) {
    total += phase.gpu_ms;
    idle += phase.gpu_ms - phase.busy_ms;
    line += fmt::format("{}{} {:.2f} ms (idle {:.2f})", line.empty() ? "" : " | ", phase.name,
                        phase.gpu_ms, phase.gpu_ms - phase.busy_ms);
    json.add(phase.name + "_ms", phase.gpu_ms)
        .add(phase.name + "_idle_ms", phase.gpu_ms - phase.busy_ms);
  }
  if (!StepTimeline::measures_activity()) {
    fmt::print("breakdown (GPU ms; idle not measured: built without CUPTI): {}\n", line);
    return;
  }
  fmt::print(
      "breakdown (GPU ms; idle: no kernel, copy or memset running): {} | idle in all {:.2f} "
      "ms of {:.2f} ({:.1f}%)\n",
      line, idle, total, 100 * idle / total);
  for (const IdleGap& gap : report.gaps)
    fmt::print("  idle {:.3f} ms after {}\n    before {}\n    host in: {}\n", gap.ms, gap.previous,
               gap.next, gap.host);
  fmt::print("GPU time by kernel (ms, launches, share of the busy time):\n");
  for (const ActivityTotal& name : report.names)
    fmt::print("  {:8.3f} {:5d} {:5.1f}%  {}\n", name.ms, name.count,
               100 * name.ms / (total - idle), name.name);
}

}  // namespace

int bench_train_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-bench train", kAbout);
  line.required("--config", "PATH",
                "an ssa-train config (e.g. configs/bench-160m.conf, configs/bench-1b.conf)")
      .option("--mode", "MODE", "full, sparse or ssa (default: the config's attention.mode)")
      .option("--steps", "N", "timed steps (default 6)")
      .option("--warmup", "N", "untimed steps first (default 2)")
      .option("--json", "PATH", "append one JSON object with the result")
      .flag("--breakdown", "time one more step's phases on the GPU (see above)")
      .option("--kernels", "N", "with --breakdown: the kernels listed by GPU time (default 15)")
      .parse(args);
  const BenchConfig config = load_bench_config(line.get("--config"));
  const TrainSettings& s = config.settings;
  const Mode mode = line.has("--mode") ? parse_mode(line.get("--mode", "")) : s.attention.mode;
  const int64_t warmup = line.get_int("--warmup", 2, 0), steps = line.get_int("--steps", 6, 1);
  const int64_t names_shown = line.get_int("--kernels", kDefaultNamesShown, 1);
  require_gpu();
  const BenchOutput output(line.get("--json", ""));
  const int64_t tokens = s.run.micro_batch * s.run.seq_len;
  fmt::print("device: {}\n{} mode {}: batch {} x {} tokens, {} warm-up + {} timed steps\n",
             cuda::current_device_description(), config.name, mode_name(mode), s.run.micro_batch,
             s.run.seq_len, warmup, steps);
  std::fflush(stdout);
  JsonLine json;
  json.add("bench", std::string("train"));
  json.add("case", fmt::format("{} {}", config.name, mode_name(mode)));
  json.add("config", config.name).add("mode", std::string(mode_name(mode)));
  json.add("batch", s.run.micro_batch).add("seq_len", s.run.seq_len).add("steps", steps);
  try {
    const StepTimes times = run_steps(config, mode, warmup, steps, line.has("--breakdown"),
                                      static_cast<size_t>(names_shown));
    double total = 0;
    for (double seconds : times.seconds) total += seconds;
    const double tokens_per_s = static_cast<double>(tokens * steps) / total;
    const double mfu = tokens_per_s * times.flops_per_token / kPeakFlops;
    const double peak_gib = static_cast<double>(cuda::memory_stats().peak) / (1 << 30);
    const double step_ms = 1e3 * median(times.seconds);
    fmt::print(
        "{} {}: step {:.1f} ms (median) | {:.0f} tokens/s | MFU {:.1f}% | peak memory "
        "{:.2f} GiB | last loss {:.4f}\n",
        config.name, mode_name(mode), step_ms, tokens_per_s, 100 * mfu, peak_gib, times.last_loss);
    json.add("flops_per_token", times.flops_per_token)
        .add("step_ms", step_ms)
        .add("tokens_per_s", tokens_per_s)
        .add("mfu", mfu);
    json.add("peak_gib", peak_gib).add("loss", times.last_loss);
    if (!times.breakdown.phases.empty()) print_breakdown(times.breakdown, json);
    output.write(json);
    return 0;
  } catch (const std::exception& error) {
    fmt::print("{} {}: unavailable: {}\n", config.name, mode_name(mode), error.what());
    output.write(json.add("error", std::string(error.what())));
    return 1;
  }
}

}  // namespace ssa
#endif
