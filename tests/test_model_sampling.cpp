// Sampling draws only the ids the tokenizer can decode (SamplingOptions::decodable_ids).
#include "models/sampling.h"
#include "op_test_util.h"

using namespace ssa;

TEST_CASE("sampling draws only decodable ids, greedy or not") {
  // The likeliest ids by far are 6 and 7, past the 5 the tokenizer decodes.
  const std::vector<double> logits = {0.1, 0.5, 0.2, 0.3, 0.4, 0.0, 9.0, 8.0};
  Rng rng(3);
  CHECK(sample_token(logits, {0, 0, 5}, rng) == 1);
  CHECK(sample_token(logits, {0, 0, 0}, rng) == 6);
  for (int64_t top_k : {0, 2, 40}) {
    CAPTURE(top_k);
    for (int draw = 0; draw < 200; ++draw) CHECK(sample_token(logits, {1.0, top_k, 5}, rng) < 5);
  }
}
