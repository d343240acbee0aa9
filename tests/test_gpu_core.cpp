#include <doctest/doctest.h>

#include "autograd/autograd.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace ssa;

TEST_CASE("tensors cross to the GPU and back, converting dtypes on the device") {
  Tensor host = Tensor::empty({1000}, DType::f32);
  Rng(5).fill_normal(host, 0, 1);
  Tensor device = host.to(Device::cuda);
  CHECK(device.device() == Device::cuda);
  Tensor back = device.to(DType::f64).to(Device::cpu);
  for (int64_t i = 0; i < host.numel(); i += 97) CHECK(back.at(i) == host.at(i));
  Tensor as_bf16 = device.to(DType::bf16).to(Device::cpu);
  Tensor host_bf16 = host.to(DType::bf16);
  for (int64_t i = 0; i < host.numel(); i += 97) CHECK(as_bf16.at(i) == host_bf16.at(i));
}

TEST_CASE("gradient accumulation works on device tensors") {
  Tensor a = Tensor::full({300}, 1.5, DType::f32, Device::cuda);
  Tensor b = Tensor::full({300}, 2.0, DType::f32, Device::cuda);
  accumulate_into(a, b);
  CHECK(a.at(299) == 3.5);
}
