// The caching allocator (statistics, no cudaMalloc in a repeated step, the message of an
// allocation that does not fit), device fill, and mixed precision: bf16 leaves whose gradients
// accumulate into the fp32 flat gradient buffer; cross-entropy's gradient written over logits that
// nothing else holds.
#include <cuda_runtime.h>

#include "cuda/runtime/memory.h"
#include "op_test_util.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/reshape.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"
#include "test_data_util.h"
#include "train/optimizer.h"

using namespace ssa;
using namespace ssa::test;

namespace {

constexpr int64_t kVocab = 97, kDim = 64, kHidden = 96, kBatch = 2, kSeq = 13;

// A one-block SwiGLU language model over flat parameters.
struct TinyModel {
  Parameters params{{{"embedding", {kVocab, kDim}},
                     {"norm", {kDim}, Init::ones, 0, false},
                     {"w1", {kHidden, kDim}},
                     {"w3", {kHidden, kDim}},
                     {"w2", {kDim, kHidden}}},
                    DType::f32,
                    Device::cuda};
  TinyModel() {
    Rng rng(11);
    params.initialize(rng);
  }
};

// weights: the model's tensors, or bf16 leaves standing in for them.
Tensor tiny_loss(const std::vector<Tensor>& w, const Tensor& ids, const Tensor& targets) {
  Tensor x = embedding(ids, w[0]);
  Tensor h = rmsnorm(x, w[1], 1e-5);
  Tensor y = add(x, linear(swiglu(linear(h, w[2]), linear(h, w[3])), w[4]));
  return cross_entropy(linear(reshape(y, {kBatch * kSeq, kDim}), w[0]), targets);
}

std::vector<Tensor> tensors_of(const Parameters& params) {
  std::vector<Tensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) tensors.push_back(params[i]);
  return tensors;
}

// bf16 views of `flat_bf16`, each a leaf whose grad() is the fp32 gradient view of its parameter.
std::vector<Tensor> bf16_leaves(const Parameters& params, const Tensor& flat_bf16) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor leaf = flat_bf16.view(params.offsets()[i], params.specs()[i].shape);
    leaf.set_requires_grad(true);
    leaf.set_grad(params[i].grad());
    leaves.push_back(leaf);
  }
  return leaves;
}

struct Batch {
  Tensor ids = random_ids({kBatch, kSeq}, kVocab, 1).to(Device::cuda);
  Tensor targets = random_ids({kBatch * kSeq}, kVocab, 2).to(Device::cuda);
};

void train_step(TinyModel& model, AdamW& adam, const Batch& batch, const Tensor& bf16_copy) {
  backward(tiny_loss(tensors_of(model.params), batch.ids, batch.targets));
  adam.step(1e-3, bf16_copy, clip_factor(gradient_norm(model.params.flat_grad()), 1.0));
  model.params.zero_grad();
}

}  // namespace

TEST_CASE("allocator: statistics follow allocations; freed blocks are reused") {
  const cuda::MemoryStats start = cuda::memory_stats();
  {
    Tensor t = Tensor::empty({1000, 1000}, DType::f32, Device::cuda);
    const cuda::MemoryStats held = cuda::memory_stats();
    CHECK(held.allocated >= start.allocated + t.nbytes());
    CHECK(held.peak >= held.allocated);
    CHECK(held.reserved >= held.allocated);
  }
  const cuda::MemoryStats freed = cuda::memory_stats();
  CHECK(freed.allocated == start.allocated);
  Tensor again = Tensor::empty({1000, 1000}, DType::f32, Device::cuda);
  CHECK(cuda::memory_stats().device_mallocs == freed.device_mallocs);
  cuda::reset_peak_memory();
  CHECK(cuda::memory_stats().peak == cuda::memory_stats().allocated);
}

TEST_CASE("allocator: more than the GPU has fails with one line naming the size and the memory") {
  size_t free_bytes = 0, total_bytes = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess);
  Tensor held = Tensor::empty({256 << 20}, DType::f32, Device::cuda);  // 1 GiB in use
  const cuda::MemoryStats before = cuda::memory_stats();
  const int64_t too_many = static_cast<int64_t>(total_bytes / 4) + (256 << 20);  // + 1 GiB
  std::string message;
  try {
    Tensor too_large = Tensor::empty({too_many}, DType::f32, Device::cuda);
  } catch (const OutOfMemory& error) {
    message = error.what();
  }
  std::printf("%s\n", message.c_str());
  CHECK(message.find('\n') == std::string::npos);
  CHECK(contains_all(message, {"out of GPU memory: could not allocate ", " GiB (tensors hold ",
                               byte_text(before.allocated), ", peak ", byte_text(before.peak),
                               "; the GPU has ", " free of " + byte_text(total_bytes) + ")"}));
  CHECK(cuda::memory_stats().allocated == before.allocated);
  Tensor after = Tensor::empty({1000}, DType::f32, Device::cuda);  // the allocator still works
  CHECK(after.numel() == 1000);
}

