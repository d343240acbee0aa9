#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "autograd/autograd.h"
#include "data/tokenizer.h"
#include "models/sampling.h"
#include "train/checkpoint.h"
#include "train/restore.h"
#include "train/settings.h"

namespace ssa {
namespace {

// Separate Philox streams: init uses the seed itself, the run's stream (SSA mode draws) and
// the samples (keyed by step, so sampling settings never shift the run's stream) these.
constexpr uint64_t kRunStream = 0x5353415255ull;
constexpr uint64_t kSampleStream = 0x53534153414dull;

Loader open_loader(const std::string& glob, const TrainSettings& s, bool shuffle) {
  return Loader(expand_glob(glob), s.run.seq_len, s.model.vocab_size, s.run.seed, shuffle);
}

Tensor flat_to_cpu_f32(const Tensor& flat) { return flat.to(Device::cpu).to(DType::f32); }

}  // namespace

Trainer::Trainer(TrainSettings settings)
    : settings_(std::move(settings)),
      model_(settings_.model, settings_.run.dtype, settings_.run.device),
      optimizer_(model_.params(), settings_.adamw),
      train_loader_(open_loader(settings_.run.train_glob, settings_, true)),
      rng_(settings_.run.seed ^ kRunStream) {
  if (settings_.run.seq_len > settings_.model.max_seq_len)
    fail("data.seq_len ({}) exceeds model.max_seq_len ({})", settings_.run.seq_len,
         settings_.model.max_seq_len);
  Rng init_rng(settings_.run.seed);
  model_.params().initialize(init_rng);
  std::filesystem::create_directories(settings_.run.out_dir);
  log_ = std::make_unique<JsonlFile>(settings_.run.out_dir + "/log.jsonl");
}

ForwardOptions Trainer::step_options() {
  const TrainAttention& a = settings_.attention;
  ForwardOptions options;
  options.block_size = a.block_size;
  options.top_k = a.top_k;
  options.align_beta = a.align_beta;
  options.align_weight = a.align_weight;
  options.align = a.mode == TrainAttention::Mode::ssa;
  if (a.mode == TrainAttention::Mode::sparse) options.path = AttentionPath::sparse;
  if (options.align)
    options.path = rng_.uniform() < a.p_full ? AttentionPath::full : AttentionPath::sparse;
  return options;
}

StepResult Trainer::train_step() {
  const RunSettings& run = settings_.run;
  const double divisor = static_cast<double>(run.micro_batch * run.seq_len * run.grad_accum);
  StepResult result;
  result.lr = learning_rate(settings_.schedule, step_);
  const ForwardOptions options = step_options();
  result.path = options.path;
  model_.params().zero_grad();
  for (int64_t micro = 0; micro < run.grad_accum; ++micro) {
    Batch batch = train_loader_.next_batch(run.micro_batch);
    Tensor loss = model_.loss(batch.inputs, batch.targets, divisor, options);
    result.loss += loss.item();
    result.cross_entropy += model_.last_cross_entropy();
    result.alignment += model_.last_alignment() / static_cast<double>(run.grad_accum);
    backward(loss);
  }
  result.grad_norm = gradient_norm(model_.params().flat_grad());
  tokens_seen_ += run.micro_batch * run.seq_len * run.grad_accum;
  ++step_;
  if (!std::isfinite(result.loss) || !std::isfinite(result.grad_norm)) {
    if (!run.skip_nonfinite)
      fail("step {}: non-finite {} ({}); stopped before the update (set "
           "train.on_nonfinite = skip to skip such steps)",
           step_, std::isfinite(result.loss) ? "gradient norm" : "loss",
           std::isfinite(result.loss) ? result.grad_norm : result.loss);
    ++skipped_steps_;
    result.skipped = true;
    return result;
  }
  clip_gradient(model_.params().flat_grad(), result.grad_norm, run.grad_clip);
  optimizer_.step(result.lr);
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
  Loader val = open_loader(settings_.run.val_glob, settings_, false);
  const int64_t micro_batch = settings_.run.micro_batch;
  const int64_t batches = std::min(settings_.run.val_batches,
                                   std::max<int64_t>(1, val.windows_per_epoch() / micro_batch));
  ForwardOptions options;
  options.path = path;
  options.block_size = settings_.attention.block_size;
  options.top_k = settings_.attention.top_k;
  return mean_loss(model_, val, batches, micro_batch, options);
}

void Trainer::run() {
  const RunSettings& run = settings_.run;
  while (step_ < run.steps) {
    auto start = std::chrono::steady_clock::now();
    StepResult result = train_step();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step_ % run.log_every == 0 || step_ == run.steps || result.skipped)
      log_step(result, seconds);
    if (run.val_every > 0 && step_ % run.val_every == 0 && step_ != run.steps) log_validation();
    if (run.sample_every > 0 && step_ % run.sample_every == 0) log_sample();
    if (run.ckpt_every > 0 && step_ % run.ckpt_every == 0 && step_ != run.steps)
      save_checkpoint();
  }
  if (!run.val_glob.empty()) log_validation();
  save_checkpoint();
}

