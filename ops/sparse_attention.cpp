#include "ops/sparse_attention.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>
#include <vector>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/attention/sparse_attention.h"
#include "cuda/attention/sparse_select.h"
#endif

namespace ssa {
namespace {

// Rows of head_dim values with a stride; T is const for inputs.
template <typename T>
using Rows = Eigen::Map<std::conditional_t<std::is_const_v<T>, const Matrix<std::remove_const_t<T>>,
                                           Matrix<std::remove_const_t<T>>>,
                        0, Eigen::OuterStride<>>;

// Keys start .. start + len − 1 of one selected block; they are columns column ..
// column + len − 1 of the query's score matrix.
struct Span {
  int64_t start, len, column;
};

struct SparseDims {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim, block_size, width;
  int64_t group() const { return heads / kv_heads; }
  int64_t position(int64_t t) const { return k_len - q_len + t; }  // key position of query t
  int64_t own_block(int64_t t) const { return position(t) / block_size; }
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(head_dim)); }
  bool parallel() const {
    return batch * heads * q_len * width * block_size * head_dim >= kParallelWork;
  }
  // Index of query head kv·group at query t among the [B, Tq, H] rows.
  int64_t group_row(int64_t b, int64_t t, int64_t kv) const {
    return (b * q_len + t) * heads + kv * group();
  }
  // The group's queries (or outputs) at query t: group() adjacent heads, contiguous.
  template <typename T>
  Rows<T> group_rows(T* data, int64_t b, int64_t t, int64_t kv) const {
    return Rows<T>(data + group_row(b, t, kv) * head_dim, group(), head_dim,
                   Eigen::OuterStride<>(head_dim));
  }
  // Keys (or values) start .. start + len − 1 of KV head kv.
  template <typename T>
  Rows<T> key_rows(T* data, int64_t b, int64_t kv, int64_t start, int64_t len) const {
    return Rows<T>(data + ((b * k_len + start) * kv_heads + kv) * head_dim, len, head_dim,
                   Eigen::OuterStride<>(kv_heads * head_dim));
  }
  const int32_t* selected(const int32_t* selection, int64_t b, int64_t t, int64_t kv) const {
    return selection + ((b * q_len + t) * kv_heads + kv) * width;
  }
};

#ifdef SSA_HAVE_CUDA
cuda::SparseDims device_dims(const SparseDims& d) {
  return {d.batch, d.q_len, d.k_len, d.heads, d.kv_heads, d.head_dim, d.block_size, d.width};
}
#endif

// The keys query t reads: its selected blocks, the own block cut after its position.
std::vector<Span> selected_spans(const int32_t* blocks, const SparseDims& dims, int64_t t) {
  std::vector<Span> spans;
  int64_t column = 0;
  for (int64_t slot = 0; slot < dims.width && blocks[slot] >= 0; ++slot) {
    const int64_t start = blocks[slot] * dims.block_size;
    const int64_t len = std::min(dims.block_size, dims.position(t) + 1 - start);
    spans.push_back({start, len, column});
    column += len;
  }
  return spans;
}

// s = q kᵀ · scale over the selected keys, spans side by side.
template <typename T>
void span_scores(const auto& q, const T* k, const std::vector<Span>& spans, const SparseDims& dims,
                 int64_t b, int64_t kv, Matrix<T>& s) {
  s.resize(q.rows(), spans.back().column + spans.back().len);
  const T scale = static_cast<T>(dims.scale());
  for (const Span& span : spans)
    s.middleCols(span.column, span.len).noalias() =
        scale * (q * dims.key_rows(k, b, kv, span.start, span.len).transpose());
}

// Turns each row of scores into probabilities and writes its log-sum-exp.
template <typename T>
void softmax_rows(Matrix<T>& s, T* lse) {
  for (int64_t i = 0; i < s.rows(); ++i) {
    auto row = s.row(i);
    const T max = row.maxCoeff();
    row = (row.array() - max).exp();
    const T total = row.sum();
    row /= total;
    lse[i] = max + std::log(total);
  }
}

template <typename T>
struct ForwardTensors {
  const T *q, *k, *v;
  const int32_t* selection;
  T *out, *lse;  // lse is [B, Tq, H]
};

