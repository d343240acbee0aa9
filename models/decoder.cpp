#include "models/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gate.h"
#include "ops/linear.h"
#include "ops/reshape.h"
#include "ops/rmsnorm.h"
#include "ops/smooth_l1.h"
#include "ops/sparse_attention.h"
#include "ops/swiglu.h"

namespace ssa {

std::vector<ParamSpec> decoder_param_specs(const ModelConfig& c) {
  c.validate();
  const double out_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layers));
  const int64_t q_width = c.n_heads * c.head_dim, kv_width = c.n_kv_heads * c.head_dim;
  std::vector<ParamSpec> specs{{"embedding", {c.vocab_size, c.d_model}}};
  for (int64_t i = 0; i < c.n_layers; ++i) {
    std::string layer = fmt::format("layers.{}.", i);
    specs.push_back({layer + "attn_norm", {c.d_model}, Init::ones, 0, false});
    specs.push_back({layer + "attn.wq", {q_width, c.d_model}});
    specs.push_back({layer + "attn.wk", {kv_width, c.d_model}});
    specs.push_back({layer + "attn.wv", {kv_width, c.d_model}});
    if (c.attention_gate) specs.push_back({layer + "attn.wg", {c.n_heads, c.d_model}});
    specs.push_back({layer + "attn.wo", {c.d_model, q_width}, Init::normal, out_std});
    specs.push_back({layer + "ffn_norm", {c.d_model}, Init::ones, 0, false});
    specs.push_back({layer + "ffn.w1", {c.ffn_dim, c.d_model}});
    specs.push_back({layer + "ffn.w3", {c.ffn_dim, c.d_model}});
    specs.push_back({layer + "ffn.w2", {c.d_model, c.ffn_dim}, Init::normal, out_std});
  }
  specs.push_back({"final_norm", {c.d_model}, Init::ones, 0, false});
  if (!c.tie_embeddings) specs.push_back({"lm_head", {c.vocab_size, c.d_model}});
  return specs;
}

int64_t decoder_parameter_count(const ModelConfig& config) {
  int64_t count = 0;
  for (const ParamSpec& spec : decoder_param_specs(config)) count += spec.shape.numel();
  return count;
}

Decoder::Decoder(const ModelConfig& config, DType dtype, Device device)
    : Decoder(config, dtype, device, dtype) {}

Decoder::Decoder(const ModelConfig& config, DType dtype, Device device, DType compute_dtype)
    : config_(config), params_(decoder_param_specs(config), dtype, device, compute_dtype) {}

const Tensor& Decoder::p(const std::string& name) const { return params_.get(name); }

const RopeTable& Decoder::rope_for(int64_t positions) {
  if (!rope_.cos.defined() || rope_.max_positions() < positions) {
    // Doubling, so decoding past max_seq_len rebuilds the table only now and then (an entry
    // does not depend on the table's size).
    const int64_t grown = rope_.cos.defined() ? 2 * rope_.max_positions() : 0;
    const int64_t size = std::max({positions, grown, config_.max_seq_len});
    rope_ = rope_table(size, config_.head_dim, config_.rope_theta, dtype(), device());
  }
  return rope_;
}

const char* path_name(AttentionPath path) {
  return path == AttentionPath::full ? "full" : "sparse";
}

namespace {

// One attention path's output [B, Tq, H, d] for queries at the last Tq of the Tk key positions,
// before the head gate. kbar: the block means of k for the sparse path (computed from k when
// undefined).
Tensor ungated_attention(AttentionPath path, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& kbar, const ForwardOptions& options) {
  if (path == AttentionPath::full) return attention(q, k, v);
  return block_sparse_attention(q, k, v, options.block_size, options.top_k, kbar);
}

// The same, gated when the model has the gate.
Tensor attention_path(AttentionPath path, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& kbar, const Tensor& gate_logits,
                      const ForwardOptions& options) {
  Tensor o = ungated_attention(path, q, k, v, kbar, options);
  return gate_logits.defined() ? head_gate(o, gate_logits) : o;
}

}  // namespace

// Both terms have the value S(o_full, o_sparse), and their gradients together are the plain
// gradients of S(o_full, o_sparse) (each side's from its own term). So one SmoothL1 pass
// gives both: its value counted twice, the second time without a gradient.
Tensor alignment_loss(const Tensor& o_full, const Tensor& o_sparse, double beta) {
  const Tensor term = smooth_l1(o_full, o_sparse, beta);
  return add(term, term.detach());
}

