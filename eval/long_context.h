#pragma once
// Long-context probes: can the model use a context longer than it was trained on? Perplexity at
// multiples of the training length (eval/perplexity.h) and passkey retrieval: a key hidden in
// filler text at some depth, asked for at the end, answered by greedy decoding.
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/tokenizer.h"
#include "models/decoder.h"

namespace ssa {

constexpr int kPasskeyDigits = 5;

struct PasskeyPrompt {
  std::vector<int32_t> ids;  // <|endoftext|>, filler with the key sentences at the depth, question
  int64_t key_offset = 0;    // index in ids of the first token of the key sentences
  std::string key;           // the digits asked for
};

// A random key of kPasskeyDigits digits, no leading zero.
std::string draw_passkey(Rng& rng);

// A prompt of about `tokens` tokens (at most one filler sentence short of it): repeated filler
// sentences with "The pass key is KEY. Remember it. KEY is the pass key." placed at the sentence
// boundary nearest `depth` (0: start, 1: end) of the filler, then "What is the pass key? The
// pass key is". Each piece is encoded on its own; as each starts with a space, the ids equal
// those of the whole text. When the key and the question alone exceed `tokens`, there is no
// filler.
PasskeyPrompt passkey_prompt(const Tokenizer& tokenizer, int64_t tokens, double depth,
                             const std::string& key);

// Whether `answer` (the decoded continuation), past leading whitespace, starts with the run of
// digits `key` and no further digit.
bool passkey_correct(const std::string& answer, const std::string& key);

// The text of kPasskeyDigits + 1 greedily decoded tokens after the prompt (enough for a space
// and the digits one token each), attention as `attention` says.
std::string passkey_answer(Decoder& model, const Tokenizer& tokenizer, const PasskeyPrompt& prompt,
                           const ForwardOptions& attention);

// The token count of the longest shard `glob` matches (perplexity at seq_len needs one of at
// least seq_len + 1).
int64_t longest_shard_tokens(const std::string& glob, int64_t vocab_size);

}  // namespace ssa
