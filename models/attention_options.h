#pragma once
// How a forward pass computes attention (docs/METHOD.md, "Training modes" and "The alignment
// loss"): the path whose output every layer passes on, and for SSA training the other path with
// the alignment loss.
#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace ssa {

enum class AttentionPath { full, sparse };

// Sees each layer's attention inputs during a forward pass (for attention statistics):
// q [B, T, H, d], k and v [B, T, Hkv, d] after RoPE, gate_logits [B, T, H] (undefined without
// the gate).
using LayerProbe = std::function<void(int64_t layer, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& gate_logits)>;

// The sparse path's blocks and SSA's alignment loss: set once for a run (ssa-train's
// [attention] section), the same for training and for every forward pass.
struct AttentionSettings {
  int64_t block_size = 16;     // sparse path: tokens per block
  int64_t top_k = 16;          // sparse path: blocks per query, its own included
  double align_beta = 1.0;     // SmoothL1's beta
  double align_weight = 10.0;  // alpha: loss = CE + alpha · mean over layers of the alignment
};

struct ForwardOptions : AttentionSettings {
  AttentionPath path = AttentionPath::full;
  // SSA training: also compute the other path and, per layer, the alignment loss
  // SmoothL1(o_full, sg(o_sparse)) + SmoothL1(sg(o_full), o_sparse) on the gated outputs.
  bool align = false;
  // Training with less memory: each layer's feed-forward block keeps only its input and runs
  // again in backward (autograd's recomputed()).
  bool recompute_ffn = false;
  LayerProbe probe{};
};

const char* path_name(AttentionPath path);

// SSA's per-layer alignment: SmoothL1(o_full, sg(o_sparse)) + SmoothL1(sg(o_full), o_sparse),
// each a mean over elements. The first term moves only o_full (full attention learns to be
// sparse), the second only o_sparse (sparse attention learns to match full).
Tensor alignment_loss(const Tensor& o_full, const Tensor& o_sparse, double beta);
// The same where both outputs pass the head gate: o_passed is the gated output the layer passes
// on, o_other the other path's before the gate (its gated output is not stored: SmoothL1 is
// symmetric, so which path passes does not matter).
Tensor gated_alignment_loss(const Tensor& o_passed, const Tensor& o_other, const Tensor& logits,
                            double beta);

}  // namespace ssa
