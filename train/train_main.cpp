// ssa-train: pretrain a decoder from token shards, as the config says; resume from checkpoints.
#include <fmt/format.h>

#include <cstdio>

#include "train/checkpoint.h"
#include "train/dist/communicator.h"
#include "train/device.h"
#include "train/settings.h"
#include "train/trainer.h"

using namespace ssa;

namespace {

constexpr const char* kUsage = R"(usage: ssa-train [--config FILE] [--section.key=value ...] [--resume auto|PATH]
                 [--print-config] [--help]

Trains the model the config describes on the shards data.train names, writing log.jsonl and
checkpoints (ckpt_<step>.h5) to train.out_dir. Values come from the defaults below, then FILE,
then the --section.key=value overrides, in that order.

  --resume auto   continue from the newest checkpoint in train.out_dir (start fresh if none)
  --resume PATH   continue from that checkpoint
  --print-config  print the resolved config and exit

Without --resume, an out_dir that already holds checkpoints is refused (nothing is overwritten).

Data parallel: launch with mpirun (one process per GPU, or per CPU slot with train.device = cpu),
e.g. mpirun -np 2 ssa-train --config FILE. Every rank trains train.micro_batch sequences per
micro-step; world W with micro-batch b trains as one process with W*b, so a run may resume on
another number of ranks. Rank 0 logs and writes checkpoints; any rank's error ends the job.

Config keys (section.key: type, default, meaning):
)";

struct CommandLine {
  std::string config_path;
  std::string resume;  // "", "auto" or a checkpoint path
  bool print_config = false;
  bool help = false;
};

// Splits off our own flags; the others are left for Config::apply_overrides.
CommandLine parse_flags(int argc, char** argv, std::vector<const char*>& rest) {
  CommandLine cl;
  rest.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) fail("{} needs a value", flag);
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") cl.help = true;
    else if (arg == "--print-config") cl.print_config = true;
    else if (arg == "--config") cl.config_path = value("--config");
    else if (arg.starts_with("--config=")) cl.config_path = arg.substr(9);
    else if (arg == "--resume") cl.resume = value("--resume");
    else if (arg.starts_with("--resume=")) cl.resume = arg.substr(9);
    else rest.push_back(argv[i]);
  }
  return cl;
}

Config resolve_config(const CommandLine& cl, const std::vector<const char*>& rest) {
  Config config = default_train_config();
  if (!cl.config_path.empty()) config.load_file(cl.config_path);
  std::vector<std::string> unknown =
      config.apply_overrides(static_cast<int>(rest.size()), rest.data());
  if (!unknown.empty())
    fail("unexpected argument '{}' (options are --config, --resume, --print-config, --help and "
         "--section.key=value)",
         unknown.front());
  return config;
}

// The checkpoint to resume from, or "" to start fresh.
std::string resume_path(const std::string& resume, const std::string& out_dir) {
  if (resume.empty()) {
    if (!latest_checkpoint(out_dir).empty())
      fail("train.out_dir '{}' already holds checkpoints; pass --resume auto to continue from "
           "the newest, or choose another train.out_dir",
           out_dir);
    return "";
  }
  if (resume == "auto") return latest_checkpoint(out_dir);
  return resume;
}

void print_startup(const TrainSettings& s, const Trainer& trainer, const std::string& resume) {
  const Parameters& params = trainer.model().params();
  const RunSettings& r = s.run;
  const int world = trainer.communicator().world();
  fmt::print("ssa-train\n{}\n", std::string(60, '-'));
  fmt::print("{}", s.config_text);
  fmt::print("{}\n", std::string(60, '-'));
  fmt::print("{:<24}{}\n", "device", device_description(r.device));
  fmt::print("{:<24}{}\n", "ranks", trainer.communicator().description());
  fmt::print("{:<24}{}\n", "precision",
             r.compute_dtype == r.dtype ? std::string(dtype_name(r.dtype))
                                        : fmt::format("{} compute over {} master weights",
                                                      dtype_name(r.compute_dtype),
                                                      dtype_name(r.dtype)));
  fmt::print("{:<24}{} ({:.2f} M)\n", "parameters", params.count(), params.count() / 1e6);
  const size_t compute_copy = r.compute_dtype == r.dtype ? 0 : dtype_size(r.compute_dtype);
  fmt::print("{:<24}{:.1f} MiB per rank (params, grads, AdamW moments{})\n", "state memory",
             (static_cast<double>(params.count()) *
                  static_cast<double>(2 * dtype_size(r.dtype) + compute_copy) +
              static_cast<double>(trainer.optimizer_state_bytes())) /
                 (1 << 20),
             compute_copy > 0 ? ", compute copy" : "");
  fmt::print("{:<24}{:.1f} MiB per rank (AdamW moments{})\n", "optimizer state",
             static_cast<double>(trainer.optimizer_state_bytes()) / (1 << 20),
             r.zero ? fmt::format(", ZeRO-1 chunk of {} ranks", world) : "");
  fmt::print("{:<24}{}\n", "tokens per step", r.micro_batch * r.seq_len * r.grad_accum * world);
  fmt::print("{:<24}{:.3g}\n", "train FLOPs per token", trainer.model().flops_per_token(r.seq_len));
  fmt::print("{:<24}{}\n", "start", resume.empty() ? "fresh" : "resume from " + resume);
  fmt::print("{}\n", std::string(60, '-'));
  std::fflush(stdout);
}

int run(int argc, char** argv, const Job& job) {
  std::vector<const char*> rest;
  CommandLine cl = parse_flags(argc, argv, rest);
  const bool leader = job.rank() == 0;
  if (cl.help) {
    if (leader) fmt::print("{}{}", kUsage, default_train_config().help_text());
    return 0;
  }
  Config config = resolve_config(cl, rest);
  if (cl.print_config) {
    if (leader) fmt::print("{}", config.to_text());
    return 0;
  }
  TrainSettings settings = train_settings_from(config);
  std::string resume = resume_path(cl.resume, settings.run.out_dir);
  Trainer trainer(settings, job.communicator(settings.run.device, settings.run.comm_timeout_s));
  if (leader) print_startup(settings, trainer, resume);
  if (!resume.empty()) trainer.resume_from(resume);
  trainer.run(resume_command({argv, argv + argc}));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_job(argc, argv, "ssa-train",
                 [&](const Job& job) { return run(argc, argv, job); });
}