TEST_CASE("allocator: a second identical training step calls cudaMalloc no more") {
  TinyModel model;
  AdamW adam(model.params, {});
  Batch batch;
  Tensor bf16_copy = Tensor::empty(model.params.flat().shape(), DType::bf16, Device::cuda);
  train_step(model, adam, batch, bf16_copy);
  const cuda::MemoryStats before = cuda::memory_stats();
  train_step(model, adam, batch, bf16_copy);
  const cuda::MemoryStats after = cuda::memory_stats();
  std::printf(
      "step memory: allocated %zu peak %zu reserved %zu, cudaMalloc calls in step 2: %lld\n",
      after.allocated, after.peak, after.reserved,
      static_cast<long long>(after.device_mallocs - before.device_mallocs));
  CHECK(after.device_mallocs == before.device_mallocs);
  CHECK(after.allocated == before.allocated);
}

TEST_CASE("mixed precision: bf16 leaves accumulate their gradients into the fp32 flat buffer") {
  TinyModel model;
  Batch batch;
  backward(tiny_loss(tensors_of(model.params), batch.ids, batch.targets));
  Tensor fp32_grad = model.params.flat_grad().clone();
  model.params.zero_grad();
  Tensor flat_bf16 = model.params.flat().to(DType::bf16);
  backward(tiny_loss(bf16_leaves(model.params, flat_bf16), batch.ids, batch.targets));
  CHECK(model.params.flat_grad().dtype() == DType::f32);
  // bf16 activations through six chained ops: a few bf16 roundings of each gradient.
  Tensor difference = add(model.params.flat_grad(), scale(fp32_grad, -1.0));
  const double relative = gradient_norm(difference) / gradient_norm(fp32_grad);
  std::printf("mixed precision: |grad(bf16) - grad(f32)| / |grad(f32)| = %.1e\n", relative);
  CHECK(relative < 3e-2);
}

TEST_CASE("device fill writes every element in the tensor's dtype") {
  Tensor bf16 = Tensor::full({1001}, 1.5, DType::bf16, Device::cuda);
  Tensor i32 = Tensor::full({7}, -3, DType::i32, Device::cuda);
  Tensor f32 = Tensor::full({5}, 0.0, DType::f32, Device::cuda);
  CHECK(bf16.at(0) == 1.5);
  CHECK(bf16.at(1000) == 1.5);
  CHECK(i32.at(6) == -3);
  CHECK(f32.at(4) == 0.0);
}

TEST_CASE(
    "cross_entropy: the gradient of logits nothing else holds takes no second [N, V] tensor") {
  constexpr int64_t kRows = 256, kWide = 32768, kIn = 64;
  const auto leaf = [](const Shape& shape, uint64_t seed) {
    Tensor t = random_tensor(shape, seed, DType::f32, false).to(Device::cuda);
    t.set_requires_grad(true);
    return t;
  };
  Tensor x = leaf({kRows, kIn}, 7), w = leaf({kWide, kIn}, 8);
  const Tensor targets = random_ids({kRows}, kWide, 9).to(Device::cuda);
  // Bytes the backward pass adds to those held before it, at its peak.
  const auto backward_growth = [&](bool keep_logits) {
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    Tensor logits = linear(x, w);
    Tensor loss = cross_entropy(logits, targets);
    if (!keep_logits) logits = Tensor();
    const size_t before = cuda::memory_stats().allocated;
    cuda::reset_peak_memory();
    backward(loss);
    return cuda::memory_stats().peak - before;
  };
  const size_t logits_bytes = kRows * kWide * sizeof(float);
  const size_t kept = backward_growth(true), dropped = backward_growth(false);
  std::printf("cross_entropy backward growth: logits kept %zu, dropped %zu bytes\n", kept, dropped);
  CHECK(kept >= logits_bytes);
  CHECK(dropped + logits_bytes <= kept);
}
