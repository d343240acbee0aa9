// Token shards (data/shard.h): any bytes either open as a shard whose every token can be read,
// or are refused with an ssa::Error.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "data/shard.h"
#include "input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kVocabSize = 128256;  // llm.c's Llama 3: ids of both widths load
  try {
    ssa::Shard shard(ssa::fuzz::as_file(data, size), kVocabSize);
    std::vector<int32_t> tokens(static_cast<size_t>(shard.size()));
    shard.read(0, shard.size(), tokens.data());
    for (int32_t id : tokens)
      if (id < 0 || id >= kVocabSize) std::abort();
    const int64_t half = shard.size() / 2;  // a read from the middle gives the same tokens
    std::vector<int32_t> tail(static_cast<size_t>(shard.size() - half));
    shard.read(half, shard.size() - half, tail.data());
    if (!std::equal(tail.begin(), tail.end(), tokens.begin() + half)) std::abort();
  } catch (const ssa::Error&) {
  }
  return 0;
}
