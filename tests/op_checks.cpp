#include "op_checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ops/linear.h"
#include "ops/swiglu.h"

namespace ssa::test {
namespace {

Tensor converted(const Tensor& t, DType dtype, Device device) {
  Tensor out = Tensor::empty(t.shape(), dtype, device);
  out.copy_from(t);
  return out;
}

// t rounded to dtype, back in f64 on the CPU (ids unchanged).
Tensor rounded(const Tensor& t, DType dtype) {
  if (t.dtype() == DType::i32) return t;
  Tensor r = converted(converted(t, dtype, Device::cpu), DType::f64, Device::cpu);
  r.set_requires_grad(t.requires_grad());
  return r;
}

// The output of the case on `inputs` moved to (dtype, device), then, for an op with a gradient,
// the gradient of every input that requires grad after backward() from a random output gradient
// rounded to `upstream_dtype`.
std::vector<Tensor> run(Op op, const OpCase& c, const std::vector<Tensor>& inputs,
                        DType upstream_dtype, DType dtype, Device device) {
  std::vector<Tensor> moved;
  for (const Tensor& t : inputs) {
    Tensor m = converted(t, t.dtype() == DType::i32 ? DType::i32 : dtype, device);
    m.set_requires_grad(t.requires_grad());
    moved.push_back(m);
  }
  const Tensor y = c.f(moved);
  std::vector<Tensor> results{y.detach()};
  if (!op_info(op).has_gradient) return results;
  const Tensor upstream = rounded(random_tensor(y.shape(), 77, DType::f64, false), upstream_dtype);
  backward(y, converted(upstream, y.dtype(), device));
  for (const Tensor& m : moved) {
    if (!m.requires_grad()) continue;
    REQUIRE_MESSAGE(m.grad().defined(), "no gradient reached input ", m.shape().str());
    results.push_back(m.grad());
  }
  return results;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
  return x.dtype() == y.dtype() && x.shape() == y.shape() &&
         (x.nbytes() == 0 || std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0);
}

// How many values of `got` differ from the reference rounded to got's dtype.
int64_t mismatches(const Tensor& got, const Tensor& reference) {
  const std::vector<double> g = got.to_vector(),
                            want = converted(reference, got.dtype(), Device::cpu).to_vector();
  int64_t count = 0;
  for (size_t i = 0; i < g.size(); ++i) count += g[i] != want[i];
  return count;
}

// Checks one result; returns its error for the log.
std::string check_result(const Tensor& got, const Tensor& reference, double tolerance) {
  CHECK(got.shape() == reference.shape());
  if (got.shape() != reference.shape()) return " shape";
  if (tolerance == 0) {
    const int64_t differing = mismatches(got, reference);
    CHECK_MESSAGE(differing == 0, differing, " of ", got.numel(), " values differ");
    return fmt::format(" {}/{}", differing, got.numel());
  }
  const double error = relative_error(got.to_vector(), reference.to_vector());
  CHECK(error <= tolerance);
  return fmt::format(" {:.1e}", error);
}

}  // namespace

void check_case_gradients(const OpCase& c) {
  std::vector<Tensor> floats;
  std::vector<size_t> positions;  // of the float inputs among c.inputs
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (c.inputs[i].dtype() == DType::i32) continue;
    floats.push_back(c.inputs[i]);
    positions.push_back(i);
  }
  check_gradients(
      [&](const std::vector<Tensor>& x) {
        std::vector<Tensor> all = c.inputs;
        for (size_t k = 0; k < x.size(); ++k) all[positions[k]] = x[k];
        return c.f(all);
      },
      floats);
}

std::string check_parity(Op op, const OpCase& c, DType dtype, Device device, double tolerance) {
  std::vector<Tensor> inputs;
  for (const Tensor& t : c.inputs) inputs.push_back(rounded(t, dtype));
  const std::vector<Tensor> reference = run(op, c, inputs, dtype, DType::f64, Device::cpu);
  const std::vector<Tensor> first = run(op, c, inputs, dtype, dtype, device);
  const std::vector<Tensor> second = run(op, c, inputs, dtype, dtype, device);
  CHECK(first.size() == reference.size());
  std::string errors;
  for (size_t k = 0; k < std::min(first.size(), reference.size()); ++k) {
    CAPTURE(k);  // 0: the output, then the gradients in input order
    errors += check_result(first[k], reference[k], tolerance);
    CHECK(first[k].device() == device);
    if (k > 0) CHECK(first[k].dtype() == dtype);  // a gradient has its input's dtype
    CHECK(bit_identical(first[k], second[k]));
  }
  return errors;
}

void check_swiglu_linear_bits(Device device, DType dtype, int64_t hidden, int64_t out) {
  auto leaf = [&](const Shape& shape, uint64_t seed, double scale) {
    Tensor t = converted(random_tensor(shape, seed, DType::f64, false, scale), dtype, device);
    t.set_requires_grad(true);
    return t;
  };
  const Shape rows{3, 5, hidden};
  std::vector<Tensor> fused{leaf(rows, 31, 4.0), leaf(rows, 32, 1.0), leaf({out, hidden}, 33, 1.0)};
  std::vector<Tensor> separate;
  for (const Tensor& t : fused) {
    separate.push_back(t.detach().clone());
    separate.back().set_requires_grad(true);
  }
  const Tensor y = swiglu_linear(fused[0], fused[1], fused[2]);
  const Tensor y_separate = linear(swiglu(separate[0], separate[1]), separate[2]);
  CHECK(y.to_vector() == y_separate.to_vector());
  const Tensor dy = converted(random_tensor(y.shape(), 34, DType::f64, false), dtype, device);
  backward(y, dy);
  backward(y_separate, dy);
  for (size_t i = 0; i < fused.size(); ++i) {
    CAPTURE(i);
    CHECK(fused[i].grad().to_vector() == separate[i].grad().to_vector());
  }
}

}  // namespace ssa::test
