// The engine tested on its own, with two tiny ops defined here (elementwise mul and sum).
#include <doctest/doctest.h>

#include <utility>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "core/allocator.h"

using namespace ssa;

namespace {

int g_live_nodes = 0;

Tensor test_mul(const Tensor& a, const Tensor& b);

struct MulNode : Node {
  Tensor a, b;
  MulNode(Tensor a_, Tensor b_) : a(std::move(a_)), b(std::move(b_)) { ++g_live_nodes; }
  ~MulNode() override { --g_live_nodes; }
  const char* name() const override { return "test_mul"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    NoGrad no_grad;
    return {test_mul(g, b), test_mul(g, a)};
  }
  void release() override { a = b = Tensor(); }
};

Tensor test_mul(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), DType::f64);
  for (int64_t i = 0; i < a.numel(); ++i)
    out.data<double>()[i] = a.data<double>()[i] * b.data<double>()[i];
  if (!should_record({&a, &b})) return out;
  return record(out, std::make_shared<MulNode>(a.detach(), b.detach()), {a, b});
}

struct SumNode : Node {
  Shape shape;
  explicit SumNode(Shape s) : shape(s) { ++g_live_nodes; }
  ~SumNode() override { --g_live_nodes; }
  const char* name() const override { return "test_sum"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {Tensor::full(shape, g.item(), DType::f64)};
  }
};

Tensor test_sum(const Tensor& a) {
  double total = 0;
  for (double v : a.to_vector()) total += v;
  Tensor out = Tensor::scalar(total, DType::f64);
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<SumNode>(a.shape()), {a});
}

// Two outputs of one node: 2a and 3a. Counts its backward runs and the gradients it got.
int g_split_runs = 0, g_split_gradients = 0;

struct SplitNode : MultiOutputNode {
  const char* name() const override { return "test_split"; }
  std::vector<Tensor> backward_outputs(const std::vector<Tensor>& grads) override {
    ++g_split_runs;
    Tensor da = Tensor::zeros(grads[0].defined() ? grads[0].shape() : grads[1].shape(), DType::f64);
    for (int i = 0; i < 2; ++i) {
      if (!grads[i].defined()) continue;
      ++g_split_gradients;
      for (int64_t j = 0; j < da.numel(); ++j) da.data<double>()[j] += (2 + i) * grads[i].at(j);
    }
    return {da};
  }
};

std::pair<Tensor, Tensor> test_split(const Tensor& a) {
  Tensor twice = Tensor::empty(a.shape(), DType::f64),
         thrice = Tensor::empty(a.shape(), DType::f64);
  for (int64_t i = 0; i < a.numel(); ++i) {
    twice.data<double>()[i] = 2 * a.at(i);
    thrice.data<double>()[i] = 3 * a.at(i);
  }
  record_outputs({twice, thrice}, std::make_shared<SplitNode>(), {a});
  return {twice, thrice};
}

Tensor leaf(std::vector<double> values) {
  Tensor t = Tensor::from(values, Shape{static_cast<int64_t>(values.size())}, DType::f64);
  t.set_requires_grad(true);
  return t;
}

// c·a, whose backward adds c·g into the gradient pending for a when backward() offers it
// (counting the offers), and keeps each gradient it returns when g_keep_returned is set.
int g_offers = 0;
bool g_keep_returned = false;
std::vector<Tensor> g_kept;

struct ScaleNode : Node {
  double c;
  explicit ScaleNode(double c_) : c(c_) {}
  const char* name() const override { return "test_scale"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor grad = pending_gradient(inputs()[0]);
    if (grad.defined()) {
      ++g_offers;
      for (int64_t i = 0; i < g.numel(); ++i) grad.data<double>()[i] += c * g.at(i);
    } else {
      grad = Tensor::empty(g.shape(), DType::f64);
      for (int64_t i = 0; i < g.numel(); ++i) grad.data<double>()[i] = c * g.at(i);
    }
    if (g_keep_returned) g_kept.push_back(grad);
    return {grad};
  }
};

