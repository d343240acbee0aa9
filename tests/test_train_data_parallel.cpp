// Data-parallel pieces that need no second process: gradient buckets summed as backward
// finishes them (the autograd LeafFinal hook), and ZeRO-1's chunk bounds.
#include <doctest/doctest.h>

#include <algorithm>

#include "autograd/autograd.h"
#include "models/decoder.h"
#include "op_test_util.h"
#include "train/dist/data_parallel.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// A world of 2 that records the all-reduces it is asked for (element ranges of the flat buffer).
class RecordingCommunicator : public Communicator {
 public:
  explicit RecordingCommunicator(const Tensor& flat) : Communicator(0, 2), flat_(flat) {}
  std::string description() const override { return "recording"; }
  void all_reduce_sum(const Tensor& buffer) override {
    const int64_t begin =
        (static_cast<const char*>(buffer.raw()) - static_cast<const char*>(flat_.raw())) /
        static_cast<int64_t>(dtype_size(buffer.dtype()));
    reduced.emplace_back(begin, begin + buffer.numel());
  }
  void reduce_scatter_sum(const Tensor&, const std::vector<int64_t>&) override {}
  void all_gather(const Tensor&, const std::vector<int64_t>&) override {}
  std::vector<double> sum(std::vector<double> values) override { return values; }
  uint64_t broadcast(uint64_t value) override { return value; }
  std::vector<std::string> gather_text(const std::string& text) override { return {text}; }
  void barrier() override {}
  std::vector<std::pair<int64_t, int64_t>> reduced;

 private:
  Tensor flat_;
};

}  // namespace

TEST_CASE("gradient buckets are all summed during the last backward, covering the buffer once") {
  ModelConfig config{.vocab_size = 32,
                     .d_model = 16,
                     .n_layers = 3,
                     .n_heads = 2,
                     .n_kv_heads = 1,
                     .head_dim = 8,
                     .ffn_dim = 32,
                     .max_seq_len = 8};
  Decoder model(config, DType::f32, Device::cpu);
  Rng rng(3);
  model.params().initialize(rng);
  RecordingCommunicator comm(model.params().flat_grad());
  GradientBuckets buckets(model.params(), comm, 2048);  // a few parameters per bucket
  REQUIRE(buckets.count() > 3);
  backward(model.loss(random_ids({2, 8}, 32, 1), random_ids({2, 8}, 32, 2)), Tensor(),
           buckets.on_final());
  CHECK(comm.reduced.size() == buckets.count());  // none waited for finish()
  // The output layers' buckets finish first; the tied embedding (offset 0) is final last.
  CHECK(comm.reduced.front().second == model.params().count());
  CHECK(comm.reduced.back().first == 0);
  buckets.finish();
  CHECK(comm.reduced.size() == buckets.count());
  std::sort(comm.reduced.begin(), comm.reduced.end());
  int64_t covered = 0;
  for (const auto& [begin, end] : comm.reduced) {
    CHECK(begin == covered);
    covered = end;
  }
  CHECK(covered == model.params().count());
}

TEST_CASE("ZeRO-1 chunks are 128-aligned, in order, and cover the buffer") {
  CHECK(chunk_bounds(1000, 2) == std::vector<int64_t>{0, 512, 1000});
  CHECK(chunk_bounds(1000, 3) == std::vector<int64_t>{0, 384, 768, 1000});
  CHECK(chunk_bounds(100, 1) == std::vector<int64_t>{0, 100});
}
