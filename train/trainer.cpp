#include "train/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <sstream>

#include "autograd/autograd.h"
#include "data/tokenizer.h"
#include "models/sampling.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/restore.h"

namespace ssa {
namespace {

// Separate Philox streams: init uses the seed itself, the run's stream (SSA mode draws) and
// the samples (keyed by step, so sampling settings never shift the run's stream) these.
constexpr uint64_t kRunStream = 0x5353415255ull;
constexpr uint64_t kSampleStream = 0x53534153414dull;

// MFU's reference: H100/H200 dense bf16 tensor-core peak.
constexpr double kPeakFlops = 989e12;

TrainSettings on_usable_device(TrainSettings settings) {
  require_device(settings.run.device);
  return settings;
}

// 64-bit FNV-1a.
uint64_t fnv1a(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return hash;
}

double value_or_zero(const Tensor& scalar) { return scalar.defined() ? scalar.item() : 0.0; }

uint64_t checksum(const Tensor& host) {
  return fnv1a({static_cast<const char*>(host.raw()), host.nbytes()});
}

std::vector<std::string> lines_of(const std::string& text) {
  std::istringstream stream(text);
  std::vector<std::string> lines;
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// The config text as "section.key = value" lines, without the keys that may differ between
// nodes (node-local copies of the data, the tokenizer; train.out_dir, which only rank 0 writes).
std::string shared_config_text(const std::string& config_text) {
  std::string kept, section;
  for (const std::string& line : lines_of(config_text)) {
    if (line.starts_with("[")) section = line.substr(1, line.find(']') - 1);
    if (line.empty() || line.starts_with("[")) continue;
    const std::string key = line.substr(0, line.find(" ="));
    const bool per_node =
        (section == "data" && key != "seq_len") || (section == "train" && key == "out_dir");
    if (!per_node) kept += section + "." + line + "\n";
  }
  return kept;
}

// What differs between this rank's shared config text and rank 0's ("KEY = V here, W on rank
// 0"), or "" when nothing does.
std::string config_difference(const std::string& mine, const std::string& first) {
  const std::vector<std::string> a = lines_of(mine), b = lines_of(first);
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string here = i < a.size() ? a[i] : "(nothing)";
    const std::string there = i < b.size() ? b[i] : "(nothing)";
    if (here == there) continue;
    const size_t split = here.find(" = ");
    if (split != std::string::npos && there.starts_with(here.substr(0, split + 3)))
      return fmt::format("{} here, {} on rank 0", here, there.substr(split + 3));
    return fmt::format("'{}' here, '{}' on rank 0", here, there);
  }
  return "";
}

}  // namespace

Trainer::Trainer(TrainSettings settings, std::shared_ptr<Communicator> comm)
    : settings_(on_usable_device(std::move(settings))),
      comm_(std::move(comm)),
      files_(open_run_files(settings_, comm_->rank(), comm_->world())),
      model_(settings_.model, settings_.run.dtype, settings_.run.device,
             settings_.run.compute_dtype),
      buckets_(model_.params(), *comm_, static_cast<int64_t>(settings_.run.bucket_mb * (1 << 20))),
      rng_(settings_.run.seed ^ kRunStream) {
  if (settings_.run.seq_len > settings_.model.max_seq_len)
    fail("data.seq_len ({}) exceeds model.max_seq_len ({})", settings_.run.seq_len,
         settings_.model.max_seq_len);
  check_same_run();
  if (settings_.run.zero == 1)
    zero_ = std::make_unique<ZeroOptimizer>(model_.params(), settings_.adamw, *comm_);
  else
    optimizer_ = std::make_unique<AdamW>(model_.params(), settings_.adamw);
  Rng init_rng(settings_.run.seed);
  model_.params().initialize(init_rng);
  check_identical_start();
  if (!leader()) return;
  log_ = std::make_unique<JsonlFile>(settings_.run.out_dir + "/log.jsonl");
}

void Trainer::check_same_run() {
  if (comm_->world() == 1) return;
  const std::string config = shared_config_text(settings_.config_text);
  const std::string windows = fmt::format("{} training and {} validation windows",
                                          files_.train.windows_per_epoch(), files_.val_windows);
  const std::vector<std::string> configs = comm_->gather_text(config);
  const std::vector<std::string> data = comm_->gather_text(windows);
  const std::string difference = config_difference(config, configs[0]);
  if (!difference.empty())
    fail(
        "this rank's config differs from rank 0's: {}; every rank must run the same config (data "
        "paths and train.out_dir may differ)",
        difference);
  if (data[0] != windows)
    fail(
        "this rank's shards hold {} of data.seq_len + 1 tokens, rank 0's {}; every rank must "
        "train on the same data (node-local copies may sit at other paths)",
        windows, data[0]);
}

void Trainer::check_identical_start() {
  if (comm_->world() == 1) return;
  const uint64_t mine = checksum(model_.params().flat().to(Device::cpu));
  const uint64_t first = comm_->broadcast(mine);
  if (mine != first)
    fail(
        "the parameters at the start (checksum {:016x}) differ from rank 0's ({:016x}); every "
        "rank must start from the same train.seed and checkpoint",
        mine, first);
}

int64_t Trainer::optimizer_state_bytes() const {
  return static_cast<int64_t>(adamw().first_moment().nbytes() + adamw().second_moment().nbytes());
}

ForwardOptions Trainer::step_options() {
  const TrainAttention& a = settings_.attention;
  ForwardOptions options{a};  // the run's AttentionSettings
  options.align = a.mode == TrainAttention::Mode::ssa;
  options.recompute_ffn = settings_.run.recompute_ffn;
  if (a.mode == TrainAttention::Mode::sparse) options.path = AttentionPath::sparse;
  if (options.align)
    options.path = rng_.uniform() <= a.p_full ? AttentionPath::full : AttentionPath::sparse;
  return options;
}

StepResult Trainer::train_step() {
  try {
    return step_once();
  } catch (const OutOfMemory& error) {
    fail(
        "step {}: {}; lower train.micro_batch (raise train.grad_accum to keep the batch) or "
        "data.seq_len",
        step_ + 1, error.what());
  }
}

StepResult Trainer::step_once() {
  const RunSettings& run = settings_.run;
  const int world = comm_->world();
  // Every rank divides by the global token count: the sum over ranks is the global mean.
  const int64_t step_tokens = run.micro_batch * run.seq_len * run.grad_accum * world;
  StepResult result;
  result.lr = learning_rate(settings_.schedule, step_);
  const ForwardOptions options = step_options();  // the same draw on every rank
  result.path = options.path;
  comm_->set_step(step_ + 1);
  model_.params().zero_grad();
  std::vector<std::pair<Tensor, Decoder::LossParts>> losses;  // read after the gradient norm
  for (int64_t micro = 0; micro < run.grad_accum; ++micro) {
    Batch batch = files_.train.next_batch(run.micro_batch);
    Tensor loss =
        model_.loss(batch.inputs, batch.targets, static_cast<double>(step_tokens), options);
    // Only the last micro-step communicates; its buckets as soon as backward finishes them.
    const bool communicate = micro + 1 == run.grad_accum && world > 1 && !zero_;
    backward(loss, Tensor(), communicate ? buckets_.on_final() : LeafFinal());
    losses.emplace_back(loss.detach(), model_.last_parts());
  }
  if (zero_)
    zero_->reduce_gradients();
  else if (world > 1)
    buckets_.finish();
  result.grad_norm = zero_ ? zero_->gradient_norm() : gradient_norm(model_.params().flat_grad());
  // The losses are read once the norm's kernels are queued behind the backward: a read before
  // would leave the GPU idle from the backward's end to the norm's launch.
  for (const auto& [loss, parts] : losses) {
    result.loss += loss.item();
    result.cross_entropy += value_or_zero(parts.cross_entropy);
    result.alignment +=
        value_or_zero(parts.alignment) / static_cast<double>(run.grad_accum * world);
  }
  const std::vector<double> totals =
      comm_->sum({result.loss, result.cross_entropy, result.alignment});
  result.loss = totals[0];
  result.cross_entropy = totals[1];
  result.alignment = totals[2];
  result.comm_exposed_seconds = comm_->take_exposed_seconds();
  tokens_seen_ += step_tokens;
  ++step_;
  if (!std::isfinite(result.loss) || !std::isfinite(result.grad_norm)) {
    if (!run.skip_nonfinite)
      fail(
          "step {}: non-finite {} ({}); stopped before the update (set "
          "train.on_nonfinite = skip to skip such steps)",
          step_, std::isfinite(result.loss) ? "gradient norm" : "loss",
          std::isfinite(result.loss) ? result.grad_norm : result.loss);
    ++skipped_steps_;
    result.skipped = true;
    return result;
  }
  if (zero_) {
    zero_->step(result.lr, result.grad_norm, run.grad_clip);
    result.comm_exposed_seconds += comm_->take_exposed_seconds();  // the weights' all-gather
    return result;
  }
  const Parameters& params = model_.params();
  optimizer_->step(result.lr, params.mixed_precision() ? params.compute_flat() : Tensor(),
                   clip_factor(result.grad_norm, run.grad_clip));
  return result;
}

double mean_loss(Decoder& model, Loader& loader, int64_t batches, int64_t micro_batch,
                 const ForwardOptions& options) {
  NoGrad no_grad;
  ForwardOptions no_alignment = options;
  no_alignment.align = false;
  double total = 0;
  for (int64_t i = 0; i < batches; ++i) {
    Batch batch = loader.next_batch(micro_batch);
    total += model.loss(batch.inputs, batch.targets, 0, no_alignment).item();
  }
  return total / static_cast<double>(batches);
}

double Trainer::validation_loss(AttentionPath path) {
  return comm_->sum({local_validation_loss(path)})[0];
}

// Each reading rank's share of the global batches: their means, summed over the ranks, give
// world 1's mean. Fewer windows than micro-batches of every rank: smaller batches, and with
// fewer windows than ranks, only the first ranks read; no window counts twice.
double Trainer::local_validation_loss(AttentionPath path) {
  const int world = comm_->world();
  Loader val = open_validation_data(settings_, comm_->rank(), world);
  const int64_t windows = val.windows_per_epoch();
  const int64_t readers = std::min<int64_t>(world, windows);
  if (comm_->rank() >= readers) return 0;
  const int64_t batch = std::clamp<int64_t>(windows / world, 1, settings_.run.micro_batch);
  const int64_t batches =
      std::min(settings_.run.val_batches, std::max<int64_t>(1, windows / (batch * world)));
  ForwardOptions options{settings_.attention};
  options.path = path;
  return mean_loss(model_, val, batches, batch, options) / static_cast<double>(readers);
}

void Trainer::run(const std::string& resume_command) {
  const RunSettings& run = settings_.run;
  if (step_ == 0 && leader()) drop_later_log_lines();  // an earlier run's, which left no checkpoint
  if (step_ == run.steps && step_ > 0) {               // resumed from the run's last checkpoint
    finish_resumed_run();
    return;
  }
  StopSignals signals;
  while (step_ < run.steps) {
    auto start = std::chrono::steady_clock::now();
    StepResult result = train_step();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step_ % run.log_every == 0 || step_ == run.steps || result.skipped)
      log_step(result, seconds);
    if (run.val_every > 0 && step_ % run.val_every == 0 && step_ != run.steps) log_validation();
    if (run.sample_every > 0 && step_ % run.sample_every == 0) log_sample();
    if (run.ckpt_every > 0 && step_ % run.ckpt_every == 0 && step_ != run.steps) save_checkpoint();
    if (const int signal = agreed_stop_signal(signals)) {
      stop(signal, resume_command);
      return;
    }
  }
  if (!run.val_glob.empty()) log_validation();
  if (run.ckpt_every >= 0) save_checkpoint();
}