Tensor test_scale(const Tensor& a, double c) {
  Tensor out = Tensor::empty(a.shape(), DType::f64);
  for (int64_t i = 0; i < a.numel(); ++i) out.data<double>()[i] = c * a.at(i);
  if (!should_record({&a})) return out;
  return record(out, std::make_shared<ScaleNode>(c), {a});
}

// a itself, whose backward gives a its gradient and b none (b only rides along in the graph).
struct FirstNode : Node {
  const char* name() const override { return "test_first"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g, Tensor()}; }
};

Tensor test_first(const Tensor& a, const Tensor& b) {
  Tensor out = a.detach().clone();
  return record(out, std::make_shared<FirstNode>(), {a, b});
}

}  // namespace

TEST_CASE("a tensor used twice gets the sum of both gradients") {
  Tensor x = leaf({2, 3});
  backward(test_sum(test_mul(x, x)));  // d(x^2)/dx = 2x
  CHECK(x.grad().at(0) == 4.0);
  CHECK(x.grad().at(1) == 6.0);
}

TEST_CASE("a node of two outputs runs once, with the gradient of each output or none") {
  g_split_runs = g_split_gradients = 0;
  Tensor x = leaf({1, -2});
  auto [twice, thrice] = test_split(x);
  backward(test_sum(test_mul(twice, thrice)));  // Σ 6x²
  CHECK(g_split_runs == 1);
  CHECK(g_split_gradients == 2);
  CHECK(x.grad().at(0) == 12.0);
  CHECK(x.grad().at(1) == -24.0);

  g_split_runs = g_split_gradients = 0;
  Tensor y = leaf({3, 1});
  auto [unused, used] = test_split(y);
  backward(test_sum(test_mul(used, used)));  // Σ 9y²: the first output gets no gradient
  CHECK(g_split_runs == 1);
  CHECK(g_split_gradients == 1);
  CHECK(y.grad().at(0) == 54.0);

  // backward(g) is backward_outputs({g, none}).
  g_split_runs = g_split_gradients = 0;
  auto [first, second] = test_split(leaf({1, 2}));
  const std::vector<Tensor> grads =
      first.grad_fn()->backward(Tensor::from({1, -1}, {2}, DType::f64));
  CHECK(g_split_gradients == 1);
  CHECK(grads[0].at(0) == 2.0);
  CHECK(grads[0].at(1) == -2.0);
}

TEST_CASE("a node may add its gradient into the one pending for its input, held by nothing else") {
  for (const bool keep : {false, true}) {
    g_offers = 0;
    g_keep_returned = keep;
    Tensor x = leaf({1, 2});
    Tensor h = test_mul(x, x);  // h = x², made by an op; y = (2h)(3h) = 6x⁴
    backward(test_sum(test_mul(test_scale(h, 2), test_scale(h, 3))));
    CHECK(g_offers == (keep ? 0 : 1));  // a kept gradient is never offered
    CHECK(x.grad().at(0) == 24.0);
    CHECK(x.grad().at(1) == 192.0);
    g_kept.clear();
  }
  g_keep_returned = false;
  g_offers = 0;
  Tensor x = leaf({1, 2});
  backward(test_sum(test_scale(x, 2)));  // a leaf: its gradient is never pending
  CHECK(g_offers == 0);
  CHECK(x.grad().at(1) == 2.0);
}

TEST_CASE("diamond graph: two paths from one activation") {
  Tensor x = leaf({1.5, -2});
  Tensor w = leaf({3, 4});
  Tensor h = test_mul(x, w);               // h = xw
  Tensor y = test_mul(h, test_mul(h, x));  // y = h * h * x = x^3 w^2
  backward(test_sum(y));
  CHECK(x.grad().at(0) == doctest::Approx(3 * 1.5 * 1.5 * 9));
  CHECK(w.grad().at(1) == doctest::Approx(2 * -8.0 * 4));
}

TEST_CASE("parameter gradients accumulate across backward calls until zeroed") {
  Tensor x = leaf({1, 2});
  Tensor c = Tensor::from({5, 7}, {2}, DType::f64);
  backward(test_sum(test_mul(x, c)));
  backward(test_sum(test_mul(x, c)));
  CHECK(x.grad().at(0) == 10.0);
  CHECK(x.grad().at(1) == 14.0);
  x.grad().zero();
  backward(test_sum(test_mul(x, c)));
  CHECK(x.grad().at(1) == 7.0);
}