// o = softmax(q kᵀ · scale) v over the selected keys, for the query heads of KV head kv at
// one query.
template <typename T>
void forward_group(const ForwardTensors<T>& t, const SparseDims& dims, int64_t b, int64_t query,
                   int64_t kv) {
  const auto spans = selected_spans(dims.selected(t.selection, b, query, kv), dims, query);
  Matrix<T> p;
  span_scores(dims.group_rows(t.q, b, query, kv), t.k, spans, dims, b, kv, p);
  softmax_rows(p, t.lse + dims.group_row(b, query, kv));
  auto out = dims.group_rows(t.out, b, query, kv);
  out.setZero();
  for (const Span& span : spans)
    out.noalias() +=
        p.middleCols(span.column, span.len) * dims.key_rows(t.v, b, kv, span.start, span.len);
}

template <typename T>
struct BackwardTensors {
  const T *q, *k, *v, *out, *d_out, *lse;
  const int32_t* selection;
  T *dq, *dk, *dv;
};

// For the queries in order (so dk, dv sum deterministically), per query t: P from lse,
// dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)), dQ = dS·K·scale, dK += dSᵀ·Q·scale, dV += Pᵀ·dO,
// over the selected keys.
template <typename T>
void backward_kv_head(const BackwardTensors<T>& t, const SparseDims& dims, int64_t b, int64_t kv) {
  dims.key_rows(t.dk, b, kv, 0, dims.k_len).setZero();
  dims.key_rows(t.dv, b, kv, 0, dims.k_len).setZero();
  const T scale = static_cast<T>(dims.scale());
  Matrix<T> p, ds;
  Vector<T> delta;
  for (int64_t query = 0; query < dims.q_len; ++query) {
    const auto spans = selected_spans(dims.selected(t.selection, b, query, kv), dims, query);
    const auto q = dims.group_rows(t.q, b, query, kv);
    const auto out = dims.group_rows(t.out, b, query, kv);
    const auto d_out = dims.group_rows(t.d_out, b, query, kv);
    const Eigen::Map<const Vector<T>> lse(t.lse + dims.group_row(b, query, kv), dims.group());
    span_scores(q, t.k, spans, dims, b, kv, p);
    p = (p.array().colwise() - lse.array()).exp().matrix();
    ds.resize(p.rows(), p.cols());
    for (const Span& span : spans)
      ds.middleCols(span.column, span.len).noalias() =
          d_out * dims.key_rows(t.v, b, kv, span.start, span.len).transpose();
    delta = d_out.cwiseProduct(out).rowwise().sum();
    ds.colwise() -= delta;
    ds.array() *= p.array();
    auto dq = dims.group_rows(t.dq, b, query, kv);
    dq.setZero();
    for (const Span& span : spans) {
      const auto ds_span = ds.middleCols(span.column, span.len);
      dq.noalias() += scale * (ds_span * dims.key_rows(t.k, b, kv, span.start, span.len));
      dims.key_rows(t.dk, b, kv, span.start, span.len).noalias() +=
          scale * (ds_span.transpose() * q);
      dims.key_rows(t.dv, b, kv, span.start, span.len).noalias() +=
          p.middleCols(span.column, span.len).transpose() * d_out;
    }
  }
}

// Probabilities are not kept: backward recomputes them from q, k and the row log-sum-exp.
struct SparseAttentionNode : Node {
  Tensor q, k, v, selection, out, lse;
  SparseDims dims;
  SparseAttentionNode(Tensor q_, Tensor k_, Tensor v_, Tensor selection_, Tensor out_, Tensor lse_,
                      SparseDims dims_)
      : q(std::move(q_)),
        k(std::move(k_)),
        v(std::move(v_)),
        selection(std::move(selection_)),
        out(std::move(out_)),
        lse(std::move(lse_)),
        dims(dims_) {}
  const char* name() const override { return "sparse_attention"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dk = Tensor::empty(k.shape(), k.dtype(), k.device());
    Tensor dv = Tensor::empty(v.shape(), v.dtype(), v.device());
    if (!q.is_cpu()) {
      check_same_kind({&q, &g}, "sparse_attention backward");
      // q's gradient summed so far (the full path's, in ssa mode) takes this one in place.
      const auto [dq, adds] = gradient_target(inputs()[0], q);
      SSA_ON_CUDA("sparse_attention backward",
                  cuda::sparse_attention_backward(
                      device_dims(dims), q.dtype(),
                      {q.raw(), k.raw(), v.raw(), out.raw(), g.raw(), selection.data<int32_t>(),
                       lse.data<float>(), dq.raw(), dk.raw(), dv.raw(), adds}));
      return {dq, dk, dv};
    }
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
    dispatch_float(g, "sparse_attention backward", [&](auto zero) {
      using T = decltype(zero);
      const BackwardTensors<T> t{q.data<T>(),
                                 k.data<T>(),
                                 v.data<T>(),
                                 out.data<T>(),
                                 g.data<T>(),
                                 lse.data<T>(),
                                 selection.data<int32_t>(),
                                 dq.data<T>(),
                                 dk.data<T>(),
                                 dv.data<T>()};
      run_tasks(dims.batch * dims.kv_heads, dims.parallel(), [&](int64_t pair) {
        backward_kv_head(t, dims, pair / dims.kv_heads, pair % dims.kv_heads);
      });
    });
    return {dq, dk, dv};
  }
  void release() override { q = k = v = selection = out = lse = Tensor(); }
};