int Trainer::agreed_stop_signal(const StopSignals& signals) {
  const int mine = signals.received();
  if (comm_->world() == 1) return mine;
  const std::vector<double> stopping =
      comm_->sum({mine == SIGTERM ? 1.0 : 0.0, mine == SIGINT ? 1.0 : 0.0});
  return stopping[0] > 0 ? SIGTERM : stopping[1] > 0 ? SIGINT : 0;
}

void Trainer::stop(int signal, const std::string& resume_command) {
  const std::string stopped =
      fmt::format("ssa-train: stopped by {} at step {}", stop_signal_name(signal), step_);
  if (settings_.run.ckpt_every < 0) {
    if (leader()) fmt::print("{}; no checkpoint written (train.ckpt_every = -1)\n", stopped);
    std::fflush(stdout);
    return;
  }
  const std::string path = saved_step_ == step_ ? checkpoint_path() : save_checkpoint();
  if (!leader()) return;
  const int world = comm_->world();
  fmt::print("{}; checkpoint {}; resume with: {}{}\n", stopped, path,
             world > 1 ? fmt::format("mpirun -np {} ", world) : "", resume_command);
  std::fflush(stdout);
}

void Trainer::finish_resumed_run() {
  const std::string log = settings_.run.out_dir + "/log.jsonl";
  const bool validated = settings_.run.val_glob.empty() ||
                         comm_->broadcast(leader() && has_validation_at(log, step_) ? 1 : 0) == 1;
  if (validated) {
    if (leader()) fmt::print("nothing to train: the run is at step {} = train.steps\n", step_);
    return;
  }
  if (leader())
    fmt::print("the run is at step {} = train.steps; its final validation, not yet run, runs now\n",
               step_);
  log_validation();
}

