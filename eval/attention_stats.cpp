#include "eval/attention_stats.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "eval/perplexity.h"
#include "ops/attention.h"
#include "ops/cpu_kernels.h"
#include "ops/sparse_attention.h"

namespace ssa {

LayerStats& LayerStats::operator+=(const LayerStats& other) {
  rows += other.rows;
  dropping_rows += other.dropping_rows;
  dropped_mass += other.dropped_mass;
  entropy_bits += other.entropy_bits;
  sink_mass += other.sink_mass;
  relative_error += other.relative_error;
  bound_violations += other.bound_violations;
  max_bound_ratio = std::max(max_bound_ratio, other.max_bound_ratio);
  return *this;
}

namespace {

// One layer in float64 on the CPU: q, o_full, o_sparse [B, T, H, d], k [B, T, Hkv, d],
// selection [B, T, Hkv, W], v_norms [B, T, Hkv] (‖v‖ per key and KV head).
struct LayerView {
  int64_t batch, seq, heads, kv_heads, dim, block_size, width;
  const double *q, *k, *o_full, *o_sparse, *v_norms;
  const int32_t* selection;

  const double* q_row(int64_t b, int64_t t, int64_t h) const {
    return q + ((b * seq + t) * heads + h) * dim;
  }
  const double* k_row(int64_t b, int64_t j, int64_t g) const {
    return k + ((b * seq + j) * kv_heads + g) * dim;
  }
  double v_norm(int64_t b, int64_t j, int64_t g) const {
    return v_norms[(b * seq + j) * kv_heads + g];
  }
};

double dot(const double* a, const double* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// ‖a − b‖ (b null: ‖a‖).
double distance(const double* a, const double* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = a[i] - (b ? b[i] : 0.0);
    sum += d * d;
  }
  return std::sqrt(sum);
}

// a / b, and 0 when a is 0 (a zero error over a zero norm is no error).
double ratio(double a, double b) { return a == 0 ? 0.0 : a / b; }

// The full causal softmax row of query t, head h: p_j for j ≤ t.
std::vector<double> softmax_row(const LayerView& l, int64_t b, int64_t t, int64_t h) {
  const int64_t g = h / (l.heads / l.kv_heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(l.dim));
  std::vector<double> p(static_cast<size_t>(t + 1));
  for (int64_t j = 0; j <= t; ++j) p[j] = dot(l.q_row(b, t, h), l.k_row(b, j, g), l.dim) * scale;
  const double top = *std::max_element(p.begin(), p.end());
  double total = 0;
  for (double& x : p) total += x = std::exp(x - top);
  for (double& x : p) x /= total;
  return p;
}

// Per key j ≤ t: whether the sparse path of query t, KV head g reads it.
std::vector<char> read_keys(const LayerView& l, int64_t b, int64_t t, int64_t g) {
  std::vector<char> read(static_cast<size_t>(t + 1), 0);
  const int32_t* blocks = l.selection + ((b * l.seq + t) * l.kv_heads + g) * l.width;
  for (int64_t w = 0; w < l.width && blocks[w] >= 0; ++w) {
    const int64_t first = blocks[w] * l.block_size;
    std::fill(read.begin() + first, read.begin() + std::min(first + l.block_size, t + 1), 1);
  }
  return read;
}

// The statistics of one row, as a LayerStats of rows = 1.
LayerStats row_stats(const LayerView& l, int64_t b, int64_t t, int64_t h) {
  const int64_t g = h / (l.heads / l.kv_heads);
  const std::vector<double> p = softmax_row(l, b, t, h);
  const std::vector<char> read = read_keys(l, b, t, g);
  LayerStats row;
  row.rows = 1;
  double max_dropped_v = 0, max_v = 0;
  for (int64_t j = 0; j <= t; ++j) {
    if (p[j] > 0) row.entropy_bits -= p[j] * std::log2(p[j]);
    if (j < l.block_size) row.sink_mass += p[j];
    max_v = std::max(max_v, l.v_norm(b, j, g));
    if (read[j]) continue;
    row.dropping_rows = 1;
    row.dropped_mass += p[j];
    max_dropped_v = std::max(max_dropped_v, l.v_norm(b, j, g));
  }
  const int64_t offset = ((b * l.seq + t) * l.heads + h) * l.dim;
  const double* full = l.o_full + offset;
  const double* sparse = l.o_sparse + offset;
  const double error = distance(full, sparse, l.dim);
  row.relative_error = ratio(error, distance(full, nullptr, l.dim));
  const double bound = row.dropped_mass * (max_dropped_v + distance(sparse, nullptr, l.dim));
  const double allowed = bound + kBoundTolerance * max_v;
  row.bound_violations = error > allowed ? 1 : 0;
  row.max_bound_ratio = ratio(error, allowed);
  return row;
}

std::vector<double> row_norms(const Tensor& x) {
  const int64_t dim = x.dim(-1), count = x.numel() / dim;
  std::vector<double> norms(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) norms[i] = distance(x.data<double>() + i * dim, nullptr, dim);
  return norms;
}

}  // namespace

LayerStats layer_attention_stats(const Tensor& q, const Tensor& k, const Tensor& v,
                                 int64_t block_size, int64_t top_k) {
  SSA_CHECK(q.rank() == 4 && k.rank() == 4 && q.dim(1) == k.dim(1),
            "layer_attention_stats: q {} and k {} must be [B, T, H, d] and [B, T, Hkv, d]",
            q.shape().str(), k.shape().str());
  NoGrad no_grad;
  const Tensor selection =
      select_blocks(q, block_means(k, block_size), k.dim(1), block_size, top_k).to(Device::cpu);
  const Tensor q64 = q.to(Device::cpu).to(DType::f64), k64 = k.to(Device::cpu).to(DType::f64);
  const Tensor v64 = v.to(Device::cpu).to(DType::f64);
  const Tensor o_full = attention(q64, k64, v64);
  const Tensor o_sparse = sparse_attention(q64, k64, v64, selection, block_size);
  const std::vector<double> v_norms = row_norms(v64);
  const LayerView view{.batch = q.dim(0),
                       .seq = q.dim(1),
                       .heads = q.dim(2),
                       .kv_heads = k.dim(2),
                       .dim = q.dim(3),
                       .block_size = block_size,
                       .width = selection.dim(3),
                       .q = q64.data<double>(),
                       .k = k64.data<double>(),
                       .o_full = o_full.data<double>(),
                       .o_sparse = o_sparse.data<double>(),
                       .v_norms = v_norms.data(),
                       .selection = selection.data<int32_t>()};
  const int64_t count = view.batch * view.seq * view.heads;
  std::vector<LayerStats> rows(static_cast<size_t>(count));
  run_tasks(count, true, [&](int64_t i) {
    rows[i] =
        row_stats(view, i / (view.seq * view.heads), i / view.heads % view.seq, i % view.heads);
  });
  LayerStats total;
  for (const LayerStats& row : rows) total += row;  // in row order: deterministic
  return total;
}

std::vector<LayerStats> attention_stats(Decoder& model, const Tensor& ids, int64_t block_size,
                                        int64_t top_k) {
  NoGrad no_grad;
  std::vector<LayerStats> layers(static_cast<size_t>(model.config().n_layers));
  ForwardOptions options;
  options.path = AttentionPath::full;
  options.probe = [&](int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor&) {
    layers[layer] += layer_attention_stats(q, k, v, block_size, top_k);
  };
  model.logits(ids, options);
  return layers;
}

std::vector<LayerStats> shard_attention_stats(Decoder& model, const std::string& glob,
                                              int64_t seq_len, int64_t batch, int64_t max_batches,
                                              int64_t block_size, int64_t top_k) {
  EvalWindows windows = eval_windows(glob, seq_len, model.config().vocab_size, batch, max_batches);
  std::vector<LayerStats> total(static_cast<size_t>(model.config().n_layers));
  for (int64_t i = 0; i < windows.batches; ++i) {
    const std::vector<LayerStats> layers =
        attention_stats(model, windows.loader.next_batch(windows.batch).inputs, block_size, top_k);
    for (size_t layer = 0; layer < total.size(); ++layer) total[layer] += layers[layer];
  }
  return total;
}

}  // namespace ssa
