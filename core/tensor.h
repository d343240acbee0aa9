#pragma once
// Tensor: a handle (shared) to a contiguous row-major window of reference-counted storage.
// Copying a Tensor copies the handle; clone() copies the data. A view shares the storage,
// so all parameters can be windows of one flat buffer.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ssa {

constexpr int kMaxRank = 6;

struct Shape {
  int rank = 0;
  std::array<int64_t, kMaxRank> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> sizes);
  explicit Shape(const std::vector<int64_t>& sizes);
  int64_t numel() const;
  int64_t operator[](int axis) const { return dims[axis]; }
  int64_t back() const { return dims[rank - 1]; }
  bool operator==(const Shape& other) const;
  std::string str() const;
};

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu);
  // Uninitialised, with t's shape, dtype and device.
  static Tensor empty_like(const Tensor& t);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype, Device device = Device::cpu);
  // A CPU tensor holding `values` converted to `dtype`.
  static Tensor from(const std::vector<double>& values, const Shape& shape, DType dtype);
  static Tensor scalar(double value, DType dtype, Device device = Device::cpu);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int rank() const { return shape().rank; }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_cpu() const { return device() == Device::cpu; }

  void* raw() const;
  template <typename T>
  T* data() const {
    SSA_CHECK(dtype() == dtype_of<T>(), "tensor of dtype {} read as {}", dtype_name(dtype()),
              dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }

  // A window of `shape` starting `element_offset` elements into this tensor's data.
  Tensor view(int64_t element_offset, const Shape& shape) const;
  // The same data with another shape (numel must match). Shares storage, no grad link.
  Tensor reshape(const Shape& shape) const;
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  // Copies src into this tensor (same numel; converts dtype, crosses devices).
  void copy_from(const Tensor& src) const;
  void fill(double value) const;
  void zero() const { fill(0.0); }
  // Element i (flat index) as double, for tests and logging (CPU or small device reads).
  double at(int64_t index) const;
  double item() const;
  std::vector<double> to_vector() const;
  bool same_storage(const Tensor& other) const;
  // True when this handle alone reaches the data: no other handle to this tensor, and no view,
  // reshape or detached copy of its storage.
  bool sole_holder() const;

  // Autograd (see autograd/autograd.h for the contract).
  bool requires_grad() const;
  const Tensor& set_requires_grad(bool enabled) const;
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  // An unwritten grad() holds no gradient, whatever its bytes (a zeroing that was never run): the
  // next gradient delivered overwrites it instead of adding to it. The mark belongs to the
  // gradient tensor, so leaves sharing one grad() share it.
  bool grad_unwritten() const;
  void set_grad_unwritten(bool unwritten) const;
  const std::shared_ptr<Node>& grad_fn() const;
  // Which of grad_fn's outputs this tensor is (0 unless the node has several).
  int output_index() const;
  void set_grad_fn(std::shared_ptr<Node> node, int output_index = 0) const;
  // Same data, cut from the graph (stop-gradient).
  Tensor detach() const;
  // This tensor's place in the graph without its data: grad_fn, output index, requires_grad,
  // shape, dtype and device, but no storage (reading its data is an error). What a Node keeps of
  // an input made by an op, so that an input no backward reads is freed when its other holders
  // drop it (a node saves what its backward reads, itself).
  Tensor graph_link() const;

  const std::string& name() const;
  const Tensor& set_name(std::string name) const;
  TensorImpl* impl() const { return impl_.get(); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t byte_offset = 0;
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  Tensor grad;
  bool unwritten_gradient = false;  // of a tensor that is some leaf's grad()
  std::shared_ptr<Node> grad_fn;
  int output_index = 0;
  std::string name;
  Device link_device = Device::cpu;  // the device of a graph_link(), which has no storage
};

// Raises a clear error unless `t` has this shape.
void check_shape(const Tensor& t, const Shape& expected, const char* what);
// Raises unless all tensors share a dtype and a device.
void check_same_kind(std::initializer_list<const Tensor*> tensors, const char* op);

}  // namespace ssa
