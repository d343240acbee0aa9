#include "ops/attention_projections.h"

#include <cstring>

#include "autograd/autograd.h"
#include "ops/dispatch.h"
#include "ops/linear.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {
namespace {

// The columns of y [B·T, width]: wq's, then wk's, wv's and wg's (gate_width H, or 0 without the
// gate).
struct StackedLayout {
  int64_t batch, seq, heads, kv_heads, head_dim, gate_width;

  int64_t k_column() const { return heads * head_dim; }
  int64_t v_column() const { return k_column() + kv_heads * head_dim; }
  int64_t gate_column() const { return v_column() + kv_heads * head_dim; }
  int64_t width() const { return gate_column() + gate_width; }
  Shape q_shape() const { return {batch, seq, heads, head_dim}; }
  Shape kv_shape() const { return {batch, seq, kv_heads, head_dim}; }
  Shape gate_shape() const { return {batch, seq, heads}; }
};

// The weights in stacking order (wg only when present).
std::vector<Tensor> stacking_order(const AttentionWeights& w) {
  std::vector<Tensor> parts{w.wq, w.wk, w.wv};
  if (w.wg.defined()) parts.push_back(w.wg);
  return parts;
}

// Copies rows of `width` values between a column window of a matrix and a tensor whose rows are
// `width` apart: from the window when `into_window` is false, into it when true.
void copy_window_rows(const ColumnWindow& window, const Tensor& own, int64_t width,
                      bool into_window) {
  const size_t element = dtype_size(own.dtype());
  const size_t window_pitch = static_cast<size_t>(window.matrix.dim(1)) * element;
  const size_t own_pitch = static_cast<size_t>(width) * element;
  const int64_t rows = window.matrix.dim(0);
  char* at_window = static_cast<char*>(window.matrix.raw()) + window.column * element;
  char* at_own = static_cast<char*>(own.raw());
  char* dst = into_window ? at_window : at_own;
  const char* src = into_window ? at_own : at_window;
  const size_t dst_pitch = into_window ? window_pitch : own_pitch;
  const size_t src_pitch = into_window ? own_pitch : window_pitch;
  if (own.is_cpu()) {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * dst_pitch, src + r * src_pitch, own_pitch);
    return;
  }
  SSA_ON_CUDA("attention_projections", cuda::copy_rows(dst, dst_pitch, src, src_pitch, own_pitch,
                                                       static_cast<size_t>(rows)));
}

Tensor copy_of_columns(const ColumnWindow& window, const Shape& shape) {
  Tensor own = Tensor::empty(shape, window.matrix.dtype(), window.matrix.device());
  copy_window_rows(window, own, shape.numel() / window.matrix.dim(0), false);
  return own;
}

// inputs: h, wq, wk, wv (, wg); outputs: q, k, v (, gate_logits).
class AttentionProjectionsNode : public MultiOutputNode {
 public:
  AttentionProjectionsNode(Tensor h, Tensor stacked, StackedLayout layout, RopeTable table,
                           int64_t position_offset)
      : h_(std::move(h)),
        stacked_(std::move(stacked)),
        layout_(layout),
        table_(std::move(table)),
        position_offset_(position_offset) {}
  const char* name() const override { return "attention_projections"; }

  std::vector<Tensor> backward_outputs(const std::vector<Tensor>& grads) override {
    const Tensor dy = stacked_gradient(grads);
    const int64_t in = h_.shape().back();
    std::vector<Tensor> input_grads{
        inputs()[0].requires_grad() ? matrix_product(dy, stacked_, false, false).reshape(h_.shape())
                                    : Tensor()};
    const std::vector<Tensor> weights(inputs().begin() + 1, inputs().end());
    const std::vector<Tensor> weight_grads =
        weight_gradients(dy, h_.reshape({dy.dim(0), in}), weights);
    input_grads.insert(input_grads.end(), weight_grads.begin(), weight_grads.end());
    return input_grads;
  }

  void release() override {
    h_ = stacked_ = Tensor();
    table_ = RopeTable();
  }

