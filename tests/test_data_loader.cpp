#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "data/loader.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

constexpr int64_t kSeqLen = 8;
constexpr int64_t kVocab = 5000;

// Shards of 50, 37, 5 and 41 tokens; token j of shard s is 1000 s + j, so a window's first
// token names it. With T = 8 they hold 6, 4, 0 and 5 windows: 15 per epoch.
std::vector<std::string> make_shards(const TempDir& dir) {
  std::vector<std::string> paths;
  int sizes[] = {50, 37, 5, 41};
  for (int s = 0; s < 4; ++s) {
    std::vector<uint32_t> tokens;
    for (int j = 0; j < sizes[s]; ++j) tokens.push_back(static_cast<uint32_t>(1000 * s + j));
    paths.push_back(dir.file("shard_" + std::to_string(s) + ".bin"));
    write_shard(paths.back(), tokens);
  }
  return paths;
}

// The first token of each row: which windows a batch holds.
std::vector<int32_t> window_ids(const Batch& batch) {
  std::vector<int32_t> ids;
  const int32_t* inputs = batch.inputs.data<int32_t>();
  for (int64_t row = 0; row < batch.inputs.dim(0); ++row) ids.push_back(inputs[row * kSeqLen]);
  return ids;
}

std::vector<int32_t> stream(Loader& loader, int batches, int64_t micro_batch) {
  std::vector<int32_t> ids;
  for (int i = 0; i < batches; ++i) {
    std::vector<int32_t> batch = window_ids(loader.next_batch(micro_batch));
    ids.insert(ids.end(), batch.begin(), batch.end());
  }
  return ids;
}

}  // namespace

TEST_CASE("loader windows: T + 1 tokens every T, targets shifted, epochs wrap in order") {
  TempDir dir("loader_windows");
  Loader loader(make_shards(dir), kSeqLen, kVocab, 0, false);
  CHECK(loader.windows_per_epoch() == 15);
  Batch batch = loader.next_batch(2);
  CHECK(batch.inputs.shape() == Shape{2, kSeqLen});
  CHECK(batch.inputs.dtype() == DType::i32);
  for (int64_t t = 0; t < kSeqLen; ++t) {
    CHECK(batch.inputs.at(t) == t);
    CHECK(batch.targets.at(t) == t + 1);
    CHECK(batch.inputs.at(kSeqLen + t) == 8 + t);
  }
  std::vector<int32_t> rest = stream(loader, 4, 4);  // windows 2..14, then 0..2 of epoch 1
  std::vector<int32_t> expected = {16,   24,   32,   40,   1000, 1008, 1016, 1024,
                                   3000, 3008, 3016, 3024, 3032, 0,    8,    16};
  CHECK(rest == expected);
  CHECK(loader.state() == LoaderState{1, 3});
}

TEST_CASE("world W with micro-batch b sees the windows of world 1 with batch W*b") {
  TempDir dir("loader_world");
  std::vector<std::string> files = make_shards(dir);
  for (int world : {2, 3}) {
    Loader single(files, kSeqLen, kVocab, 11, true, 0, 1);
    std::vector<Loader> ranks;
    for (int rank = 0; rank < world; ++rank)
      ranks.emplace_back(files, kSeqLen, kVocab, 11, true, rank, world);
    for (int step = 0; step < 12; ++step) {  // 12 * 2 * world windows: several epochs
      std::vector<int32_t> together = window_ids(single.next_batch(2 * world)), split;
      for (Loader& rank : ranks) {
        std::vector<int32_t> part = window_ids(rank.next_batch(2));
        split.insert(split.end(), part.begin(), part.end());
      }
      CHECK(split == together);
    }
    for (Loader& rank : ranks) CHECK(rank.state() == single.state());
  }
}

TEST_CASE("loader state resumes the exact stream") {
  TempDir dir("loader_resume");
  std::vector<std::string> files = make_shards(dir);
  Loader first(files, kSeqLen, kVocab, 3, true, 1, 2);
  stream(first, 7, 3);
  LoaderState saved = first.state();
  Loader resumed(files, kSeqLen, kVocab, 3, true, 1, 2);
  resumed.set_state(saved);
  CHECK(stream(resumed, 9, 3) == stream(first, 9, 3));
  CHECK(error_of([&] {
          resumed.set_state({0, 15});
        }).find("past the 15 windows") != std::string::npos);
}

TEST_CASE("shuffle: each epoch a permutation, fixed by the seed, new each epoch") {
  TempDir dir("loader_shuffle");
  std::vector<std::string> files = make_shards(dir);
  Loader ordered(files, kSeqLen, kVocab, 0, false);
  std::vector<int32_t> all = stream(ordered, 15, 1);
  Loader a(files, kSeqLen, kVocab, 42, true), b(files, kSeqLen, kVocab, 42, true),
      other_seed(files, kSeqLen, kVocab, 43, true);
  std::vector<int32_t> epoch0 = stream(a, 15, 1), epoch1 = stream(a, 15, 1);
  CHECK(std::multiset<int32_t>(epoch0.begin(), epoch0.end()) ==
        std::multiset<int32_t>(all.begin(), all.end()));
  CHECK(std::multiset<int32_t>(epoch1.begin(), epoch1.end()) ==
        std::multiset<int32_t>(all.begin(), all.end()));
  CHECK(epoch0 != all);
  CHECK(epoch1 != epoch0);
  std::vector<int32_t> two_epochs = epoch0;
  two_epochs.insert(two_epochs.end(), epoch1.begin(), epoch1.end());
  CHECK(stream(b, 30, 1) == two_epochs);
  CHECK(stream(other_seed, 15, 1) != epoch0);
}

TEST_CASE("loader errors: no window, bad tokens, no files, glob") {
  TempDir dir("loader_errors");
  std::vector<std::string> files = make_shards(dir);
  std::string short_only = error_of([&] { Loader({files[2]}, kSeqLen, kVocab, 0, false); });
  CHECK(short_only.find("seq_len + 1 = 9") != std::string::npos);
  CHECK(short_only.find(files[2]) != std::string::npos);
  std::string bad_vocab = error_of([&] { Loader(files, kSeqLen, 2000, 0, false); });
  CHECK(bad_vocab.find("token id 2000 at index 0") != std::string::npos);
  CHECK(bad_vocab.find(files[2]) != std::string::npos);
  CHECK(error_of([&] { Loader({}, kSeqLen, kVocab, 0, false); }).find("no token shard files") !=
        std::string::npos);
  CHECK(error_of([&] { Loader(files, kSeqLen, kVocab, 0, false, 2, 2); }).find("rank 2") !=
        std::string::npos);

  CHECK(expand_glob(dir.file("shard_*.bin")) == files);
  std::string no_match = dir.file("nothing_*.bin");
  CHECK(error_of([&] { expand_glob(no_match); }).find(no_match) != std::string::npos);
}
