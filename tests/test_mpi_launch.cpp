// Whole jobs started with mpirun (label mpi): ssa-train on 2 ranks logs the losses of one
// process with twice the micro-batch and resumes across world sizes; 8 ranks log those of one
// process with 8 micro-steps; a rank that fails or hangs ends the job non-zero, soon, naming
// itself; SIGTERM to one rank stops every rank after the same step, with a checkpoint.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "e2e_util.h"
#include "eval/jsonl.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Launch {
  Result result;
  double seconds;
};

// The shell command that runs `command` (a program of build/bin or build/tests with its
// arguments) on `ranks` processes.
std::string mpirun_line(int ranks, const std::string& command) {
  return fmt::format("{} --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np {} {}",
                     SSA_MPIRUN, ranks, command);
}

Launch mpirun(int ranks, const std::string& command) {
  const auto start = std::chrono::steady_clock::now();
  const std::string line = mpirun_line(ranks, command) + " 2>&1";
  std::FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  check_no_sanitizer_report(output);
  return {{WIFEXITED(status) ? WEXITSTATUS(status) : -1, output},
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

std::string train_command(const TinyJob& job, const std::string& extra) {
  return fmt::format("{}/ssa-train --config {} {}", SSA_BIN_DIR, job.config, extra);
}

// The losses logged for the steps after `first_step`.
std::vector<double> logged_losses(const std::string& out_dir, double first_step) {
  std::vector<double> losses;
  for (const JsonRecord& record : read_jsonl(out_dir + "/log.jsonl"))
    if (record.count("loss") && std::get<double>(record.at("step")) > first_step)
      losses.push_back(std::get<double>(record.at("loss")));
  return losses;
}

void check_equal(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
}

// The NUL-separated strings of /proc/PID/<name> (its command line or environment).
std::vector<std::string> proc_strings(const std::string& pid, const char* name) {
  std::vector<std::string> strings;
  std::istringstream all(text_of(fmt::format("/proc/{}/{}", pid, name)));
  for (std::string entry; std::getline(all, entry, '\0');) strings.push_back(entry);
  return strings;
}

// The rank an MPI launcher gave a process, from its environment; -1 when none.
int launcher_rank(const std::string& pid) {
  for (const std::string& variable : proc_strings(pid, "environ"))
    for (const char* name : {"OMPI_COMM_WORLD_RANK=", "PMIX_RANK=", "PMI_RANK="})
      if (variable.starts_with(name)) return std::stoi(variable.substr(std::strlen(name)));
  return -1;
}

// The process ids of the ssa-train ranks whose arguments hold `marker`, by rank; waits (up to a
// minute) until `ranks` of them run.
std::map<int, pid_t> ssa_train_ranks(const std::string& marker, int ranks) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (;;) {
    std::map<int, pid_t> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string pid = entry.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::vector<std::string> args = proc_strings(pid, "cmdline");
      if (args.empty() || !args[0].ends_with("ssa-train")) continue;
      if (std::find_if(args.begin(), args.end(), [&](const std::string& arg) {
            return arg.find(marker) != std::string::npos;
          }) == args.end())
        continue;
      if (const int rank = launcher_rank(pid); rank >= 0) found[rank] = std::stoi(pid);
    }
    if (static_cast<int>(found.size()) == ranks) return found;
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("the ranks of " << marker << " never all ran");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TEST_CASE("ssa-train on 2 ranks trains as 1 rank with twice the micro-batch, across resumes") {
  TinyJob job("mpi_launch");
  const std::string one = job.dir.file("one"), two = job.dir.file("two");
  Result single = job.train(fmt::format(
      "--train.micro_batch=8 --train.ckpt_every=3 --train.keep_last=0 --train.out_dir={}", one));
  REQUIRE_MESSAGE(single.exit_code == 0, single.output);
  Launch pair = mpirun(
      2,
      train_command(
          job,
          fmt::format(
              "--train.micro_batch=4 --train.ckpt_every=3 --train.keep_last=0 --train.out_dir={}",
              two)));
  REQUIRE_MESSAGE(pair.result.exit_code == 0, pair.result.output);
  CHECK(contains(pair.result.output, "ranks                   MPI, 2 ranks\n"));
  CHECK(contains(pair.result.output, "                        rank 1: "));
  check_equal(logged_losses(two, 0), logged_losses(one, 0));

  const std::string middle = checkpoint_file_name(3);
  Result to_one = job.train(fmt::format("--train.micro_batch=8 --train.out_dir={} --resume {}",
                                        job.dir.file("a"), fmt::format("{}/{}", two, middle)));
  REQUIRE_MESSAGE(to_one.exit_code == 0, to_one.output);
  check_equal(logged_losses(job.dir.file("a"), 3), logged_losses(one, 3));
  Launch to_two = mpirun(
      2, train_command(
             job, fmt::format("--train.micro_batch=4 --train.zero=1 --train.out_dir={} --resume {}",
                              job.dir.file("b"), fmt::format("{}/{}", one, middle))));
  REQUIRE_MESSAGE(to_two.result.exit_code == 0, to_two.result.output);
  check_equal(logged_losses(job.dir.file("b"), 3), logged_losses(one, 3));
}

TEST_CASE("a rank that raises at step 3 ends the whole job non-zero with its message") {
  TinyJob job("mpi_raise");
  Launch launch =
      mpirun(2, fmt::format("{}/mpi_fault_worker raise {}", SSA_TEST_BIN_DIR, job.config));
  CHECK(launch.result.exit_code != 0);
  CHECK_MESSAGE(
      contains(launch.result.output, "mpi_fault_worker: rank 1: injected failure at step 3"),
      launch.result.output);
  CHECK(launch.seconds < 20);
}

TEST_CASE(
    "ranks of another config or data are refused at start, naming what differs; node-local "
    "copies of the data are not") {
  TinyJob job("mpi_mismatch");
  const std::string out = "--train.out_dir=" + job.dir.file("out");
  Launch mismatch = mpirun(1, train_command(job, out + " --train.steps=2") + " : -np 1 " +
                                  train_command(job, out + " --train.steps=3"));
  CHECK(mismatch.result.exit_code != 0);
  CHECK_MESSAGE(contains(mismatch.result.output,
                         "rank 1: this rank's config differs from rank 0's: train.steps = 3 here, "
                         "2 on rank 0; every rank must run the same config"),
                mismatch.result.output);
  const std::string copy = job.dir.file("copy");
  std::filesystem::create_directory(copy);
  std::vector<std::filesystem::path> shards;
  for (const auto& entry : std::filesystem::directory_iterator(job.dir.path()))
    if (entry.path().filename().string().starts_with("train_")) shards.push_back(entry.path());
  for (const auto& shard : shards)
    std::filesystem::copy_file(shard, std::filesystem::path(copy) / shard.filename());
  const std::string copied = " --data.train=" + copy + "/train_*.bin";
  Launch local = mpirun(1, train_command(job, out + "2 --train.steps=2") + " : -np 1 " +
                               train_command(job, out + "2 --train.steps=2" + copied));
  CHECK_MESSAGE(local.result.exit_code == 0, local.result.output);

  std::filesystem::copy_file(shards.front(), std::filesystem::path(copy) / "train_extra.bin");
  Launch extra = mpirun(1, train_command(job, out + "3 --train.steps=2") + " : -np 1 " +
                               train_command(job, out + "3 --train.steps=2" + copied));
  CHECK(extra.result.exit_code != 0);
  CHECK_MESSAGE(contains(extra.result.output, "rank 1: this rank's shards hold "),
                extra.result.output);
  CHECK_MESSAGE(contains(extra.result.output, "every rank must train on the same data"),
                extra.result.output);

  // A train.out_dir per rank: rank 0's holds a checkpoint, rank 1's none.
  const std::string first = job.dir.file("first"), second = job.dir.file("second");
  REQUIRE(job.train("--train.steps=2 --train.out_dir=" + first).exit_code == 0);
  const std::string resume = " --train.steps=3 --resume auto --train.out_dir=";
  Launch uneven = mpirun(
      1, train_command(job, resume + first) + " : -np 1 " + train_command(job, resume + second));
  CHECK(uneven.result.exit_code != 0);
  CHECK_MESSAGE(
      contains(uneven.result.output, "rank 1: this rank starts fresh but rank 0 resumes from " +
                                         first + "/" + checkpoint_file_name(2) +
                                         "; every rank must start from the same "
                                         "checkpoint"),
      uneven.result.output);
  // A node-local copy of rank 0's checkpoint: both resume from it.
  const auto options =
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing;
  std::filesystem::copy(first, second, options);
  Launch from_copy = mpirun(
      1, train_command(job, resume + first) + " : -np 1 " + train_command(job, resume + second));
  CHECK_MESSAGE(from_copy.result.exit_code == 0, from_copy.result.output);
}

TEST_CASE(
    "a command-line mistake under mpirun ends the job with exit code 2 and the --help pointer") {
  TinyJob job("mpi_usage");
  for (const char* mistake : {"--no-such-option", "--model.d_model=abc"}) {
    Launch launch = mpirun(2, train_command(job, mistake));
    CHECK_MESSAGE(launch.result.exit_code == 2, launch.result.output);
    CHECK_MESSAGE(contains(launch.result.output, "; run 'ssa-train --help' for usage"),
                  launch.result.output);
    CHECK(launch.seconds < 20);
  }
}

TEST_CASE(
    "a collective that does not finish in train.comm_timeout_s aborts, naming rank and step") {
  TinyJob job("mpi_hang");
  std::ofstream(job.config, std::ios::app) << "comm_timeout_s = 1\n";  // the [train] section
  Launch launch =
      mpirun(2, fmt::format("{}/mpi_fault_worker hang {}", SSA_TEST_BIN_DIR, job.config));
  CHECK(launch.result.exit_code != 0);
  CHECK_MESSAGE(
      contains(launch.result.output, "rank 0: all_reduce at step 3 did not finish within 1 s"),
      launch.result.output);
  CHECK(launch.seconds < 20);
}

TEST_CASE("ssa-train on 8 ranks trains as 1 process with 8 micro-steps, plain and ZeRO-1") {
  TinyJob job("mpi_eight");
  const std::string run =
      "--attention.mode=ssa --attention.block_size=4 --attention.top_k=2 "
      "--train.steps=50 --train.ckpt_every=-1 --data.val= --train.micro_batch=1";
  const std::string one = job.dir.file("one");
  Result single = job.train(fmt::format("{} --train.grad_accum=8 --train.out_dir={}", run, one));
  REQUIRE_MESSAGE(single.exit_code == 0, single.output);
  for (int zero : {0, 1}) {
    CAPTURE(zero);
    const std::string eight = job.dir.file(fmt::format("eight_{}", zero));
    Launch launch = mpirun(
        8,
        train_command(job, fmt::format("{} --train.zero={} --train.out_dir={}", run, zero, eight)));
    REQUIRE_MESSAGE(launch.result.exit_code == 0, launch.result.output);
    check_equal(logged_losses(eight, 0), logged_losses(one, 0));
    CHECK(logged_losses(eight, 0).size() == 50);
  }
}

TEST_CASE("SIGTERM to one rank stops every rank after the same step, with a checkpoint; exit 0") {
  TinyJob job("mpi_sigterm");
  const std::string one = job.dir.file("one"), two = job.dir.file("two");
  const std::string steps = "--train.steps=500 --data.val=";
  Result single = job.train(fmt::format("{} --train.micro_batch=8 --train.out_dir={}", steps, one));
  REQUIRE_MESSAGE(single.exit_code == 0, single.output);
  const std::string run_two =
      fmt::format("{} --train.micro_batch=4 --train.out_dir={}", steps, two);
  Background launch(mpirun_line(2, train_command(job, run_two)), job.dir.file("output.txt"));
  const std::map<int, pid_t> ranks = ssa_train_ranks(two, 2);
  wait_for_line(two + "/log.jsonl", "\"loss\"");  // training: the handlers are in place
  REQUIRE(::kill(ranks.at(1), SIGTERM) == 0);     // not rank 0: it learns of it from rank 1
  Background::Ended ended = launch.wait();
  REQUIRE_MESSAGE(ended.exit_code == 0, ended.output);
  std::smatch match;
  REQUIRE_MESSAGE(std::regex_search(ended.output, match,
                                    std::regex("ssa-train: stopped by SIGTERM at step (\\d+);")),
                  ended.output);
  const int step = std::stoi(match[1].str());
  CAPTURE(step);
  REQUIRE(step < 500);
  const std::string checkpoint = two + "/" + checkpoint_file_name(step);
  CHECK(contains(ended.output, "; checkpoint " + checkpoint + "; resume with: mpirun -np 2 "));
  CHECK(std::filesystem::exists(checkpoint));
  Launch resumed = mpirun(2, train_command(job, run_two + " --resume auto"));
  REQUIRE_MESSAGE(resumed.result.exit_code == 0, resumed.result.output);
  CHECK(contains(resumed.result.output, "resumed from " + checkpoint));
  check_equal(logged_losses(two, step), logged_losses(one, step));
}
