#pragma once
// The subcommands of ssa-bench (docs/PERF.md), one file each (eval/bench/bench_<name>.cpp, built
// with the CUDA backend only). Each takes the arguments after its name, prints a table, appends
// JSON lines to --json PATH when given, and returns the exit code; mistakes raise UsageError.
#include <string>
#include <vector>

#include "train/trainer.h"

namespace ssa {

// kernels: cuBLAS GEMMs at the configs' shapes, each fused kernel's bandwidth vs a copy.
int bench_kernels_command(const std::vector<std::string>& args);
// attention: full and sparse attention forward + backward at several lengths, TFLOP/s.
int bench_attention_command(const std::vector<std::string>& args);
// train: training steps of a config: tokens/s, MFU, peak memory.
int bench_train_command(const std::vector<std::string>& args);

// A config file in ssa-train's format, named by the file's stem ("configs/bench-1b.conf":
// "bench-1b").
struct BenchConfig {
  std::string name;
  TrainSettings settings;
};
BenchConfig load_bench_config(const std::string& path);

// Fails, naming the reason, where no GPU is usable; each command calls it once its arguments
// have been checked (so that a mistake in them is a usage error on any machine).
void require_gpu();

// Comma-separated items ("a,b"), empty items refused.
std::vector<std::string> split_list(const std::string& text, const std::string& option);

}  // namespace ssa