TEST_CASE("a preset gradient view is accumulated in place (flat gradient buffer)") {
  Tensor flat_grad = Tensor::zeros({4}, DType::f64);
  Tensor x = leaf({1, 2});
  x.set_grad(flat_grad.view(2, {2}));
  backward(test_sum(test_mul(x, x)));
  CHECK(flat_grad.at(2) == 2.0);
  CHECK(flat_grad.at(3) == 4.0);
  CHECK(flat_grad.at(0) == 0.0);
}

TEST_CASE("an unwritten gradient is overwritten by the first gradient, then accumulated") {
  Tensor flat_grad = Tensor::full({4}, 99.0, DType::f64);  // stale values, never zeroed
  Tensor x = leaf({1, 2}), y = leaf({3, 4});
  x.set_grad(flat_grad.view(0, {2}));
  y.set_grad(flat_grad.view(2, {2}));
  x.set_grad_unwritten(true);
  y.set_grad_unwritten(true);
  backward(test_sum(test_mul(test_first(x, y), x)));  // Σ x²; y reached, given no gradient
  CHECK(!x.grad_unwritten());
  CHECK(!y.grad_unwritten());
  CHECK(flat_grad.to_vector() == std::vector<double>{2, 4, 0, 0});
  backward(test_sum(test_mul(x, y)));  // written now: added to
  CHECK(flat_grad.to_vector() == std::vector<double>{5, 8, 1, 2});
}

TEST_CASE("no-grad records nothing and detach stops the gradient") {
  Tensor x = leaf({1, 2});
  {
    NoGrad no_grad;
    Tensor y = test_mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK_FALSE(y.grad_fn());
  }
  CHECK(grad_enabled());
  Tensor y = test_mul(x, x.detach());  // gradient only through the first factor
  backward(test_sum(y));
  CHECK(x.grad().at(1) == 2.0);
}

TEST_CASE("backward frees the graph and cannot run twice") {
  g_live_nodes = 0;
  Tensor x = leaf({1, 2});
  {
    Tensor loss = test_sum(test_mul(test_mul(x, x), x));
    CHECK(g_live_nodes == 3);
    backward(loss);
    CHECK(g_live_nodes == 0);
    CHECK_THROWS_AS(backward(loss), Error);
  }
}

TEST_CASE("a node keeps an op-made input as a graph link: freed when its holders drop it") {
  Tensor x = leaf({1, 2, 3, 4});
  const size_t before = host_memory_stats().allocated;
  Tensor squared = test_mul(x, x);                         // saves x (a leaf, held anyway)
  const Tensor loss = test_sum(test_scale(squared, 3.0));  // neither saves its input
  const size_t held = host_memory_stats().allocated;
  squared = Tensor();
  CHECK(host_memory_stats().allocated == held - 4 * sizeof(double));
  backward(loss);
  CHECK(x.grad().to_vector() == std::vector<double>{6, 12, 18, 24});
  CHECK(host_memory_stats().allocated >= before);
}

TEST_CASE("gradcheck accepts a right backward and reports a wrong one") {
  Tensor a = leaf({0.3, -1.2, 2.0});
  Tensor b = leaf({1.1, 0.4, -0.7});
  auto f = [](const std::vector<Tensor>& in) { return test_mul(in[0], in[1]); };
  GradcheckResult good = gradcheck(f, {a, b});
  CHECK_MESSAGE(good.ok, good.report);

  struct WrongNode : Node {
    const char* name() const override { return "wrong"; }
    std::vector<Tensor> backward(const Tensor& g) override { return {g.clone()}; }  // should be 2g
  };
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor out = in[0].clone();
    for (int64_t i = 0; i < out.numel(); ++i) out.data<double>()[i] *= 2;
    if (!should_record({&in[0]})) return out;
    return record(out, std::make_shared<WrongNode>(), {in[0]});
  };
  GradcheckResult bad = gradcheck(wrong, {a});
  CHECK_FALSE(bad.ok);
  CHECK(bad.report.find("input 0") != std::string::npos);
}
