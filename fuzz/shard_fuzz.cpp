// Token shards (data/shard.h): any bytes either open as a shard whose every token can be read,
// or are refused with an ssa::Error.
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
    for (int64_t i = 0; i < shard.size(); ++i)
      if (static_cast<int64_t>(shard[i]) != tokens[static_cast<size_t>(i)]) std::abort();
  } catch (const ssa::Error&) {
  }
  return 0;
}
