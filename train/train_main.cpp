// ssa-train: pretrain a decoder from token shards, as the config says; resume from checkpoints.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/command_line.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/dist/communicator.h"
#include "train/settings.h"
#include "train/trainer.h"

using namespace ssa;

namespace {

const auto launched = std::chrono::steady_clock::now();  // static initialisation, before main

constexpr const char* kAbout =
    R"(Trains the model the config describes on the shards data.train names, writing log.jsonl and
checkpoints (ckpt_<step>.h5) to train.out_dir. Values come from the defaults below, then FILE,
then the --section.key=value overrides, in that order. Without --resume, an out_dir that
already holds checkpoints is refused (nothing is overwritten).

Data parallel: launch with mpirun (one process per GPU, or per CPU slot with train.device = cpu),
e.g. mpirun -np 2 ssa-train --config FILE. Every rank trains train.micro_batch sequences per
micro-step; world W with micro-batch b trains as one process with W*b, so a run may resume on
another number of ranks. Rank 0 logs and writes checkpoints; any rank's error ends the job.)";

struct TrainFlags {
  std::optional<std::string> config_path;  // --config, also when empty (then an error)
  std::string resume;                      // "", "auto" or a checkpoint path
  bool print_config = false;
  std::vector<std::string> overrides;  // for Config::apply_overrides
};

TrainFlags parse_flags(const std::vector<std::string>& args) {
  CommandLine line("ssa-train", kAbout);
  line.option("--config", "FILE", "the config file (ssa-train --print-config writes one)")
      .option("--resume", "auto|PATH",
              "auto: continue from the newest checkpoint in train.out_dir (start\n"
              "fresh if none); PATH: continue from that checkpoint")
      .flag("--print-config", "print the resolved config and exit")
      .footer("Config keys (section.key: type, default, meaning):\n" +
              default_train_config().help_text());
  TrainFlags flags;
  flags.overrides = line.parse_known(args);
  if (line.times("--config") > 1)
    usage_error(
        "--config is given {} times; give one file (--section.key=value overrides go on top of "
        "it)",
        line.times("--config"));
  if (line.has("--config")) flags.config_path = line.get("--config");
  flags.resume = line.get("--resume", "");
  flags.print_config = line.has("--print-config");
  return flags;
}

Config resolve_config(const TrainFlags& flags) {
  Config config = default_train_config();
  if (flags.config_path) config.load_file(*flags.config_path);
  std::vector<const char*> argv{"ssa-train"};
  for (const std::string& arg : flags.overrides) argv.push_back(arg.c_str());
  std::vector<std::string> unknown;
  try {
    unknown = config.apply_overrides(static_cast<int>(argv.size()), argv.data());
  } catch (const Error& error) {
    throw UsageError(error.what());  // an override's unknown key or bad value
  }
  if (!unknown.empty())
    usage_error(
        "unexpected argument '{}' (options are --config, --resume, --print-config, --help and "
        "--section.key=value)",
        unknown.front());
  return config;
}

// The newest checkpoint in train.out_dir, or "".
std::string newest_checkpoint(const std::string& out_dir) {
  try {
    return latest_checkpoint(out_dir);
  } catch (const Error& error) {
    fail("train.out_dir: {}", error.what());
  }
}

// The checkpoint to resume from, or "" to start fresh.
std::string resume_path(const std::string& resume, const std::string& out_dir) {
  if (resume.empty()) {
    if (!newest_checkpoint(out_dir).empty())
      fail(
          "train.out_dir '{}' already holds checkpoints; pass --resume auto to continue from "
          "the newest, or choose another train.out_dir",
          out_dir);
    return "";
  }
  if (resume == "auto") return newest_checkpoint(out_dir);
  return resume;
}

// Every rank's device, on every rank: "rank R: HOST, DEVICE" under mpirun, the device alone in
// a world of one (a collective).
std::vector<std::string> rank_devices(Communicator& comm, Device device) {
  if (comm.world() == 1) return {device_description(device)};
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::vector<std::string> devices =
      comm.gather_text(fmt::format("{}, {}", host, device_description(device)));
  for (size_t r = 0; r < devices.size(); ++r)
    devices[r] = fmt::format("rank {}: {}", r, devices[r]);
  return devices;
}

// What a rank does at the start, for a message: "resumes from PATH" or "starts fresh".
std::string start_text(const std::string& resume) {
  return resume.empty() ? "starts fresh" : "resumes from " + resume;
}

// Fails on a rank that would not start as rank 0 does: fresh, or from a checkpoint of the same
// file name (with a train.out_dir per node, each node resumes from its own copy; the checksum of
// the weights then checks the copies). A collective.
void check_same_start(Communicator& comm, const std::string& resume) {
  if (comm.world() == 1) return;
  const std::string first = comm.gather_text(resume)[0];
  if (std::filesystem::path(first).filename() == std::filesystem::path(resume).filename()) return;
  fail(
      "this rank {} but rank 0 {}; every rank must start from the same checkpoint (with a "
      "train.out_dir per node, copy rank 0's checkpoint into each)",
      start_text(resume), start_text(first));
}

void print_startup(const TrainSettings& s, const Trainer& trainer,
                   const std::vector<std::string>& devices, const std::string& resume) {
  const Parameters& params = trainer.model().params();
  const RunSettings& r = s.run;
  const int world = trainer.communicator().world();
  fmt::print("ssa-train\n{}\n", std::string(60, '-'));
  fmt::print("{}", s.config_text);
  fmt::print("{}\n", std::string(60, '-'));
  for (size_t i = 0; i < devices.size(); ++i)
    fmt::print("{:<24}{}\n", i == 0 ? "device" : "", devices[i]);
  fmt::print("{:<24}{}\n", "ranks", trainer.communicator().description());
  fmt::print("{:<24}{}\n", "precision",
             r.compute_dtype == r.dtype
                 ? std::string(dtype_name(r.dtype))
                 : fmt::format("{} compute over {} master weights", dtype_name(r.compute_dtype),
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

// The trainer; memory that runs out while it allocates the model says what the model's state
// takes and what to change.
std::unique_ptr<Trainer> start_trainer(const TrainSettings& settings, const Job& job) {
  try {
    return std::make_unique<Trainer>(
        settings, job.communicator(settings.run.device, settings.run.comm_timeout_s));
  } catch (const OutOfMemory& error) {
    const int64_t parameters = decoder_parameter_count(settings.model);
    // master weights and gradients in the master dtype, two f32 AdamW moments
    const int64_t bytes =
        parameters * (2 * static_cast<int64_t>(dtype_size(settings.run.dtype)) + 8);
    fail(
        "{}; the model's state alone (parameters, gradients, AdamW moments of {} parameters) "
        "takes about {} per rank: choose a smaller model, or spread the moments over more ranks "
        "with train.zero = 1",
        error.what(), parameters, byte_text(static_cast<size_t>(bytes)));
  }
}

// args: the command line without the program, which `program` names (for the resume line).
int run(const std::string& program, const std::vector<std::string>& args, const Job& job) {
  const TrainFlags flags = parse_flags(args);
  const bool leader = job.rank() == 0;
  Config config = resolve_config(flags);
  if (flags.print_config) {
    if (leader) fmt::print("{}", config.to_text());
    return 0;
  }
  TrainSettings settings = train_settings_from(config);
  std::string resume = resume_path(flags.resume, settings.run.out_dir);
  std::optional<Checkpoint> checkpoint;  // read before the trainer creates train.out_dir's files
  if (!resume.empty()) {
    checkpoint = read_checkpoint(resume);
    check_resumable(*checkpoint, resume, settings);
  }
  const std::unique_ptr<Trainer> started = start_trainer(settings, job);
  Trainer& trainer = *started;
  const std::vector<std::string> devices =
      rank_devices(trainer.communicator(), settings.run.device);
  if (leader) print_startup(settings, trainer, devices, resume);
  check_same_start(trainer.communicator(), resume);
  if (checkpoint) {
    trainer.resume_from(*checkpoint, resume);
    checkpoint.reset();  // its host copy of the weights and moments
  }
  if (leader) {
    const std::chrono::duration<double> start_up = std::chrono::steady_clock::now() - launched;
    fmt::print("start-up {:.1f} s (launch to the first step)\n", start_up.count());
    std::fflush(stdout);
  }
  std::vector<std::string> command_line{program};
  command_line.insert(command_line.end(), args.begin(), args.end());
  trainer.run(resume_command(command_line));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_job(argc, argv, "ssa-train",
                 [&](const Job& job) { return run(argv[0], arguments(argc, argv, 1), job); });
}
