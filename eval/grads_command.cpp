// ssa-eval grads: the loss and every parameter's gradient on one batch, written for the
// PyTorch parity check (eval/reference/parity_torch.py).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>

#include "autograd/autograd.h"
#include "core/command_line.h"
#include "eval/commands.h"
#include "eval/outputs.h"
#include "eval/perplexity.h"
#include "eval/placement.h"
#include "train/device.h"
#include "train/restore.h"
#include "train/settings.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    R"(Loads the checkpoint's model, takes the first batch of windows of the shards, computes the
training loss (mean cross-entropy; ssa: plus alpha times the mean alignment loss, the full path
passed on) and its gradient, and writes FILE.h5 (the checkpoint format, readable by h5py):
  batch/inputs, batch/targets   i32 [B, T]
  grads/<parameter name>        the gradient, f64 under --dtype f64, else f32
  reals loss, cross_entropy, alignment, align_weight, align_beta
  integers seq_len, batch, top_k, block_size; text checkpoint, data, attention, device, dtype)";

struct GradsRun {
  std::string checkpoint, data, attention, dtype;
  Device device = Device::cpu;
  int64_t seq_len = 0, batch = 0;
  ForwardOptions options;
};

std::string one_of(const CommandLine& line, const std::string& option, const std::string& fallback,
                   std::initializer_list<const char*> choices) {
  const std::string value = line.get(option, fallback);
  for (const char* choice : choices)
    if (value == choice) return value;
  usage_error("{} must be one of {}, got '{}'", option, fmt::join(choices, ", "), value);
}

GradsRun parse(const CommandLine& line, const Config& trained) {
  GradsRun run;
  run.checkpoint = line.get("--checkpoint");
  run.data = eval_data_glob(line, trained);
  run.seq_len = line.get_size("--seq-len", trained.get_int("data.seq_len"), 1);
  run.batch = line.get_size("--batch", 2, 1);
  run.attention =
      one_of(line, "--attention", trained.get_string("attention.mode"), {"full", "sparse", "ssa"});
  run.device =
      one_of(line, "--device", "cpu", {"cpu", "cuda"}) == "cuda" ? Device::cuda : Device::cpu;
  run.dtype =
      one_of(line, "--dtype", run.device == Device::cpu ? "f64" : "f32", {"f64", "f32", "bf16"});
  if (run.dtype == "f64" && run.device == Device::cuda)
    usage_error("--dtype f64 runs on --device cpu only (cuda computes in f32 or bf16)");
  if (run.dtype == "bf16" && run.device == Device::cpu)
    usage_error("--dtype bf16 (bf16 compute over f32 weights) needs --device cuda");
  ForwardOptions& o = run.options;
  o.path = run.attention == "sparse" ? AttentionPath::sparse : AttentionPath::full;
  o.align = run.attention == "ssa";
  o.block_size = line.get_size("--block-size", trained.get_int("attention.block_size"), 1);
  o.top_k = line.get_size("--top-k", trained.get_int("attention.top_k"), 1);
  o.align_weight = trained.get_float("attention.align_weight");
  o.align_beta = trained.get_float("attention.align_beta");
  return run;
}

// The checkpoint's weights in a model of the run's precision: f64 or f32 masters, or f32
// masters with a bf16 compute copy.
std::unique_ptr<Decoder> load_decoder(const GradsRun& run, const Checkpoint& ckpt,
                                      const Config& trained) {
  require_device(run.device);
  const DType master = run.dtype == "f64" ? DType::f64 : DType::f32;
  const DType compute = run.dtype == "bf16" ? DType::bf16 : master;
  auto model = std::make_unique<Decoder>(model_config_from(trained), master, run.device, compute);
  const Parameters& params = model->params();
  load_flat_buffer(ckpt, run.checkpoint, "params/", params, params.flat());
  params.refresh_compute_copy();
  return model;
}

// Whether `path` is what grads writes: an HDF5 file with a 'grads' group and no 'step'
// attribute, which every training checkpoint has (docs/FORMATS.md). HDF5 is asked only about a
// regular file that begins with its signature.
bool is_grads_output(const std::string& path) {
  constexpr char kHdf5Signature[] = "\x89HDF\r\n\x1a\n";
  char start[sizeof kHdf5Signature - 1] = {};
  if (!std::filesystem::is_regular_file(path) ||
      !std::ifstream(path, std::ios::binary).read(start, sizeof start) ||
      std::memcmp(start, kHdf5Signature, sizeof start) != 0)
    return false;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // a file it cannot read is not one
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return false;
  const bool grads = H5Lexists(file, "grads", H5P_DEFAULT) > 0 && H5Aexists(file, "step") == 0;
  H5Fclose(file);
  return grads;
}

