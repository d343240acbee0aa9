#pragma once
// Finite-difference check of hand-written backward passes, in float64.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ssa {

struct GradcheckResult {
  bool ok = true;
  double worst_error = 0;  // |analytic - numeric| / (atol + rtol * |numeric|), worst element
  std::string report;      // names the worst input, element index and both values
};

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  uint64_t seed = 1234;
};

// f maps the inputs to any tensor y. The check compares d(sum(y * r))/dx for a random r,
// from backward(), with central differences, for every element of every f64 input that
// requires grad. Inputs must be CPU f64 tensors.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace ssa
