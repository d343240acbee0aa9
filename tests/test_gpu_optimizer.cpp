// The optimizer's GPU passes against the CPU version: AdamW (with the clipping's gradient
// scale), gradient norm, and the bf16 working copy written by the fused update.
#include <cmath>
#include <cstring>

#include "op_test_util.h"
#include "train/optimizer.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// AdamW runs in double on both sides; only contraction into fused multiply-adds on the GPU may
// move the last bit of a double before the f32 rounding.
constexpr double kAdamTolerance = 1e-6;

// 1203 values (the update element by element) and 896 (in runs of 8).
std::vector<ParamSpec> specs(bool runs) {
  if (runs) return {{"w", {32, 24}}, {"norm", {24}, Init::ones, 0, false}, {"v", {104}}};
  return {{"w", {37, 29}}, {"norm", {29}, Init::ones, 0, false}, {"v", {101}}};
}

// max |got − want| / max |want|: moments near zero carry no relative precision of their own.
double scaled_error(const Tensor& got, const Tensor& want) {
  std::vector<double> g = got.to_vector(), w = want.to_vector();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return worst / scale;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
  return x.nbytes() == y.nbytes() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

// AdamW for one parameter set: three steps on both devices, each gradient read times
// grad_scale, then the errors and the bf16 copy.
void check_adamw(bool runs, double grad_scale) {
  CAPTURE(runs);
  CAPTURE(grad_scale);
  Parameters cpu(specs(runs), DType::f32, Device::cpu), gpu(specs(runs), DType::f32, Device::cuda);
  Rng rng(3);
  cpu.initialize(rng);
  gpu.flat().copy_from(cpu.flat());
  AdamW cpu_adam(cpu, {}), gpu_adam(gpu, {});
  Tensor bf16_copy = Tensor::empty(gpu.flat().shape(), DType::bf16, Device::cuda);
  for (uint64_t step = 0; step < 3; ++step) {
    Tensor grad = random_tensor(cpu.flat().shape(), 10 + step, DType::f32, false);
    cpu.flat_grad().copy_from(grad);
    gpu.flat_grad().copy_from(grad);
    cpu_adam.step(1e-2, Tensor(), grad_scale);
    gpu_adam.step(1e-2, bf16_copy, grad_scale);
  }
  const double params = scaled_error(gpu.flat(), cpu.flat());
  const double first = scaled_error(gpu_adam.first_moment(), cpu_adam.first_moment());
  const double second = scaled_error(gpu_adam.second_moment(), cpu_adam.second_moment());
  std::printf("adamw errors: params %.1e m %.1e v %.1e\n", params, first, second);
  CHECK(params <= kAdamTolerance);
  CHECK(first <= kAdamTolerance);
  CHECK(second <= kAdamTolerance);
  CHECK(same_bits(bf16_copy, gpu.flat().to(DType::bf16)));
}

}  // namespace

TEST_CASE("gpu AdamW matches the CPU update, decays only the marked specs, writes the bf16 copy") {
  for (double grad_scale : {1.0, 0.3}) {
    check_adamw(false, grad_scale);
    check_adamw(true, grad_scale);
  }
}

TEST_CASE("gpu gradient norm: parity with the CPU, bit-identical between calls") {
  Tensor host = random_tensor({(1 << 20) + 17}, 5, DType::f32, false);
  Tensor device = host.to(Device::cuda);
  const double norm = gradient_norm(device);
  CHECK(norm == doctest::Approx(gradient_norm(host)).epsilon(1e-12));
  CHECK(gradient_norm(device) == norm);
}
