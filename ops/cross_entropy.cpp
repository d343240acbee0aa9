#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/dispatch.h"

namespace ssa {
namespace {

constexpr int64_t kParallelElements = 1 << 16;  // smaller problems run on one thread

struct Targets {
  const int32_t* target;
  int ignore_index;
  bool counted(int64_t row) const { return target[row] != ignore_index; }
};

void check_targets(const Tensor& targets, int64_t vocab, int ignore_index) {
  const int32_t* target = targets.data<int32_t>();
  for (int64_t row = 0; row < targets.numel(); ++row) {
    if (target[row] != ignore_index && (target[row] < 0 || target[row] >= vocab))
      fail("cross_entropy: target {} of row {} is outside [0, {}) and is not ignore_index {}",
           target[row], row, vocab, ignore_index);
  }
}

double counted_rows(const Tensor& targets, int ignore_index) {
  const int32_t* target = targets.data<int32_t>();
  return static_cast<double>(std::count_if(target, target + targets.numel(),
                                           [&](int32_t t) { return t != ignore_index; }));
}

// log Σ_v exp(x[v]) = max + log Σ_v exp(x[v] − max); the sum in double.
template <typename T>
double log_sum_exp(const T* x, int64_t n) {
  const T max = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t v = 0; v < n; ++v) sum += std::exp(x[v] - max);
  return max + std::log(sum);
}

// Σ over counted rows of −log softmax(x)[target] = log_sum_exp − x[target]; fills each counted
// row's log_sum_exp for backward. Rows run in parallel, the sum in row order.
template <typename T>
double total_loss(const T* logits, int64_t rows, int64_t vocab, Targets targets,
                  std::vector<double>& lse) {
#pragma omp parallel for schedule(static) if (rows * vocab >= kParallelElements)
  for (int64_t row = 0; row < rows; ++row)
    if (targets.counted(row)) lse[row] = log_sum_exp(logits + row * vocab, vocab);
  double total = 0;
  for (int64_t row = 0; row < rows; ++row)
    if (targets.counted(row)) total += lse[row] - logits[row * vocab + targets.target[row]];
  return total;
}

// dlogits[n] = (softmax(logits[n]) − onehot(target[n])) · factor; zero for ignored rows.
template <typename T>
void loss_gradient(const T* logits, T* grad, int64_t rows, int64_t vocab, Targets targets,
                   const std::vector<double>& lse, double factor) {
#pragma omp parallel for schedule(static) if (rows * vocab >= kParallelElements)
  for (int64_t row = 0; row < rows; ++row) {
    const T* x = logits + row * vocab;
    T* dx = grad + row * vocab;
    if (!targets.counted(row)) {
      std::fill_n(dx, vocab, T{0});
      continue;
    }
    const T row_lse = static_cast<T>(lse[row]), row_factor = static_cast<T>(factor);
    for (int64_t v = 0; v < vocab; ++v) dx[v] = std::exp(x[v] - row_lse) * row_factor;
    dx[targets.target[row]] -= row_factor;
  }
}

struct CrossEntropyNode : Node {
  Tensor logits, targets;
  std::vector<double> lse;
  int ignore_index;
  double denominator;  // 0 when no row counts: the loss is the constant 0
  CrossEntropyNode(Tensor logits_, Tensor targets_, std::vector<double> lse_, int ignore,
                   double denominator_)
      : logits(std::move(logits_)),
        targets(std::move(targets_)),
        lse(std::move(lse_)),
        ignore_index(ignore),
        denominator(denominator_) {}
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor grad = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    const double factor = denominator == 0 ? 0 : g.item() / denominator;
    dispatch_float(logits, "cross_entropy backward", [&](auto zero) {
      using T = decltype(zero);
      loss_gradient(logits.data<T>(), grad.data<T>(), logits.dim(0), logits.dim(1),
                    Targets{targets.data<int32_t>(), ignore_index}, lse, factor);
    });
    return {grad};
  }
  void release() override {
    logits = targets = Tensor();
    lse = {};
  }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double divisor,
                     int ignore_index) {
  SSA_CHECK(logits.rank() == 2 && logits.dim(1) > 0 && targets.rank() == 1 &&
                targets.dim(0) == logits.dim(0),
            "cross_entropy: logits {} and targets {} (expected logits [N, V], V > 0, targets [N])",
            logits.shape().str(), targets.shape().str());
  SSA_CHECK(targets.dtype() == DType::i32 && targets.device() == logits.device(),
            "cross_entropy: targets must be i32 on the logits' device, got {} on {}",
            dtype_name(targets.dtype()), device_name(targets.device()));
  SSA_CHECK(divisor >= 0, "cross_entropy: divisor {} is negative", divisor);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  std::vector<double> lse(static_cast<size_t>(rows), 0.0);
  const double total = dispatch_float(logits, "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    check_targets(targets, vocab, ignore_index);
    return total_loss(logits.data<T>(), rows, vocab, Targets{targets.data<int32_t>(), ignore_index},
                      lse);
  });
  const double denominator = divisor > 0 ? divisor : counted_rows(targets, ignore_index);
  Tensor loss =
      Tensor::scalar(denominator == 0 ? 0.0 : total / denominator, logits.dtype(), logits.device());
  if (!should_record({&logits})) return loss;
  return record(loss,
                std::make_shared<CrossEntropyNode>(logits.detach(), targets, std::move(lse),
                                                   ignore_index, denominator),
                {logits});
}

}  // namespace ssa
