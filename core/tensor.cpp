#include "core/tensor.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {

Shape::Shape(std::initializer_list<int64_t> sizes) : Shape(std::vector<int64_t>(sizes)) {}

Shape::Shape(const std::vector<int64_t>& sizes) {
  SSA_CHECK(sizes.size() <= kMaxRank, "rank {} exceeds the maximum {}", sizes.size(), kMaxRank);
  rank = static_cast<int>(sizes.size());
  // Elements times the widest dtype's bytes must not wrap: an allocation that large fails.
  constexpr int64_t kMaxElements = int64_t{1} << 60;
  int64_t elements = 1;
  for (int i = 0; i < rank; ++i) {
    SSA_CHECK(sizes[i] >= 0, "negative dimension {}", sizes[i]);
    dims[i] = sizes[i];
    if (sizes[i] != 0 && elements > kMaxElements / sizes[i])
      throw OutOfMemory(fmt::format("a tensor of shape [{}] holds more than 2^60 elements",
                                    fmt::join(sizes, ", ")));
    elements *= sizes[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= dims[i];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank != other.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (dims[i] != other.dims[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Storage::Storage(size_t n_bytes, Device dev) : bytes(n_bytes), device(dev) {
  data = allocator_for(device).allocate(bytes);
}

Storage::~Storage() { allocator_for(device).deallocate(data, bytes); }

namespace {

template <typename To, typename From>
void convert_cpu(To* dst, const From* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<To, bf16>) {
      dst[i] = bf16(static_cast<float>(src[i]));
    } else if constexpr (std::is_same_v<From, bf16>) {
      dst[i] = static_cast<To>(static_cast<float>(src[i]));
    } else {
      dst[i] = static_cast<To>(src[i]);
    }
  }
}

template <typename To>
void convert_from(To* dst, const void* src, DType src_dtype, int64_t n) {
  switch (src_dtype) {
    case DType::f32:
      convert_cpu(dst, static_cast<const float*>(src), n);
      break;
    case DType::f64:
      convert_cpu(dst, static_cast<const double*>(src), n);
      break;
    case DType::bf16:
      convert_cpu(dst, static_cast<const bf16*>(src), n);
      break;
    case DType::i32:
      convert_cpu(dst, static_cast<const int32_t*>(src), n);
      break;
  }
}

void convert_cpu_any(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  if (dst_dtype == src_dtype) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(dst_dtype));
    return;
  }
  switch (dst_dtype) {
    case DType::f32:
      convert_from(static_cast<float*>(dst), src, src_dtype, n);
      break;
    case DType::f64:
      convert_from(static_cast<double*>(dst), src, src_dtype, n);
      break;
    case DType::bf16:
      convert_from(static_cast<bf16*>(dst), src, src_dtype, n);
      break;
    case DType::i32:
      convert_from(static_cast<int32_t*>(dst), src, src_dtype, n);
      break;
  }
}

// Writes n copies of the element whose bytes are `element` (sizeof(Bits) wide).
template <typename Bits>
void fill_elements(void* data, const unsigned char* element, int64_t n) {
  Bits bits;
  std::memcpy(&bits, element, sizeof bits);
  std::fill_n(static_cast<Bits*>(data), n, bits);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef SSA_HAVE_CUDA
  cuda::copy(dst, dst_device == Device::cuda, src, src_device == Device::cuda, bytes);
#else
  fail("a CUDA copy was requested but this build has no CUDA backend");
#endif
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->storage =
      std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  t.impl_->shape = shape;
  t.impl_->dtype = dtype;
  return t;
}

Tensor Tensor::empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill(value);
  return t;
}

Tensor Tensor::from(const std::vector<double>& values, const Shape& shape, DType dtype) {
  SSA_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "{} values for shape {}",
            values.size(), shape.str());
  Tensor t = empty(shape, dtype);
  convert_cpu_any(t.raw(), dtype, values.data(), DType::f64, shape.numel());
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full(Shape{}, value, dtype, device);
}

