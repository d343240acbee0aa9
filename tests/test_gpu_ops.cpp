// CPU-vs-GPU parity of every non-attention op, forward and every input gradient, in f32 and bf16,
// and bit-reproducibility of two GPU runs. The reference is the CPU op in f64 on the same input
// values (rounded to the GPU dtype first), so the error measures the GPU arithmetic alone.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "op_test_util.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gate.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/smooth_l1.h"
#include "ops/swiglu.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// Error = max |gpu − reference| / max |reference|, per output and per gradient.
// f32: fp32 kernels (cuBLAS without TF32) against f64; sums of a few thousand terms stay ~1e-6.
constexpr double kF32Tolerance = 1e-4;
// bf16: each stored result rounds once to 8 bits (2^-9 relative); two such roundings of the
// largest value, 2^-7, bound what fp32 arithmetic on the same bf16 inputs may add.
constexpr double kBf16Tolerance = 8e-3;

struct OpCase {
  std::string name;
  OpFn f;
  std::vector<Tensor> inputs;  // CPU; float inputs f64, ids i32; requires_grad marks gradients
};

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

// The output of f on `inputs` moved to (dtype, device), then the gradient of every input that
// requires grad after backward() from `upstream`.
std::vector<Tensor> run(const OpFn& f, const std::vector<Tensor>& inputs, const Tensor& upstream,
                        DType dtype, Device device) {
  std::vector<Tensor> moved;
  for (const Tensor& t : inputs) {
    Tensor m = converted(t, t.dtype() == DType::i32 ? DType::i32 : dtype, device);
    m.set_requires_grad(t.requires_grad());
    moved.push_back(m);
  }
  Tensor y = f(moved);
  std::vector<Tensor> results{y.detach()};
  backward(y, converted(upstream, y.dtype(), device));
  for (const Tensor& m : moved)
    if (m.requires_grad()) results.push_back(m.grad());
  return results;
}

double scaled_error(const Tensor& got, const Tensor& want) {
  std::vector<double> g = got.to_vector(), w = want.to_vector();
  REQUIRE(g.size() == w.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i]) != std::isnan(w[i])) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return scale == 0 ? worst : worst / scale;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
  return x.dtype() == y.dtype() && x.shape() == y.shape() &&
         std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

// Checks the parity of one op in one GPU dtype, and that a second GPU run gives the same bits;
// prints the errors (output first, then the gradients in input order).
void check_parity(const OpCase& c, DType dtype, double tolerance) {
  CAPTURE(c.name);
  CAPTURE(dtype_name(dtype));
  std::vector<Tensor> inputs;
  for (const Tensor& t : c.inputs) inputs.push_back(rounded(t, dtype));
  Tensor shape_probe;
  {
    NoGrad no_grad;
    shape_probe = c.f(inputs);
  }
  Tensor upstream = rounded(random_tensor(shape_probe.shape(), 77, DType::f64, false), dtype);
  std::vector<Tensor> reference = run(c.f, inputs, upstream, DType::f64, Device::cpu);
  std::vector<Tensor> first = run(c.f, inputs, upstream, dtype, Device::cuda);
  std::vector<Tensor> second = run(c.f, inputs, upstream, dtype, Device::cuda);
  REQUIRE(first.size() == reference.size());
  std::string line;
  for (size_t k = 0; k < reference.size(); ++k) {
    CAPTURE(k);
    const double error = scaled_error(first[k], reference[k]);
    CHECK(error <= tolerance);
    CHECK(bit_identical(first[k], second[k]));
    line += fmt::format(" {:.1e}", error);
  }
  std::printf("parity %-26s %-4s%s\n", c.name.c_str(), std::string(dtype_name(dtype)).c_str(),
              line.c_str());
}

void check_both_dtypes(const OpCase& c) {
  check_parity(c, DType::f32, kF32Tolerance);
  check_parity(c, DType::bf16, kBf16Tolerance);
}

Tensor input(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return random_tensor(shape, seed, DType::f64, true, scale);
}

// Targets in [0, vocab) with every `ignored_every`-th row set to ignore_index −1.
Tensor targets_with_ignored(int64_t rows, int64_t vocab, uint64_t seed, int64_t ignored_every) {
  Tensor t = random_ids({rows}, vocab, seed);
  for (int64_t r = 0; r < rows; r += ignored_every) t.data<int32_t>()[r] = -1;
  return t;
}

}  // namespace

TEST_CASE("gpu parity: add, mul, scale") {
  check_both_dtypes({"add", [](const auto& x) { return add(x[0], x[1]); },
                     {input({3, 37}, 1), input({3, 37}, 2)}});
  check_both_dtypes({"mul", [](const auto& x) { return mul(x[0], x[1]); },
                     {input({5, 29}, 3), input({5, 29}, 4)}});
  check_both_dtypes({"scale", [](const auto& x) { return scale(x[0], 0.37); }, {input({7, 13}, 5)}});
}

TEST_CASE("gpu parity: sum and mean, small and over many blocks") {
  check_both_dtypes({"sum 1001", [](const auto& x) { return sum(x[0]); }, {input({1001}, 6)}});
  check_both_dtypes(
      {"sum 2^20+3", [](const auto& x) { return sum(x[0]); }, {input({(1 << 20) + 3}, 7)}});
  check_both_dtypes({"mean", [](const auto& x) { return mean(x[0]); }, {input({3, 333}, 8)}});
}

