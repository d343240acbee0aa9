#include "eval/long_context.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "data/loader.h"
#include "data/shard.h"
#include "models/sampling.h"

namespace ssa {

namespace {

constexpr const char* kFillerSentences[] = {" The grass is green.", " The sky is blue.",
                                            " The sun is yellow.", " Here we go.",
                                            " There and back again."};
constexpr const char* kQuestion = " What is the pass key? The pass key is";

std::vector<int32_t> encode_ids(const Tokenizer& tokenizer, const std::string& text) {
  std::vector<uint32_t> ids = tokenizer.encode(text);
  return {ids.begin(), ids.end()};
}

struct Filler {
  std::vector<int32_t> ids;
  std::vector<int64_t> sentence_starts;  // 0, then one past the end of each sentence
};

// Filler sentences in turn while the total stays within `budget` tokens.
Filler filler(const Tokenizer& tokenizer, int64_t budget) {
  std::vector<std::vector<int32_t>> sentences;
  for (const char* sentence : kFillerSentences)
    sentences.push_back(encode_ids(tokenizer, sentence));
  Filler result{{}, {0}};
  for (size_t i = 0;; ++i) {
    const std::vector<int32_t>& sentence = sentences[i % sentences.size()];
    if (static_cast<int64_t>(result.ids.size() + sentence.size()) > budget) break;
    result.ids.insert(result.ids.end(), sentence.begin(), sentence.end());
    result.sentence_starts.push_back(static_cast<int64_t>(result.ids.size()));
  }
  return result;
}

// The sentence boundary nearest `depth` of the filler's length.
int64_t boundary_at(const Filler& filler, double depth) {
  const double target = depth * static_cast<double>(filler.ids.size());
  return *std::min_element(filler.sentence_starts.begin(), filler.sentence_starts.end(),
                           [&](int64_t a, int64_t b) {
                             return std::abs(static_cast<double>(a) - target) <
                                    std::abs(static_cast<double>(b) - target);
                           });
}

bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::string draw_passkey(Rng& rng) {
  uint64_t smallest = 1;
  for (int i = 1; i < kPasskeyDigits; ++i) smallest *= 10;
  return std::to_string(smallest + rng.below(9 * smallest));
}

PasskeyPrompt passkey_prompt(const Tokenizer& tokenizer, int64_t tokens, double depth,
                             const std::string& key) {
  const std::vector<int32_t> needle = encode_ids(
      tokenizer, " The pass key is " + key + ". Remember it. " + key + " is the pass key.");
  const std::vector<int32_t> question = encode_ids(tokenizer, kQuestion);
  const Filler text =
      filler(tokenizer, tokens - 1 - static_cast<int64_t>(needle.size() + question.size()));
  const int64_t split = boundary_at(text, depth);
  PasskeyPrompt prompt{{static_cast<int32_t>(Tokenizer::kEndOfText)}, 1 + split, key};
  prompt.ids.insert(prompt.ids.end(), text.ids.begin(), text.ids.begin() + split);
  prompt.ids.insert(prompt.ids.end(), needle.begin(), needle.end());
  prompt.ids.insert(prompt.ids.end(), text.ids.begin() + split, text.ids.end());
  prompt.ids.insert(prompt.ids.end(), question.begin(), question.end());
  return prompt;
}

bool passkey_correct(const std::string& answer, const std::string& key) {
  size_t start = 0;
  while (start < answer.size() && std::isspace(static_cast<unsigned char>(answer[start]))) ++start;
  size_t end = start;
  while (end < answer.size() && is_digit(answer[end])) ++end;
  return answer.substr(start, end - start) == key;
}

std::string passkey_answer(Decoder& model, const Tokenizer& tokenizer, const PasskeyPrompt& prompt,
                           const ForwardOptions& attention) {
  Rng unused;  // greedy decoding draws no number
  const std::vector<int32_t> ids =
      generate(model, prompt.ids, kPasskeyDigits + 1, SamplingOptions{0, 0}, unused, attention);
  // A model whose vocabulary is padded past the tokenizer's may pick an id with no text: the
  // answer ends there.
  std::vector<uint32_t> answer;
  for (size_t i = prompt.ids.size(); i < ids.size(); ++i) {
    if (ids[i] >= tokenizer.vocab_size()) break;
    answer.push_back(static_cast<uint32_t>(ids[i]));
  }
  return tokenizer.decode(answer);
}

int64_t longest_shard_tokens(const std::string& glob, int64_t vocab_size) {
  int64_t longest = 0;
  for (const std::string& path : expand_glob(glob))
    longest = std::max(longest, Shard(path, vocab_size).size());
  return longest;
}

}  // namespace ssa