void Trainer::fail_keeping_state(const std::string& failure) {
  if (settings_.run.ckpt_every < 0)
    fail("{} (no checkpoint written: train.ckpt_every = -1)", failure);
  const std::string path = save_checkpoint();
  const std::string where =
      leader() ? path : fmt::format("{} in rank 0's train.out_dir", checkpoint_file_name(step_));
  fail("{}; the trained state is saved in {} (fix the cause, then resume with --resume auto)",
       failure, where);
}

void Trainer::log_step(const StepResult& r, double seconds) {
  if (!leader()) return;
  const RunSettings& run = settings_.run;
  const bool ssa = settings_.attention.mode == TrainAttention::Mode::ssa;
  const double tokens =
      static_cast<double>(run.micro_batch * run.seq_len * run.grad_accum * comm_->world());
  const double tokens_per_s = tokens / seconds;
  const bool gpu = run.device == Device::cuda;
  const double mfu =  // per GPU
      tokens_per_s / comm_->world() * model_.flops_per_token(run.seq_len) / kPeakFlops;
  const std::string ssa_parts = ssa ? fmt::format(" | ce {:.4f} | align {:.3e} | {:<6}",
                                                  r.cross_entropy, r.alignment, path_name(r.path))
                                    : "";
  const bool parallel = comm_->world() > 1;
  fmt::print(
      "step {:>6}/{} | loss {:.4f}{} | lr {:.3e} | grad norm {:.3f} | {:.0f} ms | "
      "{:.0f} tok/s{}{}{}\n",
      step_, run.steps, r.loss, ssa_parts, r.lr, r.grad_norm, seconds * 1e3, tokens_per_s,
      gpu ? fmt::format(" | MFU {:.1f}%", 100 * mfu) : "",
      parallel ? fmt::format(" | comm {:.1f} ms exposed", r.comm_exposed_seconds * 1e3) : "",
      r.skipped ? " | SKIPPED (non-finite)" : "");
  std::fflush(stdout);
  JsonLine line;
  line.add("step", step_).add("loss", r.loss).add("ce", r.cross_entropy);
  if (ssa) line.add("align", r.alignment);
  line.add("mode", std::string(path_name(r.path)));
  line.add("lr", r.lr).add("grad_norm", r.grad_norm);
  line.add("ms", seconds * 1e3).add("tokens_per_s", tokens_per_s);
  if (parallel)
    line.add("world", static_cast<int64_t>(comm_->world()))
        .add("comm_exposed_ms", r.comm_exposed_seconds * 1e3);
  if (gpu) line.add("mfu", mfu).add("peak_bytes", peak_device_bytes(run.device));
  line.add("tokens_seen", tokens_seen_).add("skipped_steps", skipped_steps_);
  log_->write(line);
}

