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
    "(training draws it with attention.p_full); both are computed every step.";

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
};

StepTimes run_steps(const BenchConfig& config, Mode mode, int64_t warmup, int64_t steps) {
  const TrainSettings& s = config.settings;
  Decoder model(s.model, s.run.dtype, Device::cuda, s.run.compute_dtype);
  Rng rng(s.run.seed);
  model.params().initialize(rng);
  AdamW optimizer(model.params(), s.adamw);
  const Tensor ids = random_ids({s.run.micro_batch, s.run.seq_len}, s.model.vocab_size, rng);
  const Tensor targets = random_ids(ids.shape(), s.model.vocab_size, rng);
  const Parameters& params = model.params();
  StepTimes times;
  times.flops_per_token = model.flops_per_token(s.run.seq_len);
  synchronize_device();
  cuda::reset_peak_memory();
  for (int64_t step = 0; step < warmup + steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    params.zero_grad();
    Tensor loss = model.loss(ids, targets, 0, step_options(s, mode, step));
    times.last_loss = loss.item();
    backward(loss);
    const double norm = gradient_norm(params.flat_grad());
    clip_gradient(params.flat_grad(), norm, s.run.grad_clip);
    optimizer.step(s.schedule.lr, params.mixed_precision() ? params.compute_flat() : Tensor());
    synchronize_device();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (step >= warmup) times.seconds.push_back(elapsed.count());
  }
  return times;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
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
      .parse(args);
  const BenchConfig config = load_bench_config(line.get("--config"));
  const TrainSettings& s = config.settings;
  const Mode mode = line.has("--mode") ? parse_mode(line.get("--mode", "")) : s.attention.mode;
  const int64_t warmup = line.get_int("--warmup", 2, 0), steps = line.get_int("--steps", 6, 1);
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
    const StepTimes times = run_steps(config, mode, warmup, steps);
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