Tensor gated_alignment_loss(const Tensor& o_passed, const Tensor& o_other, const Tensor& logits,
                            double beta) {
  const Tensor term = gated_smooth_l1(o_passed, o_other, logits, beta);
  return add(term, term.detach());
}

AttentionInputs Decoder::attention_inputs(int64_t index, const Tensor& h, int64_t offset) {
  const ModelConfig& c = config_;
  const std::string prefix = fmt::format("layers.{}.attn.", index);
  const AttentionWeights weights{p(prefix + "wq"), p(prefix + "wk"), p(prefix + "wv"),
                                 c.attention_gate ? p(prefix + "wg") : Tensor()};
  return attention_projections(h, weights, c.head_dim, rope_for(offset + h.dim(1)), offset);
}

Tensor Decoder::attention_output(int64_t index, const Tensor& o) {
  return linear(reshape(o, {o.dim(0), o.dim(1), config_.n_heads * config_.head_dim}),
                p(fmt::format("layers.{}.attn.wo", index)));
}

Tensor Decoder::attention_block(int64_t index, const Tensor& h, const ForwardOptions& options,
                                Tensor* alignment) {
  const auto [q, k, v, gate_logits] = attention_inputs(index, h, 0);
  if (options.probe) options.probe(index, q, k, v, gate_logits);
  Tensor o = attention_path(options.path, q, k, v, Tensor(), gate_logits, options);
  if (options.align) {
    const AttentionPath other =
        options.path == AttentionPath::full ? AttentionPath::sparse : AttentionPath::full;
    Tensor o_other = ungated_attention(other, q, k, v, Tensor(), options);
    Tensor layer_alignment;
    if (gate_logits.defined())
      layer_alignment = gated_alignment_loss(o, o_other, gate_logits, options.align_beta);
    else
      layer_alignment = options.path == AttentionPath::full
                            ? alignment_loss(o, o_other, options.align_beta)
                            : alignment_loss(o_other, o, options.align_beta);
    *alignment = alignment->defined() ? add(*alignment, layer_alignment) : layer_alignment;
  }
  return attention_output(index, o);
}

// The new positions attend to the whole cache, themselves included once appended.
Tensor Decoder::cached_attention_block(int64_t index, const Tensor& h,
                                       const ForwardOptions& options, LayerCache& cache) {
  const auto [q, k, v, gate_logits] = attention_inputs(index, h, cache.length());
  cache.append(k, v);
  const Tensor kbar = options.path == AttentionPath::sparse ? cache.block_means() : Tensor();
  return attention_output(index, attention_path(options.path, q, cache.keys(), cache.values(), kbar,
                                                gate_logits, options));
}

Tensor Decoder::feed_forward(int64_t index, const Tensor& h) {
  const std::string prefix = fmt::format("layers.{}.ffn.", index);
  return swiglu_linear(linear(h, p(prefix + "w1")), linear(h, p(prefix + "w3")), p(prefix + "w2"));
}

Tensor Decoder::ffn_block(int64_t index, const Tensor& x) {
  return feed_forward(index,
                      rmsnorm(x, p(fmt::format("layers.{}.ffn_norm", index)), config_.norm_eps));
}

Tensor Decoder::recomputed_ffn_block(int64_t index, const Tensor& x) {
  const std::string prefix = fmt::format("layers.{}.", index);
  std::vector<Tensor> leaves;
  for (const char* name : {"ffn_norm", "ffn.w1", "ffn.w3", "ffn.w2"})
    leaves.push_back(p(prefix + name));
  return recomputed([this, index](const Tensor& input) { return ffn_block(index, input); }, x,
                    leaves);
}

const Tensor& Decoder::norm_after(int64_t index) const {
  return index + 1 < config_.n_layers ? p(fmt::format("layers.{}.attn_norm", index + 1))
                                      : p("final_norm");
}

// Each residual add is fused with the norm that reads its sum (add_rmsnorm); under
// recompute_ffn the FFN block's norm is recomputed with it instead.
NormedSum Decoder::layer(int64_t index, const NormedSum& stream, const ForwardOptions& options,
                         Tensor* alignment, KvCache* cache) {
  const double eps = config_.norm_eps;
  Tensor attended = cache
                        ? cached_attention_block(index, stream.normed, options, cache->layer(index))
                        : attention_block(index, stream.normed, options, alignment);
  if (options.recompute_ffn) {
    Tensor after_attention = add(stream.sum, attended);
    return add_rmsnorm(after_attention, recomputed_ffn_block(index, after_attention),
                       norm_after(index), eps);
  }
  const NormedSum after_attention =
      add_rmsnorm(stream.sum, attended, p(fmt::format("layers.{}.ffn_norm", index)), eps);
  return add_rmsnorm(after_attention.sum, feed_forward(index, after_attention.normed),
                     norm_after(index), eps);
}