// grads writes HDF5 files like the checkpoints, often beside them: it replaces an earlier grads
// output, and nothing else.
void check_replaceable(const std::string& out_path) {
  if (std::filesystem::exists(out_path) && !is_grads_output(out_path))
    usage_error(
        "--out {} exists and is not an earlier grads output (a training checkpoint, or another "
        "file); grads replaces only its own: choose another --out",
        out_path);
}

Checkpoint settings_record(const GradsRun& run) {
  Checkpoint out;
  out.text = {{"checkpoint", run.checkpoint},
              {"data", run.data},
              {"attention", run.attention},
              {"device", run.device == Device::cuda ? "cuda" : "cpu"},
              {"dtype", run.dtype}};
  out.integers = {{"seq_len", run.seq_len},
                  {"top_k", run.options.top_k},
                  {"block_size", run.options.block_size}};
  out.reals = {{"align_weight", run.options.align_weight}, {"align_beta", run.options.align_beta}};
  return out;
}

}  // namespace

int grads_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval grads", kAbout);
  line.required("--checkpoint", "PATH", "the checkpoint whose gradient to take")
      .required("--out", "FILE.h5", "where the loss, the batch and the gradients go")
      .option("--data", "GLOB", "shards to read (default: the data.val the model was trained with)")
      .option("--seq-len", "T", "tokens per window (default: the training data.seq_len)")
      .option("--batch", "B", "windows in the batch (default 2)")
      .option("--attention", "MODE", "full, sparse, or ssa (default: the training attention.mode)")
      .option("--top-k", "N",
              "sparse path: blocks per query, its own included\n"
              "(default: the training's)")
      .option("--block-size", "N", "sparse path: tokens per block (default: the training's)")
      .option("--device", "D", "cpu (default) or cuda")
      .option("--dtype", "P",
              "f64 (cpu only; the default on cpu), f32 (the default on cuda), or\n"
              "bf16 (cuda only: bf16 compute over the checkpoint's f32 weights)")
      .parse(args);
  const std::string path = line.get("--checkpoint");
  const std::string out_path = line.get("--out");
  const Checkpoint ckpt = read_checkpoint(path);
  require_finite_weights(ckpt, path);
  const Config trained = checkpoint_config(ckpt, path);
  const GradsRun run = parse(line, trained);
  check_outputs("--out", {out_path}, model_inputs(path, run.data));
  check_replaceable(out_path);
  std::unique_ptr<Decoder> model = load_decoder(run, ckpt, trained);

  EvalWindows windows =
      eval_windows(run.data, run.seq_len, model->config().vocab_size, run.batch, 1);
  const Batch batch = windows.loader.next_batch(windows.batch);
  const Parameters& params = model->params();
  params.zero_grad();
  const Tensor loss = model->loss(batch.inputs, batch.targets, 0, run.options);
  backward(loss);

  Checkpoint out = settings_record(run);
  out.integers["batch"] = windows.batch;  // --batch, or fewer where the data has fewer windows
  out.reals["loss"] = loss.item();
  out.reals["cross_entropy"] = model->last_cross_entropy();
  out.reals["alignment"] = model->last_alignment();
  out.tensors = {{"batch/inputs", batch.inputs}, {"batch/targets", batch.targets}};
  const Tensor& flat_grad = params.flat_grad();
  double squared_norm = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor grad = flat_grad.view(params.offsets()[i], params[i].shape()).to(Device::cpu);
    for (double g : grad.to_vector()) squared_norm += g * g;
    out.tensors.emplace_back("grads/" + params.specs()[i].name, grad);
  }
  write_checkpoint(out_path, out);
  fmt::print(
      "{} attention, {} on {}, batch {} x {}: loss {:.6f} (cross-entropy {:.6f}, "
      "alignment {:.6f}), gradient norm {:.6e}\nwrote {}\n",
      run.attention, run.dtype, out.text["device"], windows.batch, run.seq_len, loss.item(),
      model->last_cross_entropy(), model->last_alignment(), std::sqrt(squared_norm), out_path);
  return 0;
}

}  // namespace ssa
