// End to end: ssa-generate with and without its KV cache, in both attention modes.
#include <fstream>

#include "e2e_util.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// The tiny job trained for two steps with a vocabulary that holds <|endoftext|> (id 256), and a
// byte-level tokenizer (no merges) to print its tokens: the checkpoint and --tokenizer option.
struct Trained {
  TinyJob job{"e2e_generate"};
  std::string checkpoint = job.dir.file("out/" + checkpoint_file_name(2));
  std::string tokenizer = job.dir.file("tok.bin");
  Trained() {
    std::ofstream(job.dir.file("doc.txt")) << "a few words for a tokenizer without merges\n";
    Result tokenized = run(fmt::format("ssa-tokenize train --out {} --vocab-size 257 {}", tokenizer,
                                       job.dir.file("doc.txt")));
    REQUIRE_MESSAGE(tokenized.exit_code == 0, tokenized.output);
    Result trained = job.train("--train.steps=2 --model.vocab_size=257");
    REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  }
  Result generate(const std::string& extra) const {
    return run(fmt::format("ssa-generate --checkpoint {} --tokenizer {} --prompt 'ab' {}",
                           checkpoint, tokenizer, extra));
  }
};

}  // namespace

TEST_CASE("ssa-generate gives the same text with and without its cache, full and sparse") {
  Trained trained;
  // 40 tokens: past max_seq_len (32) and over several blocks, so top-k 1 drops most of them.
  for (const std::string attention : {"--attention full", "--attention sparse --top-k 1",
                                      "--attention sparse --top-k 2 --block-size 4"}) {
    CAPTURE(attention);
    const std::string options = attention + " --temperature 0 --tokens 40";
    Result cached = trained.generate(options);
    REQUIRE_MESSAGE(cached.exit_code == 0, cached.output);
    CHECK(cached.output.starts_with("ab"));
    Result recomputed = trained.generate(options + " --no-cache");
    REQUIRE_MESSAGE(recomputed.exit_code == 0, recomputed.output);
    CHECK(cached.output == recomputed.output);
  }
  Result sampled = trained.generate("--sample-top-k 5 --temperature 1 --tokens 8 --seed 3");
  CHECK_MESSAGE(sampled.exit_code == 0, sampled.output);

  Result unknown = trained.generate("--attention dense");
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.output, "--attention dense: expected full or sparse"));
  Result no_blocks = trained.generate("--attention sparse --top-k 0");
  CHECK(no_blocks.exit_code == 2);
  CHECK(contains(no_blocks.output, "--top-k"));
}
