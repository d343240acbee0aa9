// Where the eval commands run the model: --device and --dtype, their defaults and their errors.
// (The GPU against the CPU: test_gpu_eval.cpp.)
#include <cmath>

#include "e2e_util.h"
#include "eval/jsonl.h"
#include "train/checkpoint.h"
#include "train/device.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// ssa-eval ppl on the checkpoint, one batch, full attention and top-2; results at dir/<name>.
Result perplexity_run(const TinyJob& job, const std::string& ckpt, const std::string& name,
                      const std::string& flags) {
  return run(fmt::format("ssa-eval ppl --checkpoint {} --top-k 2 --max-batches 1 --out {} {}", ckpt,
                         job.dir.file(name), flags));
}

}  // namespace

TEST_CASE("eval placement: --device and --dtype, their defaults and their errors") {
  TinyJob job("e2e_placement");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(1));

  const Result f32 = perplexity_run(job, ckpt, "f32", "--device cpu");
  const Result f64 = perplexity_run(job, ckpt, "f64", "--device cpu --dtype f64");
  REQUIRE_MESSAGE(f32.exit_code == 0, f32.output);
  REQUIRE_MESSAGE(f64.exit_code == 0, f64.output);
  CHECK(contains(f32.output, "on cpu f32"));
  const std::vector<JsonRecord> rows32 = read_jsonl(job.dir.file("f32.json"));
  const std::vector<JsonRecord> rows64 = read_jsonl(job.dir.file("f64.json"));
  REQUIRE(rows32.size() == 2);
  REQUIRE(rows64.size() == 2);
  CHECK(std::get<std::string>(rows64[0].at("placement")) == "cpu f64");
  for (size_t i = 0; i < rows32.size(); ++i) {
    const double a = std::get<double>(rows32[i].at("perplexity"));
    const double b = std::get<double>(rows64[i].at("perplexity"));
    CHECK(std::abs(a - b) <= 1e-4 * b);
  }

  // The tiny job (head_dim 8) is not a shape the CUDA kernels take: by default it runs on the
  // CPU, in the f32 it trained in, saying why where a GPU is usable.
  const Result automatic = perplexity_run(job, ckpt, "auto", "");
  REQUIRE_MESSAGE(automatic.exit_code == 0, automatic.output);
  CHECK(contains(automatic.output, "on cpu f32"));
  CHECK(contains(automatic.output,
                 "running on the CPU: the CUDA kernels take head_dim 64 or 128 and blocks of a "
                 "multiple of 16; this model has head_dim 8 and blocks of 16") == gpu_usable());
  // head_dim 64: the GPU where one is usable.
  TinyJob wide("e2e_placement_64");
  REQUIRE(wide.train("--train.steps=1 --model.head_dim=64").exit_code == 0);
  const Result wide_auto =
      perplexity_run(wide, wide.dir.file("out/" + checkpoint_file_name(1)), "auto", "");
  REQUIRE_MESSAGE(wide_auto.exit_code == 0, wide_auto.output);
  CHECK(contains(wide_auto.output, gpu_usable() ? "on cuda f32" : "on cpu f32"));

  const Result unknown = perplexity_run(job, ckpt, "x", "--device tpu");
  CHECK(unknown.exit_code != 0);
  CHECK(contains(unknown.output, "--device must be auto, cpu or cuda, got 'tpu'"));
  const Result bf16_on_cpu = perplexity_run(job, ckpt, "x", "--device cpu --dtype bf16");
  CHECK(bf16_on_cpu.exit_code != 0);
  CHECK(contains(bf16_on_cpu.output,
                 "--dtype bf16 does not run on --device cpu (cpu: f32 or f64; cuda: f32 or bf16)"));
  if (!gpu_usable()) {
    const Result no_gpu = run(fmt::format("ssa-eval stats --checkpoint {} --device cuda", ckpt));
    CHECK(no_gpu.exit_code != 0);
    CHECK(contains(no_gpu.output, "a CUDA device was asked for"));
  }
  const Result generated = run(
      fmt::format("ssa-generate --checkpoint {} --tokenizer '' --device cpu --dtype f16", ckpt));
  CHECK(generated.exit_code != 0);
  CHECK(contains(generated.output, "--dtype must be f32, bf16 or f64, got 'f16'"));
}