const Shape& Tensor::shape() const {
  SSA_CHECK(defined(), "use of an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::dim(int axis) const {
  int r = rank();
  int a = axis < 0 ? axis + r : axis;
  SSA_CHECK(a >= 0 && a < r, "axis {} out of range for shape {}", axis, shape().str());
  return shape()[a];
}

DType Tensor::dtype() const {
  SSA_CHECK(defined(), "use of an undefined tensor");
  return impl_->dtype;
}

Device Tensor::device() const {
  SSA_CHECK(defined(), "use of an undefined tensor");
  return impl_->storage ? impl_->storage->device : impl_->link_device;
}

namespace {

void check_backed(const TensorImpl& impl) {
  SSA_CHECK(impl.storage != nullptr,
            "the data of a tensor held as a graph link (an op's input a node did not save) read");
}

}  // namespace

void* Tensor::raw() const {
  SSA_CHECK(defined(), "use of an undefined tensor");
  check_backed(*impl_);
  return static_cast<char*>(impl_->storage->data) + impl_->byte_offset;
}

Tensor Tensor::view(int64_t element_offset, const Shape& new_shape) const {
  check_backed(*impl_);
  size_t begin = impl_->byte_offset + static_cast<size_t>(element_offset) * dtype_size(dtype());
  size_t end = begin + static_cast<size_t>(new_shape.numel()) * dtype_size(dtype());
  SSA_CHECK(element_offset >= 0 && end <= impl_->storage->bytes,
            "view of {} elements at offset {} runs past a storage of {} bytes", new_shape.numel(),
            element_offset, impl_->storage->bytes);
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->storage = impl_->storage;
  t.impl_->byte_offset = begin;
  t.impl_->shape = new_shape;
  t.impl_->dtype = dtype();
  return t;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  SSA_CHECK(new_shape.numel() == numel(), "cannot reshape {} to {}", shape().str(),
            new_shape.str());
  return view(0, new_shape);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype(), device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor t = empty(shape(), dtype(), target);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor t = empty(shape(), target, device());
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  SSA_CHECK(src.numel() == numel(), "copy of {} into {}", src.shape().str(), shape().str());
  if (src.dtype() == dtype()) {
    copy_bytes(raw(), device(), src.raw(), src.device(), nbytes());
    return;
  }
  if (is_cpu() && src.is_cpu()) {
    convert_cpu_any(raw(), dtype(), src.raw(), src.dtype(), numel());
    return;
  }
#ifdef SSA_HAVE_CUDA
  if (!is_cpu() && !src.is_cpu()) {
    cuda::convert(raw(), dtype(), src.raw(), src.dtype(), numel());
    return;
  }
#endif
  // Crossing devices and dtypes at once: convert on the device side that has the data.
  Tensor staged = is_cpu() ? src.to(Device::cpu) : src.to(dtype());
  copy_from(staged);
}

void Tensor::fill(double value) const {
  if (numel() == 0) return;
  if (is_cpu()) {
    unsigned char element[8];
    convert_cpu_any(element, dtype(), &value, DType::f64, 1);
    switch (dtype_size(dtype())) {
      case 2:
        fill_elements<uint16_t>(raw(), element, numel());
        break;
      case 4:
        fill_elements<uint32_t>(raw(), element, numel());
        break;
      default:
        fill_elements<uint64_t>(raw(), element, numel());
        break;
    }
    return;
  }
#ifdef SSA_HAVE_CUDA
  cuda::fill(raw(), dtype(), value, numel());
#else
  fail("fill of a CUDA tensor but this build has no CUDA backend");
#endif
}

double Tensor::at(int64_t index) const {
  SSA_CHECK(index >= 0 && index < numel(), "index {} out of range for {}", index, shape().str());
  Tensor one = view(index, Shape{1}).to(Device::cpu).to(DType::f64);
  return *one.data<double>();
}

double Tensor::item() const {
  SSA_CHECK(numel() == 1, "item() of a tensor with {} elements", numel());
  return at(0);
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = to(Device::cpu).to(DType::f64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + numel());
}

bool Tensor::same_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage != nullptr &&
         impl_->storage == other.impl_->storage;
}

bool Tensor::sole_holder() const {
  return defined() && impl_.use_count() == 1 && impl_->storage.use_count() == 1;
}

bool Tensor::requires_grad() const { return defined() && impl_->requires_grad; }

const Tensor& Tensor::set_requires_grad(bool enabled) const {
  impl_->requires_grad = enabled;
  return *this;
}

Tensor Tensor::grad() const { return impl_->grad; }

bool Tensor::grad_unwritten() const {
  return impl_->grad.defined() && impl_->grad.impl()->unwritten_gradient;
}

void Tensor::set_grad_unwritten(bool unwritten) const {
  SSA_CHECK(impl_->grad.defined() || !unwritten, "an unwritten gradient needs a grad() buffer");
  if (impl_->grad.defined()) impl_->grad.impl()->unwritten_gradient = unwritten;
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined()) {
    SSA_CHECK(grad.shape() == shape() && grad.device() == device(),
              "gradient {} does not match tensor {}", grad.shape().str(), shape().str());
  }
  impl_->grad = grad;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_->grad_fn; }

int Tensor::output_index() const { return impl_->output_index; }

void Tensor::set_grad_fn(std::shared_ptr<Node> node, int output_index) const {
  impl_->grad_fn = std::move(node);
  impl_->output_index = output_index;
}

Tensor Tensor::detach() const { return view(0, shape()); }

Tensor Tensor::graph_link() const {
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->shape = impl_->shape;
  t.impl_->dtype = impl_->dtype;
  t.impl_->requires_grad = impl_->requires_grad;
  t.impl_->grad_fn = impl_->grad_fn;
  t.impl_->output_index = impl_->output_index;
  t.impl_->link_device = device();
  return t;
}

const std::string& Tensor::name() const { return impl_->name; }

const Tensor& Tensor::set_name(std::string name) const {
  impl_->name = std::move(name);
  return *this;
}

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  SSA_CHECK(t.shape() == expected, "{}: expected shape {}, got {}", what, expected.str(),
            t.shape().str());
}

void check_same_kind(std::initializer_list<const Tensor*> tensors, const char* op) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* t : tensors) {
    SSA_CHECK(t->dtype() == first.dtype() && t->device() == first.device(),
              "{}: mixed inputs ({} on {} vs {} on {})", op, dtype_name(t->dtype()),
              device_name(t->device()), dtype_name(first.dtype()), device_name(first.device()));
  }
}

}  // namespace ssa