// q [B, Tq, H, d] against keys [B, any, Hkv, d] with Hkv dividing H.
void check_query_and_key_heads(const Tensor& q, const Tensor& k, const char* op) {
  check_same_kind({&q, &k}, op);
  SSA_CHECK(q.rank() == 4 && k.rank() == 4,
            "{}: q {}, keys {} (expected q [B, Tq, H, d], keys [B, T, Hkv, d])", op,
            q.shape().str(), k.shape().str());
  SSA_CHECK(k.dim(0) == q.dim(0) && k.dim(3) == q.dim(3) && q.dim(3) > 0,
            "{}: q {} and keys {} differ in batch or head_dim (or head_dim is 0)", op,
            q.shape().str(), k.shape().str());
  SSA_CHECK(k.dim(2) > 0 && q.dim(2) % k.dim(2) == 0,
            "{}: {} KV heads (keys {}) must divide the {} query heads (q {})", op, k.dim(2),
            k.shape().str(), q.dim(2), q.shape().str());
}

// Strictly ascending block indices, at least one, none after the own block, then only −1.
bool valid_selection_row(const int32_t* row, int64_t width, int64_t own_block) {
  int64_t slot = 0;
  for (; slot < width && row[slot] >= 0; ++slot)
    if (row[slot] > own_block || (slot > 0 && row[slot] <= row[slot - 1])) return false;
  return slot > 0 && std::all_of(row + slot, row + width, [](int32_t pad) { return pad == -1; });
}

[[noreturn]] void invalid_selection_row(int64_t b, int64_t t, int64_t kv, const SparseDims& dims) {
  fail(
      "sparse_attention: selection row (b {}, t {}, kv head {}) is not {} slots of strictly "
      "ascending blocks <= the own block {} followed by -1 padding",
      b, t, kv, dims.width, dims.own_block(t));
}

void check_selection(const Tensor& selection, const SparseDims& dims) {
  if (!selection.is_cpu()) {
    int64_t row = -1;  // (b·Tq + t)·Hkv + kv
    SSA_ON_CUDA("sparse_attention", row = cuda::first_invalid_selection_row(
                                        device_dims(dims), selection.data<int32_t>()));
    if (row >= 0)
      invalid_selection_row(row / dims.kv_heads / dims.q_len, row / dims.kv_heads % dims.q_len,
                            row % dims.kv_heads, dims);
    return;
  }
  const int32_t* all = selection.data<int32_t>();
  for (int64_t b = 0; b < dims.batch; ++b)
    for (int64_t t = 0; t < dims.q_len; ++t)
      for (int64_t kv = 0; kv < dims.kv_heads; ++kv)
        if (!valid_selection_row(dims.selected(all, b, t, kv), dims.width, dims.own_block(t)))
          invalid_selection_row(b, t, kv, dims);
}

SparseDims check_sparse_inputs(const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& selection, int64_t block_size) {
  check_query_and_key_heads(q, k, "sparse_attention");
  check_same_kind({&k, &v}, "sparse_attention");
  SSA_CHECK(k.shape() == v.shape(), "sparse_attention: k {} and v {} differ", k.shape().str(),
            v.shape().str());
  const SparseDims dims{
      q.dim(0), q.dim(1), k.dim(1),   q.dim(2),
      k.dim(2), q.dim(3), block_size, selection.rank() == 4 ? selection.dim(3) : 0};
  SSA_CHECK(dims.q_len <= dims.k_len && block_size > 0,
            "sparse_attention: {} queries (q {}), {} keys (k {}), block size {} (expected "
            "Tq <= Tk and a positive block size)",
            dims.q_len, q.shape().str(), dims.k_len, k.shape().str(), block_size);
  SSA_CHECK(selection.dtype() == DType::i32 && selection.device() == q.device() && dims.width > 0 &&
                selection.shape() == Shape({dims.batch, dims.q_len, dims.kv_heads, dims.width}),
            "sparse_attention: selection {} of dtype {} on {} (expected i32 [{}, {}, {}, W >= 1] "
            "on q's device, {})",
            selection.shape().str(), dtype_name(selection.dtype()), device_name(selection.device()),
            dims.batch, dims.q_len, dims.kv_heads, device_name(q.device()));
  return dims;
}

