#pragma once
// The training loop: data -> model -> loss -> backward -> clip -> AdamW, with logging,
// validation, samples and checkpoints that resume bit-exactly. Device-agnostic: the model's
// parameters decide where the work runs. Data-parallel over the ranks of a Communicator
// (train/dist/data_parallel.h): world W with micro-batch b trains exactly as world 1 with batch W·b
// (up to the order of float sums); rank 0 logs and writes checkpoints, which any world resumes.
#include <memory>
#include <optional>
#include <string>

#include "data/loader.h"
#include "models/decoder.h"
#include "train/checkpoint.h"
#include "train/dist/communicator.h"
#include "train/dist/data_parallel.h"
#include "train/log.h"
#include "train/optimizer.h"
#include "train/run_files.h"
#include "train/settings.h"
#include "train/stop_signals.h"

namespace ssa {

struct StepResult {
  double loss = 0;  // the optimised loss: cross-entropy + alpha · alignment
  double cross_entropy = 0;
  double alignment = 0;  // mean over layers (and micro-batches); 0 unless ssa
  AttentionPath path = AttentionPath::full;
  double grad_norm = 0;
  double lr = 0;
  double comm_exposed_seconds = 0;  // communication not hidden behind compute (this rank's)
  bool skipped = false;
};

// The mean next-token loss of `model` over `batches` micro-batches of `loader`, without grad,
// under the attention `options` give (their align is ignored).
double mean_loss(Decoder& model, Loader& loader, int64_t batches, int64_t micro_batch,
                 const ForwardOptions& options = {});

// Fails when the run of `settings` cannot go on from the checkpoint `ckpt` (read from `path`):
// another model config (naming the differing fields), or train.steps below its step. Checked
// before a Trainer exists, so that such a run creates nothing in train.out_dir.
void check_resumable(const Checkpoint& ckpt, const std::string& path,
                     const TrainSettings& settings);

class Trainer {
 public:
  // All ranks of `comm` construct their Trainer with the same settings; every method below is
  // then called by all of them in the same order (they run collectives). The run's files are
  // opened and checked before the model is allocated (train/run_files.h).
  explicit Trainer(TrainSettings settings,
                   std::shared_ptr<Communicator> comm = single_process_communicator());

  // Restores parameters, moments, step, RNG and loader state from the checkpoint at `path`,
  // which check_resumable must accept; or from `ckpt`, read from `path`, that the caller has
  // checked with it already.
  void resume_from(const std::string& checkpoint_path);
  void resume_from(const Checkpoint& ckpt, const std::string& path);
  // Trains from the current step to settings.run.steps, logging and checkpointing. SIGTERM or
  // SIGINT on any rank stops every rank after the same step: a checkpoint is written and rank 0
  // prints how to resume (`resume_command`, stop_signals.h). A failed validation writes a
  // checkpoint before it raises; a failed sample is skipped with a warning.
  void run(const std::string& resume_command = "ssa-train ... --resume auto");
  // One optimizer step; memory that runs out in it raises naming what to lower.
  StepResult train_step();
  // Validation loss under the full path, or the sparse one (at the training top_k).
  double validation_loss(AttentionPath path = AttentionPath::full);
  std::string save_checkpoint();

  int64_t step() const { return step_; }
  // Bytes of optimizer state this rank holds: the AdamW moments of its range (all parameters,
  // or its ZeRO-1 chunk).
  int64_t optimizer_state_bytes() const;
  const Communicator& communicator() const { return *comm_; }
  Communicator& communicator() { return *comm_; }
  Decoder& model() { return model_; }
  const Decoder& model() const { return model_; }
  const TrainSettings& settings() const { return settings_; }

 private:
  // This step's forward options; in ssa mode draws the path from the run's stream.
  ForwardOptions step_options();
  StepResult step_once();
  // This rank's part of validation_loss (no collective).
  double local_validation_loss(AttentionPath path);
  void log_step(const StepResult& result, double seconds);
  void log_validation();
  void log_sample();
  std::string sample_text();
  std::string checkpoint_path() const;  // of this step
  // The signal that stops the run after this step, agreed by every rank; 0: carry on.
  int agreed_stop_signal(const StopSignals& signals);
  void stop(int signal, const std::string& resume_command);
  // A run resumed at train.steps: its final validation when the log has none at that step (the
  // run was stopped in its last step, or that validation failed), else nothing.
  void finish_resumed_run();
  // Writes a checkpoint (unless train.ckpt_every = -1), then raises `failure` with its path.
  [[noreturn]] void fail_keeping_state(const std::string& failure);
  // The full flat buffers a checkpoint holds, with their group names: parameters, AdamW
  // moments (gathered from every rank under ZeRO-1: a collective).
  std::vector<std::pair<std::string, Tensor>> state_buffers();
  void refuse_later_checkpoints(const std::string& path) const;
  void drop_later_log_lines();
  void load_state(const Checkpoint& ckpt, const std::string& path);
  // Fails on a rank whose config or training data differ from rank 0's.
  void check_same_run();
  // Fails on a rank whose parameters differ from rank 0's (a checksum of the master weights).
  void check_identical_start();
  AdamW& adamw() { return zero_ ? zero_->adamw() : *optimizer_; }
  const AdamW& adamw() const { return zero_ ? zero_->adamw() : *optimizer_; }
  bool leader() const { return comm_->rank() == 0; }

  TrainSettings settings_;
  std::shared_ptr<Communicator> comm_;
  RunFiles files_;  // before the model: checked before anything large is allocated
  Decoder model_;
  std::unique_ptr<AdamW> optimizer_;     // all-reduce training
  std::unique_ptr<ZeroOptimizer> zero_;  // ZeRO-1
  GradientBuckets buckets_;
  Rng rng_;  // the run's stream: SSA's path draw of each step (samples have their own stream)
  int64_t step_ = 0;
  int64_t saved_step_ = -1;  // the step of the last checkpoint written
  int64_t tokens_seen_ = 0;
  int64_t skipped_steps_ = 0;
  std::unique_ptr<JsonlFile> log_;  // rank 0 only
};

}  // namespace ssa
