#include "autograd/autograd.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#ifdef SSA_HAVE_CUDA
#include "cuda/elementwise.h"
#endif

namespace ssa {
namespace {

thread_local bool g_grad_enabled = true;
uint64_t g_next_sequence = 1;

using PendingGradients = std::unordered_map<Node*, std::vector<Tensor>>;
// The node that backward() runs (the innermost backward(), under recomputation): the gradients
// pending for other nodes' outputs, and those pending_gradient() handed to the node.
struct RunningNode {
  PendingGradients* pending;
  std::vector<const TensorImpl*> handed;
};
thread_local RunningNode* g_running = nullptr;

// While alive, `node` is the running one; then the enclosing backward()'s returns.
class RunningScope {
 public:
  explicit RunningScope(RunningNode* node) : previous_(g_running) { g_running = node; }
  ~RunningScope() { g_running = previous_; }
  RunningScope(const RunningScope&) = delete;
  RunningScope& operator=(const RunningScope&) = delete;

 private:
  RunningNode* previous_;
};

template <typename T, typename Source>
void add_cpu(T* dst, const Source* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += static_cast<T>(src[i]);
}

// Nodes reachable from root, each with the number of consumers that feed it a gradient.
std::unordered_map<Node*, int> count_consumers(Node* root) {
  std::unordered_map<Node*, int> consumers{{root, 0}};
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Tensor& input : node->inputs()) {
      Node* producer = input.defined() ? input.grad_fn().get() : nullptr;
      if (producer == nullptr) continue;
      auto [it, inserted] = consumers.try_emplace(producer, 0);
      ++it->second;
      if (inserted) stack.push_back(producer);
    }
  }
  return consumers;
}

// The leaves a backward() reaches, each with the gradients still to come; in a fixed order when
// there is an on_final to call (zeroing the unreached ones needs none).
class LeafCounts {
 public:
  LeafCounts(const std::unordered_map<Node*, int>& nodes, const LeafFinal& on_final)
      : on_final_(on_final) {
    std::vector<Node*> ordered;
    for (const auto& entry : nodes) ordered.push_back(entry.first);
    if (on_final_)
      std::sort(ordered.begin(), ordered.end(),
                [](Node* a, Node* b) { return a->sequence() > b->sequence(); });
    for (Node* node : ordered)
      for (const Tensor& input : node->inputs())
        if (is_leaf(input)) {
          auto [it, inserted] = remaining_.try_emplace(input.impl(), 0);
          if (inserted) leaves_.push_back(input);
          ++it->second;
        }
  }
  // One edge into `input` is done (a gradient delivered or none given).
  void done(const Tensor& input) {
    if (!is_leaf(input)) return;
    if (--remaining_[input.impl()] == 0) final(input);
  }
  // Leaves behind nodes that never ran (a branch that got no gradient) are final too.
  void finish() {
    for (const Tensor& leaf : leaves_)
      if (remaining_[leaf.impl()] > 0) final(leaf);
  }

 private:
  static bool is_leaf(const Tensor& t) { return t.defined() && !t.grad_fn() && t.requires_grad(); }
  void final(const Tensor& leaf) const {
    settle_gradient(leaf);
    if (on_final_) on_final_(leaf);
  }
  const LeafFinal& on_final_;
  std::unordered_map<TensorImpl*, int> remaining_;
  std::vector<Tensor> leaves_;  // with on_final_: first reached first
};

void deliver_to_leaf(const Tensor& leaf, const Tensor& grad) {
  if (!leaf.grad().defined()) {
    leaf.set_grad(grad.clone());
  } else if (leaf.grad_unwritten()) {
    leaf.grad().copy_from(grad);
    leaf.set_grad_unwritten(false);
  } else {
    accumulate_into(leaf.grad(), grad);
  }
}

// inputs: {the input, the leaves fn reads}; the leaves' gradients are delivered by the inner
// backward, so this node hands the outer one the input's gradient only.
class RecomputeNode : public Node {
 public:
  RecomputeNode(std::function<Tensor(const Tensor&)> fn, Tensor input)
      : fn_(std::move(fn)), input_(std::move(input)) {}
  const char* name() const override { return "recompute"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const Tensor input = input_.detach();
    input.set_requires_grad(inputs()[0].requires_grad());
    Tensor output;
    {
      EnableGrad recording;
      output = fn_(input);
    }
    std::vector<Tensor> grads(inputs().size());
    if (!output.requires_grad()) return grads;
    ssa::backward(output, grad_output);
    grads[0] = input.grad();
    return grads;
  }
  void release() override {
    fn_ = nullptr;
    input_ = Tensor();
  }