// score_j = Σ_i softmax_j(q_i · kbar_j · scale) over the candidates j < own_block, for the
// query heads i of one KV group (q_group: group × d, contiguous; kbar: the group's KV head at
// block 0, blocks kbar_stride apart).
template <typename T>
std::vector<double> block_scores(const T* q_group, const T* kbar, int64_t kbar_stride,
                                 int64_t own_block, const SparseDims& dims) {
  std::vector<double> score(own_block, 0.0), weight(own_block);
  for (int64_t i = 0; i < dims.group(); ++i) {
    const T* q = q_group + i * dims.head_dim;
    for (int64_t j = 0; j < own_block; ++j) {
      double dot = 0;
      for (int64_t x = 0; x < dims.head_dim; ++x)
        dot += static_cast<double>(q[x]) * static_cast<double>(kbar[j * kbar_stride + x]);
      weight[j] = dot * dims.scale();
    }
    const double max = *std::max_element(weight.begin(), weight.end());
    double total = 0;
    for (double& w : weight) total += w = std::exp(w - max);
    for (int64_t j = 0; j < own_block; ++j) score[j] += weight[j] / total;
  }
  return score;
}

// row = the top_k − 1 best-scoring candidates (score descending, then index ascending) and the
// own block, ascending. Needs top_k ≤ own_block.
void write_top_blocks(const std::vector<double>& score, int64_t own_block, int64_t top_k,
                      int32_t* row) {
  std::vector<int32_t> order(own_block);
  std::iota(order.begin(), order.end(), 0);
  const auto kept = order.begin() + (top_k - 1);
  std::partial_sort(order.begin(), kept, order.end(), [&](int32_t a, int32_t b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  });
  std::sort(order.begin(), kept);
  std::copy(order.begin(), kept, row);
  row[top_k - 1] = static_cast<int32_t>(own_block);
}

template <typename T>
void select_for_query(const T* q, const T* kbar, int64_t kbar_blocks, int64_t top_k,
                      int32_t* selection, const SparseDims& dims, int64_t b, int64_t t) {
  const int64_t own_block = dims.own_block(t), kbar_stride = dims.kv_heads * dims.head_dim;
  for (int64_t kv = 0; kv < dims.kv_heads; ++kv) {
    int32_t* row = selection + ((b * dims.q_len + t) * dims.kv_heads + kv) * dims.width;
    if (own_block < top_k) {
      std::iota(row, row + own_block + 1, 0);
      std::fill(row + own_block + 1, row + dims.width, -1);
      continue;
    }
    const T* q_group = q + dims.group_row(b, t, kv) * dims.head_dim;
    const T* kbar_head = kbar + (b * kbar_blocks * dims.kv_heads + kv) * dims.head_dim;
    write_top_blocks(block_scores(q_group, kbar_head, kbar_stride, own_block, dims), own_block,
                     top_k, row);
  }
}

void attend_on_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& selection,
                   const SparseDims& dims, const Tensor& out, const Tensor& lse) {
  dispatch_float(q, "sparse_attention", [&](auto zero) {
    using T = decltype(zero);
    const ForwardTensors<T> t{q.data<T>(),   k.data<T>(),  v.data<T>(), selection.data<int32_t>(),
                              out.data<T>(), lse.data<T>()};
    const int64_t per_batch = dims.q_len * dims.kv_heads;
    run_tasks(dims.batch * per_batch, dims.parallel(), [&](int64_t i) {
      forward_group(t, dims, i / per_batch, i % per_batch / dims.kv_heads, i % dims.kv_heads);
    });
  });
}

// The op on checked inputs: attention over the selected blocks, recorded for backward.
Tensor attend_selected(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& selection,
                       const SparseDims& dims) {
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  // lse: [B, Tq, H], q's dtype on the CPU, f32 on the GPU.
  Tensor lse = Tensor::empty({dims.batch, dims.q_len, dims.heads},
                             q.is_cpu() ? q.dtype() : DType::f32, q.device());
  if (!q.is_cpu()) {
    SSA_ON_CUDA("sparse_attention", cuda::sparse_attention_forward(
                                        device_dims(dims), q.dtype(),
                                        {q.raw(), k.raw(), v.raw(), selection.data<int32_t>(),
                                         out.raw(), lse.data<float>()}));
  } else {
    attend_on_cpu(q, k, v, selection, dims, out, lse);
  }
  if (!should_record({&q, &k, &v})) return out;
  return record(out,
                std::make_shared<SparseAttentionNode>(q.detach(), k.detach(), v.detach(), selection,
                                                      out.detach(), lse, dims),
                {q, k, v});
}

}  // namespace

