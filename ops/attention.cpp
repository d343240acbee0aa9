#include "ops/attention.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"

#ifdef SSA_HAVE_CUDA
#include "cuda/attention/flash_attention.h"
#endif

namespace ssa {
namespace {

// Query rows handled together. Rows [r0, r0 + n) see only the first key_offset + r0 + n keys,
// so the masked upper triangle is mostly skipped, and the score buffer stays small.
constexpr int64_t kRowBlock = 64;

// A [B, len, heads, head_dim] tensor; head(b, h) is its [len, head_dim] slice, row stride
// heads·head_dim. T is const for inputs.
template <typename T>
struct Heads {
  using Plain = Matrix<std::remove_const_t<T>>;
  using View = Eigen::Map<std::conditional_t<std::is_const_v<T>, const Plain, Plain>, 0,
                          Eigen::OuterStride<>>;
  T* data;
  int64_t len, heads, head_dim;
  View head(int64_t b, int64_t h) const {
    return View(data + (b * len * heads + h) * head_dim, len, head_dim,
                Eigen::OuterStride<>(heads * head_dim));
  }
};

struct AttentionDims {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
  int64_t group() const { return heads / kv_heads; }
  int64_t key_offset() const { return k_len - q_len; }  // query t is key position offset + t
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(head_dim)); }
  bool parallel() const { return batch * heads * q_len * k_len * head_dim >= kParallelWork; }
  template <typename T>
  Heads<T> queries(T* data) const {
    return {data, q_len, heads, head_dim};
  }
  template <typename T>
  Heads<T> keys(T* data) const {
    return {data, k_len, kv_heads, head_dim};
  }
};

// Row i of s holds the scores of query position first_position + i, which sees keys
// 0 .. first_position + i. Turns the rows into probabilities (0 on masked keys) and writes
// each row's log-sum-exp.
template <typename T>
void masked_softmax(Matrix<T>& s, int64_t first_position, T* lse) {
  for (int64_t i = 0; i < s.rows(); ++i) {
    const int64_t visible = first_position + i + 1;
    auto row = s.row(i).head(visible);
    const T max = row.maxCoeff();
    row = (row.array() - max).exp();
    const T total = row.sum();
    row /= total;
    s.row(i).tail(s.cols() - visible).setZero();
    lse[i] = max + std::log(total);
  }
}

// The same probabilities recomputed from the scores and the saved log-sum-exp.
template <typename T>
void probabilities_from_lse(Matrix<T>& s, int64_t first_position, const T* lse) {
  for (int64_t i = 0; i < s.rows(); ++i) {
    const int64_t visible = first_position + i + 1;
    s.row(i).head(visible) = (s.row(i).head(visible).array() - lse[i]).exp();
    s.row(i).tail(s.cols() - visible).setZero();
  }
}

// o = softmax(q kᵀ · scale, causal) v for one query head.
template <typename T>
void forward_head(const auto& q, const auto& k, const auto& v, auto o, T* lse, int64_t key_offset,
                  T scale) {
  Matrix<T> p;
  for (int64_t r0 = 0; r0 < q.rows(); r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, q.rows() - r0), keys = key_offset + r0 + rows;
    p.noalias() = scale * (q.middleRows(r0, rows) * k.topRows(keys).transpose());
    masked_softmax(p, key_offset + r0, lse + r0);
    o.middleRows(r0, rows).noalias() = p * v.topRows(keys);
  }
}

// lse is [B, H, Tq].
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse,
                       const AttentionDims& dims) {
  const auto qs = dims.queries(q), ks = dims.keys(k), vs = dims.keys(v);
  const auto outs = dims.queries(out);
  const T scale = static_cast<T>(dims.scale());
  run_tasks(dims.batch * dims.heads, dims.parallel(), [&](int64_t pair) {
    const int64_t b = pair / dims.heads, h = pair % dims.heads, kv = h / dims.group();
    forward_head(qs.head(b, h), ks.head(b, kv), vs.head(b, kv), outs.head(b, h),
                 lse + pair * dims.q_len, dims.key_offset(), scale);
  });
}

template <typename T>
struct BackwardTensors {
  Heads<const T> q, k, v, out, d_out;
  const T* lse;
  Heads<T> dq, dk, dv;
};

// For the query heads of KV head kv, in order (so dk, dv sum deterministically), per row block:
// P from lse, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)), dQ = dS·K·scale, dK += dSᵀ·Q·scale,
// dV += Pᵀ·dO.
template <typename T>
void backward_kv_head(const BackwardTensors<T>& t, const AttentionDims& dims, int64_t b,
                      int64_t kv) {
  const auto k = t.k.head(b, kv), v = t.v.head(b, kv);
  auto dk = t.dk.head(b, kv), dv = t.dv.head(b, kv);
  dk.setZero();
  dv.setZero();
  const T scale = static_cast<T>(dims.scale());
  Matrix<T> p, ds;
  Vector<T> delta;
  for (int64_t h = kv * dims.group(); h < (kv + 1) * dims.group(); ++h) {
    const auto q = t.q.head(b, h), out = t.out.head(b, h), d_out = t.d_out.head(b, h);
    auto dq = t.dq.head(b, h);
    const T* lse = t.lse + (b * dims.heads + h) * dims.q_len;
    for (int64_t r0 = 0; r0 < dims.q_len; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, dims.q_len - r0);
      const int64_t keys = dims.key_offset() + r0 + rows;
      const auto q_rows = q.middleRows(r0, rows), d_out_rows = d_out.middleRows(r0, rows);
      p.noalias() = scale * (q_rows * k.topRows(keys).transpose());
      probabilities_from_lse(p, dims.key_offset() + r0, lse + r0);
      ds.noalias() = d_out_rows * v.topRows(keys).transpose();
      delta = d_out_rows.cwiseProduct(out.middleRows(r0, rows)).rowwise().sum();
      ds.colwise() -= delta;
      ds.array() *= p.array();
      dq.middleRows(r0, rows).noalias() = scale * (ds * k.topRows(keys));
      dk.topRows(keys).noalias() += scale * (ds.transpose() * q_rows);
      dv.topRows(keys).noalias() += p.transpose() * d_out_rows;
    }
  }
}

