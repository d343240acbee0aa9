#include "data/loader.h"

#include <fmt/ranges.h>
#include <glob.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace ssa {

namespace {

constexpr uint64_t kShuffleSalt = 0x5eed'da7a'0f5a'4d1eull;
// Epoch e draws its permutation from offset e << 40: 2^40 draws per epoch never overlap.
constexpr int kEpochOffsetShift = 40;

}  // namespace

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t matches{};
  int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths;
  if (status == 0) paths.assign(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
  ::globfree(&matches);
  if (status == GLOB_NOMATCH || (status == 0 && paths.empty()))
    fail("no files match the pattern '{}'", pattern);
  if (status != 0) fail("cannot expand the pattern '{}' (glob error {})", pattern, status);
  std::sort(paths.begin(), paths.end());
  return paths;
}

Loader::Loader(const std::vector<std::string>& files, int64_t seq_len, int64_t vocab_size,
               uint64_t seed, bool shuffle, int rank, int world)
    : seq_len_(seq_len), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world) {
  if (files.empty()) fail("the data loader was given no token shard files");
  if (seq_len < 1) fail("sequence length must be at least 1, got {}", seq_len);
  if (world < 1 || rank < 0 || rank >= world)
    fail("rank {} is outside a world of size {}", rank, world);
  window_starts_.push_back(0);
  for (const std::string& path : files) {
    shards_.emplace_back(path, vocab_size);
    int64_t windows = (shards_.back().size() - 1) / seq_len;
    window_starts_.push_back(window_starts_.back() + windows);
  }
  if (windows_per_epoch() == 0)
    fail("no token shard holds a window of seq_len + 1 = {} tokens (seq_len {}): {}", seq_len + 1,
         seq_len, fmt::join(files, ", "));
  if (windows_per_epoch() > static_cast<int64_t>(UINT32_MAX))
    fail("{} windows per epoch: more than the loader's limit of {}; use a longer seq_len",
         windows_per_epoch(), UINT32_MAX);
}

const Shard& Loader::shard_with_largest_id() const {
  return *std::max_element(shards_.begin(), shards_.end(), [](const Shard& a, const Shard& b) {
    return a.largest_id() < b.largest_id();
  });
}

void Loader::set_state(const LoaderState& state) {
  if (state.position >= static_cast<uint64_t>(windows_per_epoch()))
    fail(
        "loader state position {} is past the {} windows of an epoch of these shards at seq_len "
        "{} (different data?)",
        state.position, windows_per_epoch(), seq_len_);
  state_ = state;
}

Batch Loader::next_batch(int64_t micro_batch) {
  if (micro_batch < 1) fail("micro-batch must be at least 1, got {}", micro_batch);
  uint64_t windows = static_cast<uint64_t>(windows_per_epoch());
  uint64_t first =
      state_.epoch * windows + state_.position + static_cast<uint64_t>(rank_ * micro_batch);
  Batch batch{Tensor::empty({micro_batch, seq_len_}, DType::i32),
              Tensor::empty({micro_batch, seq_len_}, DType::i32)};
  int32_t* inputs = batch.inputs.data<int32_t>();
  int32_t* targets = batch.targets.data<int32_t>();
  for (int64_t row = 0; row < micro_batch; ++row)
    copy_window(window_at(first + row), inputs + row * seq_len_, targets + row * seq_len_);
  uint64_t consumed = state_.position + static_cast<uint64_t>(world_ * micro_batch);
  state_.epoch += consumed / windows;
  state_.position = consumed % windows;
  return batch;
}

int64_t Loader::window_at(uint64_t index) {
  uint64_t windows = static_cast<uint64_t>(windows_per_epoch());
  uint64_t epoch = index / windows, position = index % windows;
  if (!shuffle_) return static_cast<int64_t>(position);
  if (order_epoch_ != epoch) build_order(epoch);
  return order_[position];
}

void Loader::copy_window(int64_t window, int32_t* inputs, int32_t* targets) const {
  auto after = std::upper_bound(window_starts_.begin(), window_starts_.end(), window);
  size_t shard = static_cast<size_t>(after - window_starts_.begin()) - 1;
  int64_t start = (window - window_starts_[shard]) * seq_len_;
  std::vector<int32_t> tokens(static_cast<size_t>(seq_len_ + 1));  // inputs, then one more
  shards_[shard].read(start, seq_len_ + 1, tokens.data());
  std::copy_n(tokens.begin(), seq_len_, inputs);
  std::copy_n(tokens.begin() + 1, seq_len_, targets);
}

void Loader::build_order(uint64_t epoch) {
  order_.resize(static_cast<size_t>(windows_per_epoch()));
  std::iota(order_.begin(), order_.end(), 0u);
  Rng rng(seed_ ^ kShuffleSalt, epoch << kEpochOffsetShift);
  for (size_t i = order_.size() - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
  order_epoch_ = epoch;
}

}  // namespace ssa