void Trainer::log_step(const StepResult& r, double seconds) {
  const RunSettings& run = settings_.run;
  const bool ssa = settings_.attention.mode == TrainAttention::Mode::ssa;
  const double tokens = static_cast<double>(run.micro_batch * run.seq_len * run.grad_accum);
  const std::string ssa_parts = ssa ? fmt::format(" | ce {:.4f} | align {:.3e} | {:<6}",
                                                  r.cross_entropy, r.alignment, path_name(r.path))
                                    : "";
  fmt::print("step {:>6}/{} | loss {:.4f}{} | lr {:.3e} | grad norm {:.3f} | {:.0f} ms | "
             "{:.0f} tok/s{}\n",
             step_, run.steps, r.loss, ssa_parts, r.lr, r.grad_norm, seconds * 1e3,
             tokens / seconds, r.skipped ? " | SKIPPED (non-finite)" : "");
  std::fflush(stdout);
  JsonLine line;
  line.add("step", step_).add("loss", r.loss).add("ce", r.cross_entropy);
  if (ssa) line.add("align", r.alignment);
  line.add("mode", std::string(path_name(r.path)));
  line.add("lr", r.lr).add("grad_norm", r.grad_norm);
  line.add("ms", seconds * 1e3).add("tokens_per_s", tokens / seconds);
  line.add("tokens_seen", tokens_seen_).add("skipped_steps", skipped_steps_);
  log_->write(line);
}

void Trainer::log_validation() {
  if (settings_.run.val_glob.empty()) return;
  const double loss = validation_loss(AttentionPath::full);
  JsonLine line;
  line.add("step", step_).add("val_loss", loss).add("val_ppl", std::exp(loss));
  std::string text = fmt::format("step {:>6} | val loss {:.4f} | val ppl {:.2f}", step_, loss,
                                 std::exp(loss));
  if (settings_.attention.mode != TrainAttention::Mode::full) {
    const double sparse = validation_loss(AttentionPath::sparse);
    line.add("val_loss_sparse", sparse).add("val_ppl_sparse", std::exp(sparse));
    text += fmt::format(" | sparse (top-{}) val loss {:.4f} | val ppl {:.2f}",
                        settings_.attention.top_k, sparse, std::exp(sparse));
  }
  fmt::print("{}\n", text);
  std::fflush(stdout);
  log_->write(line);
}