 private:
  std::function<Tensor(const Tensor&)> fn_;
  Tensor input_;  // detached: its data, for the forward run again
};

}  // namespace

bool grad_enabled() { return g_grad_enabled; }

GradMode::GradMode(bool enabled) : previous_(g_grad_enabled) { g_grad_enabled = enabled; }
GradMode::~GradMode() { g_grad_enabled = previous_; }

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

Tensor record(const Tensor& output, std::shared_ptr<Node> node, std::vector<Tensor> inputs) {
  record_outputs({output}, std::move(node), std::move(inputs));
  return output;
}

void record_outputs(const std::vector<Tensor>& outputs, std::shared_ptr<Node> node,
                    std::vector<Tensor> inputs) {
  for (Tensor& input : inputs)
    if (input.defined() && input.grad_fn()) input = input.graph_link();
  node->inputs_ = std::move(inputs);
  node->output_count_ = static_cast<int>(outputs.size());
  node->sequence_ = g_next_sequence++;
  for (size_t i = 0; i < outputs.size(); ++i) {
    outputs[i].set_grad_fn(node, static_cast<int>(i));
    outputs[i].set_requires_grad(true);
  }
}

Tensor recomputed(std::function<Tensor(const Tensor&)> fn, const Tensor& input,
                  const std::vector<Tensor>& leaves) {
  const bool any_grad =
      input.requires_grad() || std::any_of(leaves.begin(), leaves.end(),
                                           [](const Tensor& leaf) { return leaf.requires_grad(); });
  if (!g_grad_enabled || !any_grad) return fn(input);
  Tensor output;
  {
    NoGrad not_recording;
    output = fn(input);
  }
  std::vector<Tensor> inputs{input};
  inputs.insert(inputs.end(), leaves.begin(), leaves.end());
  return record(output, std::make_shared<RecomputeNode>(std::move(fn), input.detach()),
                std::move(inputs));
}

Tensor gradient_buffer(const Tensor& input) {
  if (!input.requires_grad() || input.grad_fn()) return Tensor();
  Tensor buffer = input.grad();
  return buffer.defined() && buffer.dtype() == DType::f32 ? buffer : Tensor();
}

void settle_gradient(const Tensor& leaf) {
  if (!leaf.grad_unwritten()) return;
  leaf.grad().zero();
  leaf.set_grad_unwritten(false);
}

void accumulate_into(const Tensor& dst, const Tensor& src) {
  SSA_CHECK(dst.shape() == src.shape(), "accumulate {} into {}", src.shape().str(),
            dst.shape().str());
  SSA_CHECK(dst.device() == src.device(), "accumulate_into: {} source into a {} destination",
            device_name(src.device()), device_name(dst.device()));
  const bool same = dst.dtype() == src.dtype();
  SSA_CHECK(same || (dst.dtype() == DType::f32 && src.dtype() == DType::bf16),
            "accumulate_into: cannot add {} into {} (same dtype, or bf16 into f32)",
            dtype_name(src.dtype()), dtype_name(dst.dtype()));
  if (!dst.is_cpu()) {
#ifdef SSA_HAVE_CUDA
    cuda::accumulate(dst.raw(), dst.dtype(), src.raw(), src.dtype(), dst.numel());
    return;
#endif
  }
  switch (dst.dtype()) {
    case DType::f32:
      if (same)
        add_cpu(dst.data<float>(), src.data<float>(), dst.numel());
      else
        add_cpu(dst.data<float>(), src.data<bf16>(), dst.numel());
      break;
    case DType::f64:
      add_cpu(dst.data<double>(), src.data<double>(), dst.numel());
      break;
    default:
      SSA_CHECK(false, "gradients must be f32 or f64, got {}", dtype_name(dst.dtype()));
  }
}

namespace {

// a + b in a fresh tensor (a and b may also be held for other inputs). On CUDA with equal
// dtypes one pass reads both and writes the sum: the same bits as a copy of a with b added,
// a third fewer bytes.
Tensor sum_of(const Tensor& a, const Tensor& b) {
#ifdef SSA_HAVE_CUDA
  if (!a.is_cpu() && a.dtype() == b.dtype() && a.shape() == b.shape() &&
      (a.dtype() == DType::f32 || a.dtype() == DType::bf16)) {
    Tensor sum = Tensor::empty(a.shape(), a.dtype(), a.device());
    cuda::add(a.raw(), b.raw(), sum.raw(), a.dtype(), a.numel());
    return sum;
  }
#endif
  Tensor sum = a.clone();
  accumulate_into(sum, b);
  return sum;
}

}  // namespace

