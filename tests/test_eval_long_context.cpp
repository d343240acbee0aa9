#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "data/shard.h"
#include "eval/long_context.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::TempDir;

namespace {

constexpr const char* kQuestion = " What is the pass key? The pass key is";
constexpr const char* kNeedle = " The pass key is 12345. Remember it. 12345 is the pass key.";

// A tokenizer with merges learnt from text like the prompts' (so tokens are not bytes).
const Tokenizer& prompt_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::train(
      {"The grass is green. The sky is blue. The sun is yellow. Here we go. There and back "
       "again. The pass key is 31415. Remember it. What is the pass key?"},
      330, 1);
  return tokenizer;
}

std::string text_of(const std::vector<int32_t>& ids, size_t from, size_t to) {
  std::vector<uint32_t> part(ids.begin() + static_cast<int64_t>(from),
                             ids.begin() + static_cast<int64_t>(to));
  return prompt_tokenizer().decode(part);
}

}  // namespace

TEST_CASE("passkey prompt: about the requested length, the key at the depth, then the question") {
  const Tokenizer& tokenizer = prompt_tokenizer();
  for (int64_t tokens : {200, 1000}) {
    for (double depth : {0.0, 0.25, 0.5, 0.9, 1.0}) {
      CAPTURE(tokens);
      CAPTURE(depth);
      const PasskeyPrompt prompt = passkey_prompt(tokenizer, tokens, depth, "12345");
      const int64_t length = static_cast<int64_t>(prompt.ids.size());
      CHECK(length <= tokens);
      CHECK(length > tokens - 12);  // at most one filler sentence short
      CHECK(prompt.ids[0] == static_cast<int32_t>(Tokenizer::kEndOfText));
      const std::string text = text_of(prompt.ids, 1, prompt.ids.size());
      CHECK(text.ends_with(std::string(".") + kQuestion));
      const std::string before_key = text_of(prompt.ids, 1, static_cast<size_t>(prompt.key_offset));
      CHECK(text.substr(before_key.size()).starts_with(kNeedle));
      // Where the key sits in the filler, in characters, within one sentence of the depth.
      const double filler_chars = static_cast<double>(text.size() - std::string(kNeedle).size() -
                                                      std::string(kQuestion).size());
      CHECK(std::abs(static_cast<double>(before_key.size()) - depth * filler_chars) <= 22);
      std::vector<uint32_t> whole = tokenizer.encode(text);
      CHECK(std::vector<int32_t>(whole.begin(), whole.end()) ==
            std::vector<int32_t>(prompt.ids.begin() + 1, prompt.ids.end()));
    }
  }
}

TEST_CASE("passkey prompt: shorter than the key and the question, it holds no filler") {
  const PasskeyPrompt prompt = passkey_prompt(prompt_tokenizer(), 8, 0.5, "12345");
  CHECK(prompt.key_offset == 1);
  CHECK(text_of(prompt.ids, 1, prompt.ids.size()) == std::string(kNeedle) + kQuestion);
}

TEST_CASE("passkey: seeded five-digit keys") {
  Rng a(7), b(7);
  for (int i = 0; i < 20; ++i) {
    const std::string key = draw_passkey(a);
    CHECK(key == draw_passkey(b));
    CHECK(key.size() == 5);
    CHECK(key[0] != '0');
    CHECK(key.find_first_not_of("0123456789") == std::string::npos);
  }
}

TEST_CASE("passkey answer: the digits after leading whitespace must be the key exactly") {
  for (const char* answer : {"12345", " 12345.", "\n12345 is the", " 12345\n"})
    CHECK_MESSAGE(passkey_correct(answer, "12345"), answer);
  for (const char* answer : {"1234", "12346", " 123456", "", " the 12345", "12 345"})
    CHECK_MESSAGE(!passkey_correct(answer, "12345"), answer);
}

TEST_CASE("longest_shard_tokens: the largest token count among the matching shards") {
  TempDir dir("eval_long_shards");
  write_shard(dir.file("val_0.bin"), std::vector<uint32_t>(10, 3));
  write_shard(dir.file("val_1.bin"), std::vector<uint32_t>(30, 4));
  CHECK(longest_shard_tokens(dir.file("val_*.bin"), 8) == 30);
}