// The dimensions as the flash kernels take them (cuda::FlashDims, the same fields in the same
// order).
template <typename KernelDims>
KernelDims kernel_dims(const AttentionDims& dims) {
  return {dims.batch, dims.q_len, dims.k_len, dims.heads, dims.kv_heads, dims.head_dim};
}

// Probabilities are not kept: backward recomputes them from q, k and the row log-sum-exp
// (lse, [B, H, Tq]), as the flash kernel does, so memory stays O(T) per head.
struct AttentionNode : Node {
  Tensor q, k, v, out, lse;
  AttentionDims dims;
  AttentionNode(Tensor q_, Tensor k_, Tensor v_, Tensor out_, Tensor lse_, AttentionDims dims_)
      : q(std::move(q_)),
        k(std::move(k_)),
        v(std::move(v_)),
        out(std::move(out_)),
        lse(std::move(lse_)),
        dims(dims_) {}
  const char* name() const override { return "attention"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dk = Tensor::empty(k.shape(), k.dtype(), k.device());
    Tensor dv = Tensor::empty(v.shape(), v.dtype(), v.device());
    if (q.is_cpu()) {
      Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
      backward_on_cpu(g, dq, dk, dv);
      return {dq, dk, dv};
    }
    check_same_kind({&q, &g}, "attention backward");
    // q's gradient summed so far (the other path's, in ssa mode) takes this one in place.
    const auto [dq, adds] = gradient_target(inputs()[0], q);
    // The delta workspace (rowsum(dO ∘ O), f32 [B, H, Tq]) is freed on return; the kernels that
    // use it are already queued on the compute stream, ahead of any later user of its memory.
    SSA_ON_CUDA("attention backward",
                const Tensor delta =
                    Tensor::empty({dims.batch, dims.heads, dims.q_len}, DType::f32, Device::cuda);
                cuda::flash_attention_backward(
                    kernel_dims<cuda::FlashDims>(dims), q.dtype(),
                    {q.raw(), k.raw(), v.raw(), out.raw(), g.raw(), lse.data<float>(),
                     delta.data<float>(), dq.raw(), dk.raw(), dv.raw(), adds}));
    return {dq, dk, dv};
  }
  void backward_on_cpu(const Tensor& g, const Tensor& dq, const Tensor& dk,
                       const Tensor& dv) const {
    dispatch_float(g, "attention backward", [&](auto zero) {
      using T = decltype(zero);
      const BackwardTensors<T> t{dims.queries<const T>(q.data<T>()),
                                 dims.keys<const T>(k.data<T>()),
                                 dims.keys<const T>(v.data<T>()),
                                 dims.queries<const T>(out.data<T>()),
                                 dims.queries<const T>(g.data<T>()),
                                 lse.data<T>(),
                                 dims.queries(dq.data<T>()),
                                 dims.keys(dk.data<T>()),
                                 dims.keys(dv.data<T>())};
      run_tasks(dims.batch * dims.kv_heads, dims.parallel(), [&](int64_t pair) {
        backward_kv_head(t, dims, pair / dims.kv_heads, pair % dims.kv_heads);
      });
    });
  }
  void release() override { q = k = v = out = lse = Tensor(); }
};

AttentionDims check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_same_kind({&q, &k, &v}, "attention");
  SSA_CHECK(q.rank() == 4 && k.rank() == 4 && k.shape() == v.shape(),
            "attention: q {}, k {}, v {} (expected q [B, Tq, H, d], k and v [B, Tk, Hkv, d])",
            q.shape().str(), k.shape().str(), v.shape().str());
  const AttentionDims dims{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  SSA_CHECK(k.dim(0) == dims.batch && k.dim(3) == dims.head_dim && dims.head_dim > 0,
            "attention: q {} and k/v {} differ in batch or head_dim (or head_dim is 0)",
            q.shape().str(), k.shape().str());
  SSA_CHECK(dims.kv_heads > 0 && dims.heads % dims.kv_heads == 0,
            "attention: {} KV heads (k {}) must divide the {} query heads (q {})", dims.kv_heads,
            k.shape().str(), dims.heads, q.shape().str());
  SSA_CHECK(dims.q_len <= dims.k_len, "attention: {} queries (q {}) but only {} keys (k {})",
            dims.q_len, q.shape().str(), dims.k_len, k.shape().str());
  return dims;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const AttentionDims dims = check_attention_inputs(q, k, v);
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  // lse: [B, H, Tq], q's dtype on the CPU, f32 on the GPU.
  Tensor lse = Tensor::empty({dims.batch, dims.heads, dims.q_len},
                             q.is_cpu() ? q.dtype() : DType::f32, q.device());
  if (q.is_cpu()) {
    dispatch_float(q, "attention", [&](auto zero) {
      using T = decltype(zero);
      attention_forward(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), dims);
    });
  } else {
    SSA_ON_CUDA("attention", cuda::flash_attention_forward(
                                 kernel_dims<cuda::FlashDims>(dims), q.dtype(),
                                 {q.raw(), k.raw(), v.raw(), out.raw(), lse.data<float>()}));
  }
  if (!should_record({&q, &k, &v})) return out;
  return record(
      out,
      std::make_shared<AttentionNode>(q.detach(), k.detach(), v.detach(), out.detach(), lse, dims),
      {q, k, v});
}

}  // namespace ssa