void Trainer::log_validation() {
  if (settings_.run.val_glob.empty()) return;
  const bool with_sparse = settings_.attention.mode != TrainAttention::Mode::full;
  std::string failure;  // this rank's
  double full = 0, sparse = 0;
  try {
    full = local_validation_loss(AttentionPath::full);
    if (with_sparse) sparse = local_validation_loss(AttentionPath::sparse);
  } catch (const std::exception& error) {
    failure = error.what();
  }
  // One collective for both means and the failures: every rank learns of any rank's.
  const std::vector<double> sums = comm_->sum({full, sparse, failure.empty() ? 0.0 : 1.0});
  if (sums[2] > 0)
    fail_keeping_state(fmt::format("validation at step {} failed: {}", step_,
                                   failure.empty() ? "on another rank" : failure));
  const double loss = sums[0];
  JsonLine line;
  line.add("step", step_).add("val_loss", loss).add("val_ppl", std::exp(loss));
  std::string text =
      fmt::format("step {:>6} | val loss {:.4f} | val ppl {:.2f}", step_, loss, std::exp(loss));
  if (with_sparse) {
    sparse = sums[1];
    line.add("val_loss_sparse", sparse).add("val_ppl_sparse", std::exp(sparse));
    text += fmt::format(" | sparse (top-{}) val loss {:.4f} | val ppl {:.2f}",
                        settings_.attention.top_k, sparse, std::exp(sparse));
  }
  if (!leader()) return;
  fmt::print("{}\n", text);
  std::fflush(stdout);
  log_->write(line);
}

