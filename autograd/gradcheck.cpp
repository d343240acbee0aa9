#include "autograd/gradcheck.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/autograd.h"
#include "core/rng.h"

namespace ssa {
namespace {

double weighted_sum(const Tensor& y, const Tensor& weights) {
  std::vector<double> values = y.to_vector(), w = weights.to_vector();
  double total = 0;
  for (size_t i = 0; i < values.size(); ++i) total += values[i] * w[i];
  return total;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, GradcheckOptions options) {
  for (const Tensor& x : inputs) {
    SSA_CHECK(x.is_cpu() && x.dtype() == DType::f64, "gradcheck inputs must be CPU f64");
    if (x.requires_grad()) x.set_grad(Tensor());
  }
  Tensor y = f(inputs);
  Tensor weights = Tensor::empty(y.shape(), DType::f64);
  Rng rng(options.seed);
  rng.fill_uniform(weights, -1.0, 1.0);
  SSA_CHECK(y.requires_grad(), "gradcheck: the output does not depend on any input with grad");
  backward(y, weights);

  GradcheckResult result;
  NoGrad no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    Tensor analytic = x.grad().defined() ? x.grad() : Tensor::zeros(x.shape(), DType::f64);
    double* values = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double saved = values[i];
      values[i] = saved + options.eps;
      double plus = weighted_sum(f(inputs), weights);
      values[i] = saved - options.eps;
      double minus = weighted_sum(f(inputs), weights);
      values[i] = saved;
      double numeric = (plus - minus) / (2 * options.eps);
      double got = analytic.data<double>()[i];
      double error = std::abs(got - numeric) / (options.atol + options.rtol * std::abs(numeric));
      if (!(error <= result.worst_error) || std::isnan(got)) {
        result.worst_error = std::isnan(got) ? INFINITY : error;
        result.report = fmt::format("input {} {} element {}: analytic {:.10g}, numeric {:.10g}", k,
                                    x.shape().str(), i, got, numeric);
      }
    }
  }
  result.ok = result.worst_error <= 1.0;
  return result;
}

}  // namespace ssa
