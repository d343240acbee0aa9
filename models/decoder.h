#pragma once
// The Llama-style decoder (docs/METHOD.md, "The decoder"): embedding (tied with the head),
// per layer x += Attn(RMSNorm(x)) and x += SwiGLU(RMSNorm(x)), final RMSNorm, logits.
#include "models/attention_options.h"
#include "models/config.h"
#include "models/kv_cache.h"
#include "models/parameters.h"
#include "ops/attention_projections.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace ssa {

// The parameter table: names, shapes, init (normal(0, 0.02); attention-out and FFN-down
// scaled by 1/sqrt(2·n_layers); norm weights ones, not decayed).
std::vector<ParamSpec> decoder_param_specs(const ModelConfig& config);
// The number of parameters of that table (without allocating them).
int64_t decoder_parameter_count(const ModelConfig& config);

class Decoder {
 public:
  // dtype: the parameters (master weights); compute_dtype: what the layers compute in (bf16
  // over f32 masters is mixed precision; default: dtype).
  Decoder(const ModelConfig& config, DType dtype, Device device);
  Decoder(const ModelConfig& config, DType dtype, Device device, DType compute_dtype);

  const ModelConfig& config() const { return config_; }
  const Parameters& params() const { return params_; }
  DType dtype() const { return params_.flat().dtype(); }
  Device device() const { return params_.flat().device(); }

  // Logits [B, T, vocab] for token ids [B, T] (i32).
  Tensor logits(const Tensor& ids, const ForwardOptions& options = {});
  // Incremental decoding (batch 1, no gradient): the logits [1, T, vocab] of the next T tokens
  // ids [1, T] at positions cache.length() .. cache.length() + T − 1, attending to the cached
  // prefix, whose keys and values the call appends to `cache`. Equals the last T rows of
  // logits() on the whole sequence with the same options (sparse: the cache's block size).
  // Positions go on past max_seq_len. No alignment, no probe.
  Tensor logits_cached(const Tensor& ids, KvCache& cache, const ForwardOptions& options = {});
  // Cross-entropy of the next-token targets [B, T], summed and divided by `divisor`
  // (0: the mean over this batch's targets); with options.align, plus alpha times the mean
  // over layers of the alignment loss, weighted by this batch's share B·T / divisor.
  Tensor loss(const Tensor& ids, const Tensor& targets, double divisor = 0,
              const ForwardOptions& options = {});
  // The parts of the last loss(): cross-entropy and mean alignment loss (0 without align). Read
  // from the device when asked (a wait for it), so that loss() itself never waits.
  double last_cross_entropy() const;
  double last_alignment() const;
  // The same as detached device scalars (alignment undefined without align), for a caller that
  // reads them later.
  struct LossParts {
    Tensor cross_entropy, alignment;
  };
  LossParts last_parts() const { return {last_cross_entropy_, last_alignment_}; }

  // Training FLOPs per token at sequence length T (forward + backward, matmuls and causal
  // attention), for MFU.
  double flops_per_token(int64_t seq_len) const;

 private:
  // Final-normed hidden states [B·T, d_model]; with options.align, adds each layer's
  // alignment loss to `alignment`; with a cache, continues the cached sequence.
  Tensor hidden(const Tensor& ids, const ForwardOptions& options, Tensor* alignment,
                KvCache* cache = nullptr);
  Tensor output_logits(const Tensor& hidden_states, const Tensor& ids);
  // stream: the residual stream entering layer `index` (sum) and its attention norm (normed);
  // returns the stream leaving it, normed by the next layer's attention norm or the final norm.
  NormedSum layer(int64_t index, const NormedSum& stream, const ForwardOptions& options,
                  Tensor* alignment, KvCache* cache);
  // One layer's attention inputs for the normed stream h [B, T, d_model] at positions
  // offset .. offset + T − 1 (ops/attention_projections.h).
  AttentionInputs attention_inputs(int64_t index, const Tensor& h, int64_t offset);
  Tensor attention_block(int64_t index, const Tensor& h, const ForwardOptions& options,
                         Tensor* alignment);
  Tensor cached_attention_block(int64_t index, const Tensor& h, const ForwardOptions& options,
                                LayerCache& cache);
  Tensor attention_output(int64_t index, const Tensor& o);
  Tensor feed_forward(int64_t index, const Tensor& h);          // SwiGLU of the normed stream
  Tensor ffn_block(int64_t index, const Tensor& x);             // its norm, then feed_forward
  Tensor recomputed_ffn_block(int64_t index, const Tensor& x);  // options.recompute_ffn
  // The weight of the norm that reads the stream leaving layer `index` (−1: the embedding).
  const Tensor& norm_after(int64_t index) const;
  const Tensor& p(const std::string& name) const;
  const RopeTable& rope_for(int64_t positions);

  ModelConfig config_;
  Parameters params_;
  RopeTable rope_;
  Tensor last_cross_entropy_, last_alignment_;  // detached scalars; undefined: 0
};

}  // namespace ssa
