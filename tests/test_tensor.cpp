#include <doctest/doctest.h>

#include "core/tensor.h"

using namespace ssa;

TEST_CASE("a shape of more than 2^60 elements is refused as out of memory, never wrapped") {
  CHECK_THROWS_AS(Shape({int64_t{1} << 40, int64_t{1} << 40}), OutOfMemory);
  CHECK_THROWS_AS(Shape({int64_t{1} << 58, 64}), OutOfMemory);
  CHECK(Shape({int64_t{1} << 30, int64_t{1} << 30}).numel() == int64_t{1} << 60);
  CHECK(Shape({0, int64_t{1} << 62, 16}).numel() == 0);
}

TEST_CASE("shape numel, equality and printing") {
  Shape s{2, 3, 5};
  CHECK(s.numel() == 30);
  CHECK(s.rank == 3);
  CHECK(s == Shape{2, 3, 5});
  CHECK_FALSE(s == Shape{2, 3});
  CHECK(s.str() == "[2, 3, 5]");
  CHECK(Shape{}.numel() == 1);
  CHECK_THROWS_AS(Shape({1, 2, 3, 4, 5, 6, 7}), Error);
}

TEST_CASE("fill writes every element of a view, and nothing around it, in every dtype") {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::i32}) {
    CAPTURE(dtype_name(dtype));
    Tensor flat = Tensor::zeros({9}, dtype);
    flat.view(2, {5}).fill(-3.0);
    CHECK(flat.to_vector() == std::vector<double>{0, 0, -3, -3, -3, -3, -3, 0, 0});
  }
}

TEST_CASE("views share storage with their parent (one flat buffer)") {
  Tensor flat = Tensor::zeros({10}, DType::f32);
  Tensor a = flat.view(0, {2, 2});
  Tensor b = flat.view(4, {3, 2});
  b.fill(2.5);
  a.data<float>()[3] = 7.f;
  CHECK(flat.at(3) == 7.0);
  CHECK(flat.at(4) == 2.5);
  CHECK(flat.at(9) == 2.5);
  CHECK(a.same_storage(b));
  CHECK_THROWS_AS(flat.view(8, {3}), Error);
}

TEST_CASE("clone is a deep copy, reshape is not") {
  Tensor t = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  Tensor c = t.clone();
  Tensor r = t.reshape({3, 2});
  t.data<double>()[0] = 100;
  CHECK(c.at(0) == 1.0);
  CHECK(r.at(0) == 100.0);
  CHECK_THROWS_AS(t.reshape({4}), Error);
}

TEST_CASE("dtype conversions round trip") {
  Tensor t = Tensor::from({1.5, -2.25, 3.0, 1e-3}, {4}, DType::f64);
  Tensor f = t.to(DType::f32);
  CHECK(f.dtype() == DType::f32);
  CHECK(f.at(1) == -2.25);
  Tensor i = t.to(DType::i32);
  CHECK(i.at(0) == 1.0);
  CHECK(i.at(1) == -2.0);
  Tensor b = t.to(DType::bf16);
  CHECK(b.at(0) == 1.5);
  CHECK(b.at(3) == doctest::Approx(1e-3).epsilon(4e-3));
}

TEST_CASE("bf16 rounds to nearest even and keeps NaN") {
  CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
  // 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0).
  CHECK(static_cast<float>(bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(static_cast<float>(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
  CHECK(std::isnan(static_cast<float>(bf16(std::nanf("")))));
}

TEST_CASE("typed access checks the dtype") {
  Tensor t = Tensor::zeros({3}, DType::f32);
  CHECK_THROWS_AS(t.data<double>(), Error);
  CHECK(t.nbytes() == 12);
}
