#pragma once
// Reverse-mode autodiff on a tape of Nodes.
//
// The accumulation contract:
//  - A leaf (a tensor with requires_grad and no grad_fn, e.g. a parameter) ACCUMULATES:
//    backward() adds into leaf.grad(); gradients pile up over several backward() calls until
//    the caller zeroes them. A leaf whose grad() is already set (a view into the model's flat
//    gradient buffer) is accumulated in place; otherwise a zero gradient is created first.
//    Zeroing may be deferred by marking grad() unwritten (Tensor::set_grad_unwritten): the first
//    gradient then overwrites it, and a leaf that this backward() reaches but gives no gradient
//    has its grad() zeroed once final, so every reached leaf leaves backward() written.
//  - Activation gradients are internal: summed over all uses of the activation, handed to its
//    Node once, and freed as soon as that Node has run.
//  - backward() consumes the graph: each Node drops its inputs and saved tensors after running.
//  - A Node may have several outputs (record_outputs): it runs once, after every consumer of
//    any of them, with one gradient per output (undefined for an output no gradient reached).
// A Node must not hold its own output through a handle with grad_fn (that is a cycle); save
// output.detach() instead.
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace ssa {

// Called by backward() once per leaf reached, right after the last gradient this backward()
// delivers to it (data-parallel training starts communicating a gradient bucket once all its
// leaves are final). Leaves are told apart by their TensorImpl.
using LeafFinal = std::function<void(const Tensor& leaf)>;

class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // One gradient per entry of inputs(); an undefined Tensor means "no gradient".
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // What backward() calls: one gradient per output. A node of several outputs overrides it
  // (through MultiOutputNode).
  virtual std::vector<Tensor> backward_outputs(const std::vector<Tensor>& grad_outputs) {
    return backward(grad_outputs[0]);
  }
  // Drops what backward needed (called after backward has run).
  virtual void release() {}

  const std::vector<Tensor>& inputs() const { return inputs_; }
  int output_count() const { return output_count_; }
  uint64_t sequence() const { return sequence_; }

 private:
  friend Tensor record(const Tensor&, std::shared_ptr<Node>, std::vector<Tensor>);
  friend void record_outputs(const std::vector<Tensor>&, std::shared_ptr<Node>,
                             std::vector<Tensor>);
  friend void backward(const Tensor&, const Tensor&, const LeafFinal&);
  std::vector<Tensor> inputs_;
  int output_count_ = 1;
  uint64_t sequence_ = 0;
};

// A node of several outputs implements backward_outputs alone; backward(grad), given only the
// first output's gradient, hands it on with the others undefined.
class MultiOutputNode : public Node {
 public:
  std::vector<Tensor> backward(const Tensor& first) final {
    std::vector<Tensor> grads(static_cast<size_t>(output_count()));
    grads[0] = first;
    return backward_outputs(grads);
  }
  std::vector<Tensor> backward_outputs(const std::vector<Tensor>& grad_outputs) override = 0;
};

bool grad_enabled();

// While alive, ops record Nodes (enabled) or not; then the previous mode returns.
class GradMode {
 public:
  explicit GradMode(bool enabled);
  ~GradMode();
  GradMode(const GradMode&) = delete;
  GradMode& operator=(const GradMode&) = delete;

 private:
  bool previous_;
};
// No recording while alive (evaluation, updates).
struct NoGrad : GradMode {
  NoGrad() : GradMode(false) {}
};
// Recording again while alive (a backward that recomputes a forward).
struct EnableGrad : GradMode {
  EnableGrad() : GradMode(true) {}
};

// True when grad mode is on and some input requires grad: the op should record a Node.
bool should_record(std::initializer_list<const Tensor*> inputs);

// Attaches `node` as the producer of `output` (which then requires grad) and returns output.
Tensor record(const Tensor& output, std::shared_ptr<Node> node, std::vector<Tensor> inputs);
// The same for a node of several outputs: outputs[i] becomes its output i.
void record_outputs(const std::vector<Tensor>& outputs, std::shared_ptr<Node> node,
                    std::vector<Tensor> inputs);

// During a node's backward: the gradient summed so far for `input`, one of the node's inputs made
// by an op, from the consumers of `input` whose backward ran before, when backward() alone
// holds it; otherwise (a leaf, no gradient yet, or a tensor held elsewhere) undefined. The node
// may add its own gradient for `input` into it in place and return it as that gradient:
// backward() then sums nothing more (a product can write the sum itself).
Tensor pending_gradient(const Tensor& input);
// pending_gradient(input) when a gradient like `like` (the same dtype, shape and device) can be
// added into it; otherwise undefined.
Tensor pending_gradient_like(const Tensor& input, const Tensor& like);
// Where a node writes its gradient for `input`: into the pending sum (adds), or a new tensor
// like `like`.
struct GradientTarget {
  Tensor tensor;
  bool adds = false;
};
GradientTarget gradient_target(const Tensor& input, const Tensor& like);

// Backpropagates from `root`. `grad` defaults to 1 for a one-element root.
void backward(const Tensor& root, const Tensor& grad = Tensor(), const LeafFinal& on_final = {});

// Activation recomputation: returns fn(input), computed without recording, so that none of
// fn's intermediate tensors stay alive; only `input` is kept. Its backward runs fn(input) again,
// recording, and backpropagates through that. `leaves` are the parameters fn reads: they get
// their gradients during that backward, and are listed so that backward() knows when they are
// final. fn must give the same values when run again (no randomness of its own).
Tensor recomputed(std::function<Tensor(const Tensor&)> fn, const Tensor& input,
                  const std::vector<Tensor>& leaves);

// For a backward that writes a leaf's gradient into its buffer itself (a product with beta = 1,
// or beta = 0 while input.grad_unwritten()) instead of returning it: input.grad() when input is
// a leaf requiring grad whose grad() is already set and f32 (the model's flat gradient buffer),
// else an undefined tensor. A node that writes into it marks it written and returns no gradient
// for that input; backward() counts that input as done.
Tensor gradient_buffer(const Tensor& input);

// Zeroes leaf.grad() if it is unwritten, and marks it written.
void settle_gradient(const Tensor& leaf);

// dst += src, elementwise, same shape and device (used for gradient accumulation). The dtypes
// match, or src is bf16 and dst f32: a bf16 leaf (mixed precision's working copy of a weight)
// whose grad() is a view of the fp32 flat gradient buffer accumulates into it.
void accumulate_into(const Tensor& dst, const Tensor& src);

}  // namespace ssa