void Trainer::log_sample() {
  if (!leader()) return;
  std::string text;
  try {
    text = sample_text();
  } catch (const std::exception& error) {
    fmt::print(stderr, "ssa-train: warning: step {}: sample skipped: {}\n", step_, error.what());
    std::fflush(stderr);
    return;
  }
  fmt::print("step {:>6} | sample:\n{}\n", step_, text);
  std::fflush(stdout);
  log_->write(JsonLine().add("step", step_).add("sample", text));
}

std::string Trainer::sample_text() {
  // A new document starts after <|endoftext|>; a vocabulary without it starts from id 0.
  const int64_t start = std::min<int64_t>(Tokenizer::kEndOfText, settings_.model.vocab_size - 1);
  std::vector<int32_t> prompt{static_cast<int32_t>(start)};
  Rng sample_rng(settings_.run.seed ^ kSampleStream, static_cast<uint64_t>(step_) << 32);
  const std::optional<Tokenizer>& tokenizer = files_.tokenizer;
  const SamplingOptions options{1.0, 40, tokenizer ? tokenizer->vocab_size() : 0};
  std::vector<int32_t> ids =
      generate(model_, prompt, settings_.run.sample_tokens, options, sample_rng);
  if (tokenizer) return tokenizer->decode(std::vector<uint32_t>(ids.begin() + 1, ids.end()));
  std::string text;
  for (size_t i = 1; i < ids.size(); ++i) text += fmt::format("{} ", ids[i]);
  return text;
}

std::string Trainer::checkpoint_path() const {
  return settings_.run.out_dir + "/" + checkpoint_file_name(step_);
}

std::string Trainer::save_checkpoint() {
  const std::string path = checkpoint_path();
  std::vector<std::pair<std::string, Tensor>> buffers = state_buffers();
  if (leader()) {
    Checkpoint ckpt;
    ckpt.text["config"] = settings_.config_text;
    ckpt.integers["step"] = step_;
    ckpt.integers["tokens_seen"] = tokens_seen_;
    ckpt.integers["skipped_steps"] = skipped_steps_;
    ckpt.integers["rng_seed"] = static_cast<int64_t>(rng_.seed());
    ckpt.integers["rng_offset"] = static_cast<int64_t>(rng_.offset());
    ckpt.integers["loader_epoch"] = static_cast<int64_t>(files_.train.state().epoch);
    ckpt.integers["loader_position"] = static_cast<int64_t>(files_.train.state().position);
    ckpt.integers["adam_step"] = adamw().step_count();
    const Parameters& params = model_.params();
    for (const auto& [group, buffer] : buffers) {
      const Tensor host = buffer.to(Device::cpu);  // the master dtype: f32, or f64
      for (size_t i = 0; i < params.size(); ++i) {
        const ParamSpec& spec = params.specs()[i];
        ckpt.tensors.emplace_back(group + spec.name, host.view(params.offsets()[i], spec.shape));
      }
    }
    write_checkpoint(path, ckpt);
    prune_checkpoints(settings_.run.out_dir, settings_.run.keep_last);
    fmt::print("step {:>6} | checkpoint {}\n", step_, path);
    std::fflush(stdout);
  }
  comm_->barrier();  // the file exists for every rank once this returns
  saved_step_ = step_;
  return path;
}

std::vector<std::pair<std::string, Tensor>> Trainer::state_buffers() {
  if (!zero_)
    return {{"params/", model_.params().flat()},
            {"adam_m/", optimizer_->first_moment()},
            {"adam_v/", optimizer_->second_moment()}};
  zero_->gather_master();
  return {{"params/", model_.params().flat()},
          {"adam_m/", zero_->gathered_first_moment()},
          {"adam_v/", zero_->gathered_second_moment()}};
}

