#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/cross_entropy.h"
#include "cuda/reduce.h"
#endif

namespace ssa {
namespace {

constexpr int64_t kParallelElements = 1 << 16;  // smaller problems run on one thread

struct Targets {
  const int32_t* target;
  int ignore_index;
  bool counted(int64_t row) const { return target[row] != ignore_index; }
};

[[noreturn]] void invalid_target(const Tensor& targets, int64_t row, int64_t vocab,
                                 int ignore_index) {
  fail("cross_entropy: target {} of row {} is outside [0, {}) and is not ignore_index {}",
       targets.at(row), row, vocab, ignore_index);
}

// The number of rows whose target is not ignore_index; raises for an invalid target.
int64_t counted_rows(const Tensor& targets, int64_t vocab, int ignore_index) {
  if (!targets.is_cpu()) {
    int64_t counted = 0;
    SSA_ON_CUDA("cross_entropy", {
      const cuda::IdScan scan =
          cuda::scan_ids(targets.data<int32_t>(), targets.numel(), vocab, ignore_index);
      if (scan.first_invalid >= 0) invalid_target(targets, scan.first_invalid, vocab, ignore_index);
      counted = scan.counted;
    });
    return counted;
  }
  const int32_t* target = targets.data<int32_t>();
  int64_t counted = 0;
  for (int64_t row = 0; row < targets.numel(); ++row) {
    if (target[row] == ignore_index) continue;
    if (target[row] < 0 || target[row] >= vocab) invalid_target(targets, row, vocab, ignore_index);
    ++counted;
  }
  return counted;
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
double total_loss(const T* logits, int64_t rows, int64_t vocab, Targets targets, double* lse) {
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
                   const double* lse, double factor) {
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

// lse: each row's log-sum-exp, f64 on the CPU, f32 on CUDA.
struct CrossEntropyNode : Node {
  Tensor logits, targets, lse;
  int ignore_index;
  double denominator;  // 0 when no row counts: the loss is the constant 0
  CrossEntropyNode(Tensor logits_, Tensor targets_, Tensor lse_, int ignore, double denominator_)
      : logits(std::move(logits_)),
        targets(std::move(targets_)),
        lse(std::move(lse_)),
        ignore_index(ignore),
        denominator(denominator_) {}
  const char* name() const override { return "cross_entropy"; }
  // dlogits is written over the logits when nothing but this node holds them (the kernels read
  // each element before they write it): the step then holds one [N, V] tensor, not two.
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor grad = logits.sole_holder()
                      ? logits.detach()
                      : Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    if (!g.is_cpu()) {
      SSA_ON_CUDA(
          "cross_entropy backward",
          cuda::cross_entropy_backward(logits.raw(), targets.data<int32_t>(), lse.data<float>(),
                                       g.raw(), g.dtype(), denominator, grad.raw(), logits.dtype(),
                                       {logits.dim(0), logits.dim(1), ignore_index}));
      return {grad};
    }
    const double factor = denominator == 0 ? 0 : g.item() / denominator;
    dispatch_float(logits, "cross_entropy backward", [&](auto zero) {
      using T = decltype(zero);
      loss_gradient(logits.data<T>(), grad.data<T>(), logits.dim(0), logits.dim(1),
                    Targets{targets.data<int32_t>(), ignore_index}, lse.data<double>(), factor);
    });
    return {grad};
  }
  void release() override { logits = targets = lse = Tensor(); }
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
  const int64_t counted = counted_rows(targets, vocab, ignore_index);
  const double denominator = divisor > 0 ? divisor : static_cast<double>(counted);
  Tensor loss, lse;
  if (logits.is_cpu()) {
    lse = Tensor::zeros({rows}, DType::f64);
    const double total = dispatch_float(logits, "cross_entropy", [&](auto zero) {
      using T = decltype(zero);
      return total_loss(logits.data<T>(), rows, vocab,
                        Targets{targets.data<int32_t>(), ignore_index}, lse.data<double>());
    });
    loss = Tensor::scalar(denominator == 0 ? 0.0 : total / denominator, logits.dtype());
  } else {
    lse = Tensor::empty({rows}, DType::f32, logits.device());
    loss = Tensor::empty(Shape{}, reduced_dtype(logits.dtype()), logits.device());
    SSA_ON_CUDA("cross_entropy",
                cuda::cross_entropy_forward(logits.raw(), targets.data<int32_t>(), logits.dtype(),
                                            {rows, vocab, ignore_index}, denominator,
                                            lse.data<float>(), loss.raw(), loss.dtype()));
  }
  if (!should_record({&logits})) return loss;
  return record(loss,
                std::make_shared<CrossEntropyNode>(logits.detach(), targets, std::move(lse),
                                                   ignore_index, denominator),
                {logits});
}

}  // namespace ssa
