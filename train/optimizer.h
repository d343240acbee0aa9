#pragma once
// AdamW over the flat parameter buffer (decoupled weight decay on the specs marked for it),
// the learning-rate schedule, and global-norm clipping.
#include <cstdint>

#include "models/parameters.h"

namespace ssa {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  // Updates elements [begin, end) of the flat buffers (end -1: to the end); its moments hold
  // that range only (ZeRO-1 gives each rank its chunk). On CUDA, begin is a multiple of 32.
  AdamW(const Parameters& params, AdamWConfig config, int64_t begin = 0, int64_t end = -1);

  // One update with learning rate lr; step_count counts updates from 1 (bias correction).
  // CPU: per parameter, in double; CUDA (f32 buffers): one fused pass, same math. A defined
  // bf16_params (shaped like the range, same device) also receives the updated parameters
  // rounded to bf16: mixed precision's working copy, written in the same pass on CUDA. Each
  // gradient is read times grad_scale, rounded to the buffer's dtype (clip_factor: the clipping
  // in the same pass; the gradient buffer keeps the unscaled values).
  void step(double lr, const Tensor& bf16_params = Tensor(), double grad_scale = 1.0);
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t n) { step_count_ = n; }
  const Tensor& first_moment() const { return m_; }  // flat, like the range
  const Tensor& second_moment() const { return v_; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

 private:
  void step_cpu(double lr, double bias1, double bias2, double grad_scale);

  const Parameters& params_;
  AdamWConfig config_;
  int64_t begin_, end_;
  Tensor m_, v_;
  Tensor decay_bits_;  // CUDA: bit i set where parameter begin + i decays (i32 words)
  int64_t step_count_ = 0;
};

struct ScheduleConfig {
  double lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 100;
  int64_t total_steps = 1000;
};

// Linear warmup from lr/warmup to lr over warmup_steps, then cosine from lr to min_lr at
// total_steps. `step` counts from 0.
double learning_rate(const ScheduleConfig& schedule, int64_t step);

// sqrt(sum of squares) of the flat gradient buffer, summed in double in a fixed order (CUDA: a
// fixed two-level tree; the host waits for the result).
double gradient_norm(const Tensor& flat_grad);
// The factor that clips a gradient of this norm to max_norm: max_norm / norm when norm >
// max_norm > 0, else 1 (AdamW::step's grad_scale).
double clip_factor(double norm, double max_norm);

}  // namespace ssa
