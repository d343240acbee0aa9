#include <doctest/doctest.h>

#include "autograd/autograd.h"
#include "core/error.h"
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

TEST_CASE("random fills on the GPU give the CPU's bits in every float dtype, from any offset") {
  const int64_t n = 300007;  // not a multiple of a block or a pack
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    CAPTURE(dtype_name(dtype));
    Tensor host = Tensor::empty({n}, dtype), device = Tensor::empty({n}, dtype, Device::cuda);
    Rng on_host(11, 1u << 20), on_device(11, 1u << 20);
    on_host.fill_normal(host, 0.5, 0.02);
    on_device.fill_normal(device, 0.5, 0.02);
    on_host.fill_uniform(host.view(7, {n - 7}), -3, 2);
    on_device.fill_uniform(device.view(7, {n - 7}), -3, 2);
    CHECK(on_host.offset() == on_device.offset());
    CHECK(device.to(Device::cpu).to_vector() == host.to_vector());
  }
  CHECK_THROWS_AS(Rng(1).fill_normal(Tensor::empty({4}, DType::i32, Device::cuda), 0, 1), Error);
}
