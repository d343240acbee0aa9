// End to end: a checkpoint whose weights hold a NaN (its checksum valid) is refused by the
// commands that run its model, instead of giving results that look valid.
#include "e2e_util.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("ssa-eval and ssa-generate refuse a checkpoint whose weights are not finite") {
  TinyJob job("e2e_eval_weights");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string trained = job.dir.file("out/" + checkpoint_file_name(1));
  Checkpoint ckpt = read_checkpoint(trained);
  std::string poisoned_name;
  for (auto& [name, values] : ckpt.tensors)
    if (name == "params/layers.1.attn.wq") {
      values.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
      poisoned_name = name;
    }
  REQUIRE(poisoned_name == "params/layers.1.attn.wq");
  const std::string poisoned = job.dir.file("nan.h5");
  write_checkpoint(poisoned, ckpt);  // a valid checksum over the NaN
  const std::string refused = "error: checkpoint " + poisoned +
                              ": dataset 'params/layers.1.attn.wq' holds a non-finite value "
                              "(NaN or infinity) at index 3";
  for (const std::string command :
       {"ssa-eval stats --checkpoint {}", "ssa-eval ppl --checkpoint {}",
        "ssa-eval grads --checkpoint {0} --out {0}.grads.h5",
        "ssa-generate --checkpoint {} --tokenizer none.bin --tokens 2"}) {
    CAPTURE(command);
    Result result = run(fmt::format(fmt::runtime(command), poisoned));
    CHECK(result.exit_code == 1);
    CHECK_MESSAGE(contains(result.output, refused), result.output);
  }
}