void Trainer::log_sample() {
  // A new document starts after <|endoftext|>; a vocabulary without it starts from id 0.
  const int64_t start = std::min<int64_t>(Tokenizer::kEndOfText, settings_.model.vocab_size - 1);
  std::vector<int32_t> prompt{static_cast<int32_t>(start)};
  Rng sample_rng(settings_.run.seed ^ kSampleStream, static_cast<uint64_t>(step_) << 32);
  std::vector<int32_t> ids = generate(model_, prompt, settings_.run.sample_tokens,
                                      SamplingOptions{1.0, 40}, sample_rng);
  std::string text;
  if (!settings_.run.tokenizer_path.empty()) {
    Tokenizer tokenizer = Tokenizer::load(settings_.run.tokenizer_path);
    std::vector<uint32_t> unsigned_ids(ids.begin() + 1, ids.end());
    text = tokenizer.decode(unsigned_ids);
  } else {
    for (size_t i = 1; i < ids.size(); ++i) text += fmt::format("{} ", ids[i]);
  }
  fmt::print("step {:>6} | sample:\n{}\n", step_, text);
  std::fflush(stdout);
  log_->write(JsonLine().add("step", step_).add("sample", text));
}

std::string Trainer::save_checkpoint() {
  Checkpoint ckpt;
  ckpt.text["config"] = settings_.config_text;
  ckpt.integers["step"] = step_;
  ckpt.integers["tokens_seen"] = tokens_seen_;
  ckpt.integers["skipped_steps"] = skipped_steps_;
  ckpt.integers["rng_seed"] = static_cast<int64_t>(rng_.seed());
  ckpt.integers["rng_offset"] = static_cast<int64_t>(rng_.offset());
  ckpt.integers["loader_epoch"] = static_cast<int64_t>(train_loader_.state().epoch);
  ckpt.integers["loader_position"] = static_cast<int64_t>(train_loader_.state().position);
  ckpt.integers["adam_step"] = optimizer_.step_count();
  const Parameters& params = model_.params();
  for (const auto& [group, buffer] : state_buffers()) {
    Tensor host = flat_to_cpu_f32(*buffer);
    for (size_t i = 0; i < params.size(); ++i) {
      const ParamSpec& spec = params.specs()[i];
      ckpt.tensors.emplace_back(group + spec.name, host.view(params.offsets()[i], spec.shape));
    }
  }
  const std::string& dir = settings_.run.out_dir;
  std::string path = dir + "/" + checkpoint_file_name(step_);
  write_checkpoint(path, ckpt);
  prune_checkpoints(dir, settings_.run.keep_last);
  fmt::print("step {:>6} | checkpoint {}\n", step_, path);
  std::fflush(stdout);
  return path;
}

std::vector<std::pair<std::string, const Tensor*>> Trainer::state_buffers() const {
  return {{"params/", &model_.params().flat()},
          {"adam_m/", &optimizer_.first_moment()},
          {"adam_v/", &optimizer_.second_moment()}};
}

void Trainer::resume_from(const std::string& path) {
  Checkpoint ckpt = read_checkpoint(path);
  ModelConfig stored = model_config_from(checkpoint_config(ckpt, path));
  std::vector<std::string> diff = differing_fields(stored, settings_.model);
  if (!diff.empty())
    fail("checkpoint {} was trained with another model config (checkpoint vs this run):\n  {}",
         path, fmt::join(diff, "\n  "));
  for (const auto& [group, buffer] : state_buffers())
    load_flat_buffer(ckpt, path, group, model_.params(), *buffer);
  step_ = ckpt.integer("step", path);
  tokens_seen_ = ckpt.integer("tokens_seen", path);
  skipped_steps_ = ckpt.integer("skipped_steps", path);
  rng_ = Rng(static_cast<uint64_t>(ckpt.integer("rng_seed", path)),
             static_cast<uint64_t>(ckpt.integer("rng_offset", path)));
  train_loader_.set_state({static_cast<uint64_t>(ckpt.integer("loader_epoch", path)),
                           static_cast<uint64_t>(ckpt.integer("loader_position", path))});
  optimizer_.set_step_count(ckpt.integer("adam_step", path));
  fmt::print("resumed from {} at step {}\n", path, step_);
}

}  // namespace ssa
