#pragma once
// Per-layer attention statistics (docs/METHOD.md, "Evaluation quantities"): how much of
// the full attention's probability mass the sparse path's top-k blocks hold, and what the rest
// costs. Every row is one (query, query head) pair; p is its full causal softmax row, S the keys
// the sparse path reads (its selected blocks, causal inside its own block), D the keys it drops.
//   captured mass  1 − δ, δ = Σ_{j∈D} p_j          (the paper's AttnSparsity and dropped mass)
//   entropy        −Σ_j p_j log2 p_j (bits)
//   sink mass      Σ_{j < block_size} p_j         (the first block)
//   error          ‖o_full − o_sparse‖ / ‖o_full‖  (un-gated attention outputs)
//   bound          ‖o_full − o_sparse‖ ≤ δ · (max_{j∈D} ‖v_j‖ + ‖o_sparse‖), exact since
//                  o_full = (1 − δ) o_sparse + Σ_{j∈D} p_j v_j.
#include <string>
#include <vector>

#include "models/decoder.h"

namespace ssa {

// A bound check fails when lhs > rhs + kBoundTolerance · max_j ‖v_j‖ (float64 rounding room).
constexpr double kBoundTolerance = 1e-9;

// Sums over rows (means via the accessors), so batches add up with +=.
struct LayerStats {
  int64_t rows = 0;           // (query, query head) pairs
  int64_t dropping_rows = 0;  // rows whose sparse path leaves out some key (δ > 0 possible)
  double dropped_mass = 0, entropy_bits = 0, sink_mass = 0, relative_error = 0;
  int64_t bound_violations = 0;
  // Largest lhs / (rhs + tolerance) of the bound: above 1 exactly where a check failed.
  double max_bound_ratio = 0;

  LayerStats& operator+=(const LayerStats& other);
  double mean_captured_mass() const { return 1.0 - mean_dropped_mass(); }
  double mean_dropped_mass() const { return mean(dropped_mass); }
  double mean_entropy_bits() const { return mean(entropy_bits); }
  double mean_sink_mass() const { return mean(sink_mass); }
  double mean_relative_error() const { return mean(relative_error); }

 private:
  double mean(double sum) const { return rows > 0 ? sum / static_cast<double>(rows) : 0.0; }
};

// The statistics of one layer's attention inputs: q [B, T, H, d], k and v [B, T, Hkv, d] after
// RoPE, any float dtype on any device. The selection is select_blocks on q and k as given (what
// the sparse path picks); everything else is computed in float64 on the CPU.
LayerStats layer_attention_stats(const Tensor& q, const Tensor& k, const Tensor& v,
                                 int64_t block_size, int64_t top_k);

// One entry per layer, for token ids [B, T] (i32), captured from a full-attention forward pass.
std::vector<LayerStats> attention_stats(Decoder& model, const Tensor& ids, int64_t block_size,
                                        int64_t top_k);

// The sum of attention_stats over the windows of seq_len tokens of the shards `glob` matches,
// read as perplexity() reads them: `batch` windows at a time, at most `max_batches` batches
// (0: every whole batch; at least one).
std::vector<LayerStats> shard_attention_stats(Decoder& model, const std::string& glob,
                                              int64_t seq_len, int64_t batch, int64_t max_batches,
                                              int64_t block_size, int64_t top_k);

}  // namespace ssa