Tensor block_means(const Tensor& k, int64_t block_size) {
  SSA_CHECK(k.rank() == 4 && block_size > 0,
            "block_means: k {} (expected [B, T, Hkv, d]), block size {} (expected > 0)",
            k.shape().str(), block_size);
  const int64_t batch = k.dim(0), k_len = k.dim(1), blocks = k_len / block_size;
  const int64_t row = k.dim(2) * k.dim(3);  // values per key position
  Tensor means = Tensor::empty({batch, blocks, k.dim(2), k.dim(3)}, k.dtype(), k.device());
  if (!k.is_cpu()) {
    SSA_ON_CUDA("block_means",
                cuda::block_means(k.raw(), means.raw(), k.dtype(), batch, k_len, row, block_size));
    return means;
  }
  dispatch_float(k, "block_means", [&](auto zero) {
    using T = decltype(zero);
    const T* key = k.data<T>();
    T* mean = means.data<T>();
    std::vector<double> sum(row);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t j = 0; j < blocks; ++j) {
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t s = j * block_size; s < (j + 1) * block_size; ++s)
          for (int64_t x = 0; x < row; ++x) sum[x] += key[(b * k_len + s) * row + x];
        for (int64_t x = 0; x < row; ++x)
          mean[(b * blocks + j) * row + x] = static_cast<T>(sum[x] / block_size);
      }
    }
  });
  return means;
}

Tensor select_blocks(const Tensor& q, const Tensor& kbar, int64_t k_len, int64_t block_size,
                     int64_t top_k) {
  check_query_and_key_heads(q, kbar, "select_blocks");
  SSA_CHECK(q.dim(1) <= k_len && block_size > 0 && top_k > 0,
            "select_blocks: {} queries (q {}), {} keys, block size {}, top_k {} (expected Tq <= "
            "k_len and a positive block size and top_k)",
            q.dim(1), q.shape().str(), k_len, block_size, top_k);
  const int64_t kbar_blocks = kbar.dim(1), last_own_block = (k_len - 1) / block_size;
  SSA_CHECK(kbar_blocks >= last_own_block,
            "select_blocks: kbar {} has {} blocks; {} keys in blocks of {} need {}",
            kbar.shape().str(), kbar_blocks, k_len, block_size, last_own_block);
  const int64_t width = std::min(top_k, (k_len + block_size - 1) / block_size);
  const SparseDims dims{q.dim(0),    q.dim(1), k_len,      q.dim(2),
                        kbar.dim(2), q.dim(3), block_size, width};
  Tensor selection =
      Tensor::empty({dims.batch, dims.q_len, dims.kv_heads, width}, DType::i32, q.device());
  if (!q.is_cpu()) {
    SSA_ON_CUDA("select_blocks",
                cuda::select_blocks(device_dims(dims), q.dtype(), q.raw(), kbar.raw(), kbar_blocks,
                                    top_k, selection.data<int32_t>()));
    return selection;
  }
  dispatch_float(q, "select_blocks", [&](auto zero) {
    using T = decltype(zero);
    const bool parallel =
        dims.batch * dims.q_len * dims.heads * kbar_blocks * dims.head_dim >= kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < dims.batch * dims.q_len; ++i)
      select_for_query(q.data<T>(), kbar.data<T>(), kbar_blocks, top_k, selection.data<int32_t>(),
                       dims, i / dims.q_len, i % dims.q_len);
  });
  return selection;
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& selection,
                        int64_t block_size) {
  const SparseDims dims = check_sparse_inputs(q, k, v, selection, block_size);
  check_selection(selection, dims);
  return attend_selected(q, k, v, selection, dims);
}

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t block_size,
                              int64_t top_k, const Tensor& kbar) {
  const Tensor means = kbar.defined() ? kbar : block_means(k, block_size);
  const Tensor selection = select_blocks(q, means, k.dim(1), block_size, top_k);
  return attend_selected(q, k, v, selection, check_sparse_inputs(q, k, v, selection, block_size));
}

}  // namespace ssa
