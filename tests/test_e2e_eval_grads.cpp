// End to end: ssa-eval grads on a checkpoint of the tiny job, its file read back and checked
// against the loss computed here and against finite differences (float64).
#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "e2e_util.h"
#include "eval/perplexity.h"
#include "train/restore.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// The checkpoint's model in float64 (the precision of `--dtype f64`).
struct Float64Model {
  Config config;
  Decoder model;
  Float64Model(const Checkpoint& ckpt, const std::string& path)
      : config(checkpoint_config(ckpt, path)),
        model(model_config_from(config), DType::f64, Device::cpu) {
    load_flat_buffer(ckpt, path, "params/", model.params(), model.params().flat());
  }
  double loss(const Tensor& inputs, const Tensor& targets, const ForwardOptions& options) {
    NoGrad no_grad;
    return model.loss(inputs, targets, 0, options).item();
  }
};

// The index of the entry of largest magnitude (a finite difference there is well above
// rounding).
int64_t largest_entry(const Tensor& t) {
  const std::vector<double> values = t.to_vector();
  auto larger = [](double a, double b) { return std::abs(a) < std::abs(b); };
  return std::max_element(values.begin(), values.end(), larger) - values.begin();
}

}  // namespace

TEST_CASE(
    "ssa-eval grads writes the loss and every gradient; they match a direct computation "
    "and finite differences") {
  TinyJob job("e2e_grads");
  REQUIRE(job.train("--train.steps=2 --attention.mode=ssa --attention.block_size=4").exit_code ==
          0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(2));
  const std::string out = job.dir.file("grads.h5");
  Result grads =
      run(fmt::format("ssa-eval grads --checkpoint {} --dtype f64 --attention ssa "
                      "--top-k 1 --block-size 4 --out {}",
                      ckpt, out));
  REQUIRE_MESSAGE(grads.exit_code == 0, grads.output);
  CHECK(contains(grads.output, "wrote"));
  const Checkpoint file = read_checkpoint(out);
  CHECK(file.text_entry("attention", out) == "ssa");
  CHECK(file.text_entry("dtype", out) == "f64");
  CHECK(file.integer("top_k", out) == 1);
  CHECK(file.integer("block_size", out) == 4);

  const Checkpoint trained = read_checkpoint(ckpt);
  Float64Model f64(trained, ckpt);
  const Parameters& params = f64.model.params();
  for (const ParamSpec& spec : params.specs()) {
    CAPTURE(spec.name);
    const Tensor& grad = file.tensor("grads/" + spec.name, out);
    CHECK(grad.shape() == spec.shape);
    CHECK(grad.dtype() == DType::f64);
  }

  // The batch is the first of the validation windows (batch 2 of seq_len 16 by default).
  const Tensor& inputs = file.tensor("batch/inputs", out);
  const Tensor& targets = file.tensor("batch/targets", out);
  Batch first =
      eval_windows(f64.config.get_string("data.val"), 16, kTinyVocab, 2, 1).loader.next_batch(2);
  CHECK(inputs.to_vector() == first.inputs.to_vector());
  CHECK(targets.to_vector() == first.targets.to_vector());

  ForwardOptions options;
  options.align = true;
  options.top_k = 1;
  options.block_size = 4;
  options.align_weight = f64.config.get_float("attention.align_weight");
  options.align_beta = f64.config.get_float("attention.align_beta");
  const double loss = f64.loss(inputs, targets, options);
  CHECK(file.reals.at("loss") == doctest::Approx(loss).epsilon(1e-12));
  CHECK(file.reals.at("cross_entropy") ==
        doctest::Approx(f64.model.last_cross_entropy()).epsilon(1e-12));
  CHECK(file.reals.at("alignment") == doctest::Approx(f64.model.last_alignment()).epsilon(1e-12));
  CHECK(file.reals.at("alignment") > 0);  // top-1 blocks of 4: sparse differs from full

  // Central differences at the largest gradient entry of two parameters. The two SmoothL1
  // terms of the alignment have equal values, and the stop-gradients leave one derivative of
  // each: the gradient is that of CE + alpha/2 · alignment.
  ForwardOptions halved = options;
  halved.align_weight /= 2;
  for (const char* name : {"layers.0.attn.wq", "layers.1.attn.wg"}) {
    CAPTURE(name);
    size_t index = 0;
    while (params.specs()[index].name != name) ++index;
    const Tensor& grad = file.tensor(std::string("grads/") + name, out);
    const int64_t entry = largest_entry(grad);
    double* weight = params.flat().data<double>() + params.offsets()[index] + entry;
    const double original = *weight, step = 1e-5;
    *weight = original + step;
    const double above = f64.loss(inputs, targets, halved);
    *weight = original - step;
    const double below = f64.loss(inputs, targets, halved);
    *weight = original;
    CHECK(grad.at(entry) == doctest::Approx((above - below) / (2 * step)).epsilon(1e-6));
  }
}

TEST_CASE("ssa-eval grads: mistakes name the option") {
  TinyJob job("e2e_grads_usage");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(1));
  const std::string base =
      fmt::format("ssa-eval grads --checkpoint {} --out {}", ckpt, job.dir.file("grads.h5"));
  Result bf16_cpu = run(base + " --dtype bf16");
  CHECK(bf16_cpu.exit_code == 2);
  CHECK(contains(bf16_cpu.output, "--dtype bf16"));
  Result mode = run(base + " --attention dense");
  CHECK(mode.exit_code == 2);
  CHECK(contains(mode.output, "--attention must be one of full, sparse, ssa, got 'dense'"));
  Result no_out = run(fmt::format("ssa-eval grads --checkpoint {}", ckpt));
  CHECK(no_out.exit_code == 2);
  CHECK(contains(no_out.output, "--out"));
}