TEST_CASE("gpu parity: linear and matmul with every transpose") {
  check_both_dtypes({"linear [2,13,67]x[45,67]", [](const auto& x) { return linear(x[0], x[1]); },
                     {input({2, 13, 67}, 9), input({45, 67}, 10)}});
  check_both_dtypes({"linear [37,129]x[257,129]", [](const auto& x) { return linear(x[0], x[1]); },
                     {input({37, 129}, 11), input({257, 129}, 12)}});
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Shape a = ta ? Shape{3, 29, 17} : Shape{3, 17, 29};
      const Shape b = tb ? Shape{3, 23, 29} : Shape{3, 29, 23};
      check_both_dtypes({fmt::format("matmul ta={} tb={}", ta, tb),
                         [ta, tb](const auto& x) { return matmul(x[0], x[1], ta, tb); },
                         {input(a, 13), input(b, 14)}});
    }
  }
}

TEST_CASE("gpu parity: embedding, with repeated ids") {
  auto lookup = [](const auto& x) { return embedding(x[0], x[1]); };
  check_both_dtypes({"embedding v37 (repeats)", lookup,
                     {random_ids({2, 45}, 37, 15), input({37, 19}, 16)}});
  check_both_dtypes({"embedding v1000 d64", lookup,
                     {random_ids({3, 100}, 1000, 17), input({1000, 64}, 18)}});
}

TEST_CASE("gpu parity: rmsnorm, input and weight gradients") {
  auto norm = [](const auto& x) { return rmsnorm(x[0], x[1], 1e-5); };
  check_both_dtypes({"rmsnorm [2,13,97]", norm, {input({2, 13, 97}, 19), input({97}, 20)}});
  check_both_dtypes({"rmsnorm [1000,65]", norm, {input({1000, 65}, 21), input({65}, 22)}});
}

TEST_CASE("gpu parity: rope, with an offset (bf16 x uses an f32 table)") {
  auto rotate = [](const auto& x) {
    const DType table_dtype = x[0].dtype() == DType::bf16 ? DType::f32 : x[0].dtype();
    return rope(x[0], rope_table(40, 16, 10000.0, table_dtype, x[0].device()), 5);
  };
  check_both_dtypes({"rope [2,13,3,16] +5", rotate, {input({2, 13, 3, 16}, 23)}});
}

TEST_CASE("gpu parity: swiglu and head_gate") {
  check_both_dtypes({"swiglu", [](const auto& x) { return swiglu(x[0], x[1]); },
                     {input({3, 41}, 24, 4.0), input({3, 41}, 25)}});
  check_both_dtypes({"head_gate [2,13,3,37]", [](const auto& x) { return head_gate(x[0], x[1]); },
                     {input({2, 13, 3, 37}, 26), input({2, 13, 3}, 27, 3.0)}});
}

TEST_CASE("gpu parity: cross_entropy, odd vocabularies, ignore_index and divisor") {
  auto mean_loss = [](const auto& x) { return cross_entropy(x[0], x[1]); };
  auto summed = [](const auto& x) { return cross_entropy(x[0], x[1], 100.0); };
  check_both_dtypes({"cross_entropy v1037", mean_loss,
                     {input({37, 1037}, 28, 4.0), targets_with_ignored(37, 1037, 29, 5)}});
  check_both_dtypes({"cross_entropy v1037 /100", summed,
                     {input({37, 1037}, 30, 4.0), targets_with_ignored(37, 1037, 31, 4)}});
  check_both_dtypes({"cross_entropy v50257", mean_loss,
                     {input({19, 50257}, 32, 4.0), targets_with_ignored(19, 50257, 33, 7)}});
  check_both_dtypes({"cross_entropy all ignored", mean_loss,
                     {input({5, 33}, 34), targets_with_ignored(5, 33, 35, 1)}});
}

TEST_CASE("gpu parity: smooth_l1 (beta 1 and plain L1)") {
  check_both_dtypes({"smooth_l1 beta=1", [](const auto& x) { return smooth_l1(x[0], x[1], 1.0); },
                     {input({5, 77}, 36, 2.0), input({5, 77}, 37, 2.0)}});
  check_both_dtypes({"smooth_l1 beta=0", [](const auto& x) { return smooth_l1(x[0], x[1], 0.0); },
                     {input({5, 77}, 38, 2.0), input({5, 77}, 39, 2.0)}});
}

TEST_CASE("gpu ops name themselves on bad input") {
  Tensor table = Tensor::zeros({10, 4}, DType::f32, Device::cuda);
  Tensor ids = Tensor::from({1, 10, 2}, {3}, DType::i32).to(Device::cuda);
  CHECK_THROWS_WITH_AS(embedding(ids, table),
                       "embedding: id 10 at position 1 of ids [3] is outside the vocabulary [0, 10)",
                       Error);
  Tensor targets = Tensor::from({0, -1, 12}, {3}, DType::i32).to(Device::cuda);
  CHECK_THROWS_WITH_AS(
      cross_entropy(table.view(0, {3, 10}), targets),
      "cross_entropy: target 12 of row 2 is outside [0, 10) and is not ignore_index -1", Error);
  Tensor f64 = Tensor::zeros({4}, DType::f64, Device::cuda);
  CHECK_THROWS_WITH_AS(add(f64, f64),
                       "add: dtype f64 is not supported on CUDA (expected f32 or bf16)", Error);
}
