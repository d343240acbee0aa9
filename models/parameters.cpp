#include "models/parameters.h"

namespace ssa {

Parameters::Parameters(std::vector<ParamSpec> specs, DType dtype, Device device)
    : Parameters(std::move(specs), dtype, device, dtype) {}

Parameters::Parameters(std::vector<ParamSpec> specs, DType dtype, Device device,
                       DType compute_dtype)
    : specs_(std::move(specs)) {
  int64_t total = 0;
  for (const ParamSpec& spec : specs_) {
    offsets_.push_back(total);
    total += spec.shape.numel();
  }
  flat_ = Tensor::zeros({total}, dtype, device);
  flat_grad_ = Tensor::zeros({total}, dtype, device);
  compute_flat_ = compute_dtype == dtype ? flat_ : Tensor::zeros({total}, compute_dtype, device);
  for (size_t i = 0; i < specs_.size(); ++i) {
    Tensor t = compute_flat_.view(offsets_[i], specs_[i].shape);
    t.set_name(specs_[i].name).set_requires_grad(true);
    t.set_grad(flat_grad_.view(offsets_[i], specs_[i].shape));
    tensors_.push_back(t);
  }
}

void Parameters::zero_grad() const {
  for (const Tensor& t : tensors_) t.set_grad_unwritten(true);
}

const Tensor& Parameters::flat_grad() const {
  grad_slice(0, count());
  return flat_grad_;
}

Tensor Parameters::grad_slice(int64_t begin, int64_t end) const {
  // Each run of adjacent unwritten parameters, [run_begin, run_end), is zeroed by one fill.
  int64_t run_begin = 0, run_end = 0;
  auto zero_run = [&] {
    if (run_end > run_begin) flat_grad_.view(run_begin, {run_end - run_begin}).zero();
  };
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const int64_t first = offsets_[i], last = first + tensors_[i].numel();
    if (last <= begin || first >= end || !tensors_[i].grad_unwritten()) continue;
    if (first != run_end) {
      zero_run();
      run_begin = first;
    }
    run_end = last;
    tensors_[i].set_grad_unwritten(false);
  }
  zero_run();
  return flat_grad_.view(begin, {end - begin});
}

const Tensor& Parameters::get(const std::string& name) const {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return tensors_[i];
  fail("no parameter named '{}'", name);
}

void Parameters::initialize(Rng& rng) const {
  for (size_t i = 0; i < specs_.size(); ++i) {
    Tensor master = flat_.view(offsets_[i], specs_[i].shape);
    if (specs_[i].init == Init::ones)
      master.fill(1.0);
    else
      rng.fill_normal(master, 0.0, specs_[i].init_std);
  }
  refresh_compute_copy();
}

void Parameters::refresh_compute_copy() const {
  if (mixed_precision()) compute_flat_.copy_from(flat_);
}

}  // namespace ssa