 private:
  // dy [B·T, width]: each output's gradient in its columns (dq and dk rotated back), zeros where
  // an output got none.
  Tensor stacked_gradient(const std::vector<Tensor>& grads) const {
    const StackedLayout& l = layout_;
    const Shape shape{l.batch * l.seq, l.width()};
    bool complete = true;
    for (const Tensor& grad : grads) complete = complete && grad.defined();
    const Tensor dy = complete ? Tensor::empty(shape, h_.dtype(), h_.device())
                               : Tensor::zeros(shape, h_.dtype(), h_.device());
    if (grads[0].defined()) rope_back_into_columns(grads[0], {dy, 0}, table_, position_offset_);
    if (grads[1].defined())
      rope_back_into_columns(grads[1], {dy, l.k_column()}, table_, position_offset_);
    if (grads[2].defined())
      copy_window_rows({dy, l.v_column()}, grads[2], l.kv_heads * l.head_dim, true);
    if (grads.size() > 3 && grads[3].defined())
      copy_window_rows({dy, l.gate_column()}, grads[3], l.gate_width, true);
    return dy;
  }

  Tensor h_, stacked_;
  StackedLayout layout_;
  RopeTable table_;
  int64_t position_offset_;
};

StackedLayout checked_layout(const Tensor& h, const AttentionWeights& w, int64_t head_dim) {
  SSA_CHECK(h.rank() == 3, "attention_projections: h {} must be [B, T, d_model]", h.shape().str());
  const int64_t in = h.dim(2);
  for (const Tensor& part : stacking_order(w)) {
    check_same_kind({&h, &part}, "attention_projections");
    SSA_CHECK(part.rank() == 2 && part.dim(1) == in,
              "attention_projections: a weight {} for h {} (expected [out, {}])",
              part.shape().str(), h.shape().str(), in);
  }
  SSA_CHECK(head_dim > 0 && w.wq.dim(0) % head_dim == 0 && w.wk.dim(0) % head_dim == 0 &&
                w.wv.dim(0) == w.wk.dim(0),
            "attention_projections: wq {}, wk {} and wv {} do not fit head_dim {} (expected "
            "[H·head_dim, in] and two of [Hkv·head_dim, in])",
            w.wq.shape().str(), w.wk.shape().str(), w.wv.shape().str(), head_dim);
  const int64_t heads = w.wq.dim(0) / head_dim;
  SSA_CHECK(!w.wg.defined() || w.wg.dim(0) == heads,
            "attention_projections: wg {} (expected [{}, {}]: one row per query head)",
            w.wg.shape().str(), heads, in);
  return {h.dim(0), h.dim(1), heads, w.wk.dim(0) / head_dim, head_dim, w.wg.defined() ? heads : 0};
}

}  // namespace

AttentionInputs attention_projections(const Tensor& h, const AttentionWeights& weights,
                                      int64_t head_dim, const RopeTable& table,
                                      int64_t position_offset) {
  const StackedLayout layout = checked_layout(h, weights, head_dim);
  const std::vector<Tensor> parts = stacking_order(weights);
  const Tensor stacked = stacked_rows(parts);
  const Tensor y =
      matrix_product(h.reshape({layout.batch * layout.seq, h.dim(2)}), stacked, false, true);
  AttentionInputs out;
  out.q = rope_from_columns({y, 0}, layout.q_shape(), table, position_offset);
  out.k = rope_from_columns({y, layout.k_column()}, layout.kv_shape(), table, position_offset);
  out.v = copy_of_columns({y, layout.v_column()}, layout.kv_shape());
  if (weights.wg.defined())
    out.gate_logits = copy_of_columns({y, layout.gate_column()}, layout.gate_shape());

  bool record_grad = should_record({&h});
  for (const Tensor& part : parts) record_grad = record_grad || should_record({&part});
  if (!record_grad) return out;
  std::vector<Tensor> outputs{out.q, out.k, out.v};
  if (out.gate_logits.defined()) outputs.push_back(out.gate_logits);
  std::vector<Tensor> inputs{h};
  inputs.insert(inputs.end(), parts.begin(), parts.end());
  record_outputs(outputs,
                 std::make_shared<AttentionProjectionsNode>(h.detach(), stacked.detach(), layout,
                                                            table, position_offset),
                 std::move(inputs));
  return out;
}

}  // namespace ssa