Tensor pending_gradient(const Tensor& input) {
  if (g_running == nullptr || !input.defined() || !input.grad_fn()) return Tensor();
  const auto it = g_running->pending->find(input.grad_fn().get());
  const auto index = static_cast<size_t>(input.output_index());
  if (it == g_running->pending->end() || index >= it->second.size()) return Tensor();
  const Tensor& sum = it->second[index];
  if (!sum.sole_holder()) return Tensor();
  g_running->handed.push_back(sum.impl());
  return sum;
}

Tensor pending_gradient_like(const Tensor& input, const Tensor& like) {
  Tensor pending = pending_gradient(input);
  const bool fits = pending.defined() && pending.dtype() == like.dtype() &&
                    pending.shape() == like.shape() && pending.device() == like.device();
  return fits ? pending : Tensor();
}

GradientTarget gradient_target(const Tensor& input, const Tensor& like) {
  Tensor pending = pending_gradient_like(input, like);
  if (pending.defined()) return {std::move(pending), true};
  return {Tensor::empty(like.shape(), like.dtype(), like.device()), false};
}

void backward(const Tensor& root, const Tensor& grad, const LeafFinal& on_final) {
  SSA_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = grad;
  if (!seed.defined()) {
    SSA_CHECK(root.numel() == 1, "backward() without a gradient needs a one-element root, got {}",
              root.shape().str());
    seed = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  check_shape(seed, root.shape(), "backward() gradient");
  if (!root.grad_fn()) {
    deliver_to_leaf(root, seed);
    if (on_final) on_final(root);
    return;
  }

  std::shared_ptr<Node> root_node = root.grad_fn();
  std::unordered_map<Node*, int> waiting = count_consumers(root_node.get());
  LeafCounts leaves(waiting, on_final);
  // The gradients that reached each node so far, one slot per output.
  PendingGradients pending;
  auto slot = [&pending](const Tensor& output) -> Tensor& {
    std::vector<Tensor>& slots = pending[output.grad_fn().get()];
    slots.resize(static_cast<size_t>(output.grad_fn()->output_count()));
    return slots[static_cast<size_t>(output.output_index())];
  };
  slot(root) = seed;
  // Among ready nodes, the most recently recorded runs first: a deterministic order.
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence() < b->sequence();
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>,
                      decltype(later_first)>
      ready(later_first);
  ready.push(root_node);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    auto grad_it = pending.find(node.get());
    std::vector<Tensor> grad_outputs = std::move(grad_it->second);
    pending.erase(grad_it);

    RunningNode running{&pending, {}};
    std::vector<Tensor> grads;
    {
      const RunningScope scope(&running);
      grads = node->backward_outputs(grad_outputs);
    }
    grad_outputs.clear();
    auto added_in_place = [&running](const Tensor& sum, const Tensor& grad) {
      return sum.defined() && grad.impl() == sum.impl() &&
             std::find(running.handed.begin(), running.handed.end(), sum.impl()) !=
                 running.handed.end();
    };
    SSA_CHECK(grads.size() == node->inputs().size(), "{} returned {} gradients for {} inputs",
              node->name(), grads.size(), node->inputs().size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& input = node->inputs()[i];
      if (!grads[i].defined() || !input.requires_grad()) {
        leaves.done(input);
        continue;
      }
      check_shape(grads[i], input.shape(), node->name());
      const std::shared_ptr<Node>& producer = input.grad_fn();
      if (!producer) {
        deliver_to_leaf(input, grads[i]);
        leaves.done(input);
        continue;
      }
      Tensor& sum = slot(input);
      // A backward may hand one tensor to several inputs: sum into a fresh one (unless the node
      // added its gradient into the pending sum itself).
      if (!added_in_place(sum, grads[i])) sum = sum.defined() ? sum_of(sum, grads[i]) : grads[i];
      if (--waiting[producer.get()] == 0) ready.push(producer);
    }
    node->release();
    node->inputs_.clear();
  }
  leaves.finish();
  root.set_grad_fn(nullptr);
  root.set_requires_grad(false);  // the graph is consumed; a second backward() is an error
}

}  // namespace ssa