Tensor Decoder::hidden(const Tensor& ids, const ForwardOptions& options, Tensor* alignment,
                       KvCache* cache) {
  SSA_CHECK(ids.rank() == 2 && ids.dtype() == DType::i32,
            "decoder input must be i32 [B, T], got {}", ids.shape().str());
  Tensor x = embedding(ids.to(device()), p("embedding"));
  NormedSum stream{x, rmsnorm(x, norm_after(-1), config_.norm_eps)};
  for (int64_t i = 0; i < config_.n_layers; ++i)
    stream = layer(i, stream, options, alignment, cache);
  return reshape(stream.normed, {ids.dim(0) * ids.dim(1), config_.d_model});
}

Tensor Decoder::output_logits(const Tensor& hidden_states, const Tensor& ids) {
  const Tensor& head = config_.tie_embeddings ? p("embedding") : p("lm_head");
  return reshape(linear(hidden_states, head), {ids.dim(0), ids.dim(1), config_.vocab_size});
}

Tensor Decoder::logits(const Tensor& ids, const ForwardOptions& options) {
  ForwardOptions no_alignment = options;
  no_alignment.align = false;
  return output_logits(hidden(ids, no_alignment, nullptr), ids);
}

Tensor Decoder::logits_cached(const Tensor& ids, KvCache& cache, const ForwardOptions& options) {
  SSA_CHECK(ids.rank() == 2 && ids.dim(0) == 1 && ids.dim(1) > 0,
            "logits_cached: ids {} (expected [1, T], T >= 1: the cache holds one sequence)",
            ids.shape().str());
  SSA_CHECK(cache.n_layers() == config_.n_layers,
            "logits_cached: a cache of {} layers for a model of {}", cache.n_layers(),
            config_.n_layers);
  SSA_CHECK(options.path == AttentionPath::full || options.block_size == cache.block_size(),
            "logits_cached: sparse attention in blocks of {} tokens, but the cache keeps the "
            "means of blocks of {}",
            options.block_size, cache.block_size());
  SSA_CHECK(!options.probe, "logits_cached: a probe needs the whole sequence; use logits()");
  NoGrad no_grad;
  ForwardOptions no_alignment = options;
  no_alignment.align = false;
  return output_logits(hidden(ids, no_alignment, nullptr, &cache), ids);
}

Tensor Decoder::loss(const Tensor& ids, const Tensor& targets, double divisor,
                     const ForwardOptions& options) {
  check_shape(targets, ids.shape(), "decoder targets");
  const Tensor& head = config_.tie_embeddings ? p("embedding") : p("lm_head");
  Tensor flat_targets = targets.to(device()).reshape({targets.numel()});
  Tensor alignment;
  Tensor ce = cross_entropy(linear(hidden(ids, options, &alignment), head), flat_targets, divisor);
  last_cross_entropy_ = ce.detach();
  last_alignment_ = Tensor();
  if (!options.align) return ce;
  const double share = divisor > 0 ? static_cast<double>(targets.numel()) / divisor : 1.0;
  Tensor mean_alignment = scale(alignment, 1.0 / static_cast<double>(config_.n_layers));
  last_alignment_ = mean_alignment.detach();
  return add(ce, scale(mean_alignment, options.align_weight * share));
}

double Decoder::last_cross_entropy() const {
  return last_cross_entropy_.defined() ? last_cross_entropy_.item() : 0.0;
}

double Decoder::last_alignment() const {
  return last_alignment_.defined() ? last_alignment_.item() : 0.0;
}

double Decoder::flops_per_token(int64_t seq_len) const {
  const ModelConfig& c = config_;
  double matmul_params = 0;
  for (const ParamSpec& spec : params_.specs())
    if (spec.shape.rank == 2 && spec.name != "embedding") matmul_params += spec.shape.numel();
  if (c.tie_embeddings) matmul_params += static_cast<double>(c.vocab_size * c.d_model);  // head
  // Causal attention: QKᵀ and PV, 2·T·head_dim FLOPs each per head, halved by the mask,
  // times 3 for forward + backward.
  double attention = 6.0 * static_cast<double>(c.n_layers * c.n_heads * c.head_dim * seq_len);
  return 6.0 * matmul_params + attention;
}

}  // namespace ssa