void Trainer::load_state(const Checkpoint& ckpt, const std::string& path) {
  const Parameters& params = model_.params();
  load_flat_buffer(ckpt, path, "params/", params, params.flat());
  params.refresh_compute_copy();
  if (!zero_) {
    load_flat_buffer(ckpt, path, "adam_m/", params, optimizer_->first_moment());
    load_flat_buffer(ckpt, path, "adam_v/", params, optimizer_->second_moment());
    return;
  }
  const Tensor& flat = params.flat();
  Tensor first = Tensor::zeros(flat.shape(), flat.dtype(), flat.device());
  Tensor second = Tensor::zeros(flat.shape(), flat.dtype(), flat.device());
  load_flat_buffer(ckpt, path, "adam_m/", params, first);
  load_flat_buffer(ckpt, path, "adam_v/", params, second);
  zero_->load_moments(first, second);
}

// Checkpoints of later steps in out_dir belong to a run that went on past this one's start:
// pruning would keep them over this run's own, and --resume auto would pick them.
void Trainer::refuse_later_checkpoints(const std::string& path) const {
  const std::vector<std::string> later = list_checkpoints(settings_.run.out_dir, step_);
  if (later.empty()) return;
  fail(
      "train.out_dir '{}' holds checkpoints past step {}, where {} resumes ({}); they belong to "
      "the run that went on from there. Move them out of '{}', or choose another train.out_dir",
      settings_.run.out_dir, step_, path, fmt::join(later, ", "), settings_.run.out_dir);
}

// Lines of steps past the resumed one come from a run that stopped after its last checkpoint
// (at step 0: one that left none); this run logs those steps again.
void Trainer::drop_later_log_lines() {
  const std::string path = settings_.run.out_dir + "/log.jsonl";
  log_.reset();  // the file is rewritten; the log appends to the new one
  const int64_t dropped = drop_log_lines_after(path, step_);
  log_ = std::make_unique<JsonlFile>(path);
  if (dropped == 0) return;
  if (step_ == 0)
    fmt::print("{}: dropped {} line(s) of an earlier run that left no checkpoint\n", path, dropped);
  else
    fmt::print("{}: dropped {} line(s) of steps past {}, which this run repeats\n", path, dropped,
               step_);
}

void check_resumable(const Checkpoint& ckpt, const std::string& path,
                     const TrainSettings& settings) {
  ModelConfig stored = model_config_from(checkpoint_config(ckpt, path));
  std::vector<std::string> diff = differing_fields(stored, settings.model);
  if (!diff.empty())
    fail("checkpoint {} was trained with another model config (checkpoint vs this run):\n  {}",
         path, fmt::join(diff, "\n  "));
  const int64_t step = ckpt.integer("step", path);
  if (step > settings.run.steps)
    fail("train.steps = {} is below step {} of {}; raise train.steps to train on from it",
         settings.run.steps, step, path);
}

void Trainer::resume_from(const std::string& path) {
  const Checkpoint ckpt = read_checkpoint(path);
  check_resumable(ckpt, path, settings_);
  resume_from(ckpt, path);
}

namespace {

// A resumed run may change what orders its data (another seed, longer windows); it is said, as
// the windows read from here on are not the ones the checkpoint's run would have read.
void note_changed_data_order(const Config& stored, const RunSettings& run) {
  const std::pair<const char*, int64_t> settings[] = {
      {"train.seed", static_cast<int64_t>(run.seed)}, {"data.seq_len", run.seq_len}};
  for (const auto& [key, value] : settings)
    if (const int64_t then = stored.get_int(key); then != value)
      fmt::print(
          "note: {} = {} here, {} in the checkpoint's run: from here on the run reads other "
          "windows than that run would have\n",
          key, value, then);
}

}  // namespace

void Trainer::resume_from(const Checkpoint& ckpt, const std::string& path) {
  step_ = ckpt.integer("step", path);
  refuse_later_checkpoints(path);
  if (leader()) drop_later_log_lines();
  load_state(ckpt, path);
  tokens_seen_ = ckpt.integer("tokens_seen", path);
  skipped_steps_ = ckpt.integer("skipped_steps", path);
  rng_ = Rng(static_cast<uint64_t>(ckpt.integer("rng_seed", path)),
             static_cast<uint64_t>(ckpt.integer("rng_offset", path)));
  files_.train.set_state({static_cast<uint64_t>(ckpt.integer("loader_epoch", path)),
                          static_cast<uint64_t>(ckpt.integer("loader_position", path))});
  adamw().set_step_count(ckpt.integer("adam_step", path));
  check_identical_start();
  if (leader()) {
    note_changed_data_order(checkpoint_config(ckpt, path), settings_.run);
    fmt::print("resumed from {} at step {}\n", path, step_);
  }
}

}  // namespace ssa
