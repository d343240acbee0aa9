#pragma once
// All parameters live in ONE flat buffer and their gradients in another (llm.c style): each
// named tensor is a view, so zeroing, clipping, all-reduce, the optimizer and checkpoint I/O
// are single passes over a buffer. Order and offsets follow the spec table.
// Mixed precision (compute dtype bf16 over f32 master weights): the named tensors the model
// computes with are views of a bf16 copy of the master buffer, and their gradients are views of
// the f32 gradient buffer (bf16 gradients accumulate into it in f32).
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace ssa {

enum class Init { normal, ones };

struct ParamSpec {
  std::string name;  // e.g. "layers.3.attn.wq"
  Shape shape;
  Init init = Init::normal;
  double init_std = 0.02;
  bool weight_decay = true;  // matrices decay; norm weights do not
};

class Parameters {
 public:
  Parameters(std::vector<ParamSpec> specs, DType dtype, Device device);
  Parameters(std::vector<ParamSpec> specs, DType dtype, Device device, DType compute_dtype);

  const std::vector<ParamSpec>& specs() const { return specs_; }
  const std::vector<int64_t>& offsets() const { return offsets_; }
  int64_t count() const { return flat_.numel(); }
  const Tensor& flat() const { return flat_; }  // the master weights
  // The gradient buffer, every parameter's slice written: those still unwritten since
  // zero_grad() (no backward reached them) are zeroed first.
  const Tensor& flat_grad() const;
  // flat_grad()'s elements [begin, end), the parameters within the range written.
  Tensor grad_slice(int64_t begin, int64_t end) const;
  // What the model computes with: flat() itself, or its bf16 copy under mixed precision.
  const Tensor& compute_flat() const { return compute_flat_; }
  bool mixed_precision() const { return !compute_flat_.same_storage(flat_); }
  // After writing flat() directly (a checkpoint load): rounds it into the compute copy.
  void refresh_compute_copy() const;
  const Tensor& operator[](size_t index) const { return tensors_[index]; }
  const Tensor& get(const std::string& name) const;  // raises for an unknown name
  size_t size() const { return tensors_.size(); }

  // Draws every parameter in table order from rng (normal(0, std) or ones).
  void initialize(Rng& rng) const;
  // Marks every parameter's gradient unwritten: the next gradient overwrites it (autograd.h), so
  // the buffer is zeroed only where no backward writes.
  void zero_grad() const;

 private:
  std::vector<ParamSpec> specs_;
  std::vector<int64_t> offsets_;
  Tensor flat_, flat_grad_, compute_flat_;
  std::vector<Tensor> tensors_;
};

}  // namespace ssa
