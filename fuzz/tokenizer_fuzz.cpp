// Tokenizer files (data/tokenizer.h): any bytes either load as a tokenizer that decodes every id
// and encodes text back to the same bytes, or are refused with an ssa::Error.
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"
#include "input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ssa::Tokenizer tokenizer = ssa::Tokenizer::load(ssa::fuzz::as_file(data, size));
    std::string text;
    for (uint32_t id = 0; id < tokenizer.vocab_size(); ++id)
      if (id != ssa::Tokenizer::kEndOfText) text += tokenizer.token_bytes(id);
    text.resize(std::min<size_t>(text.size(), 1 << 16));  // any text round-trips; keep runs fast
    std::vector<uint32_t> ids = tokenizer.encode(text);
    if (tokenizer.decode(ids) != text) std::abort();
  } catch (const ssa::Error&) {
  }
  return 0;
}
