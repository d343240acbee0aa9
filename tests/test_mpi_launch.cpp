// Whole jobs started with mpirun (label mpi): ssa-train on 2 ranks logs the losses of one
// process with twice the micro-batch and resumes across world sizes; 8 ranks log those of one
// process with 8 micro-steps; a rank that fails or hangs ends the job non-zero, soon, naming
// itself.
#include <chrono>
#include <fstream>

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

// `command` (a program of build/bin or build/tests with its arguments) on `ranks` processes.
Launch mpirun(int ranks, const std::string& command) {
  const auto start = std::chrono::steady_clock::now();
  const std::string line =
      fmt::format("{} --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np {} {} 2>&1",
                  SSA_MPIRUN, ranks, command);
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

}  // namespace

TEST_CASE("ssa-train on 2 ranks trains as 1 rank with twice the micro-batch, across resumes") {
  TinyJob job("mpi_launch");
  const std::string one = job.dir.file("one"), two = job.dir.file("two");
  Result single = job.train(fmt::format(
      "--train.micro_batch=8 --train.ckpt_every=3 --train.keep_last=0 --train.out_dir={}", one));
  REQUIRE_MESSAGE(single.exit_code == 0, single.output);
  Launch pair = mpirun(2, train_command(job, fmt::format(
      "--train.micro_batch=4 --train.ckpt_every=3 --train.keep_last=0 --train.out_dir={}", two)));
  REQUIRE_MESSAGE(pair.result.exit_code == 0, pair.result.output);
  CHECK(contains(pair.result.output, "MPI, rank 0 of 2"));
  check_equal(logged_losses(two, 0), logged_losses(one, 0));

  const std::string middle = checkpoint_file_name(3);
  Result to_one = job.train(fmt::format("--train.micro_batch=8 --train.out_dir={} --resume {}",
                                        job.dir.file("a"), fmt::format("{}/{}", two, middle)));
  REQUIRE_MESSAGE(to_one.exit_code == 0, to_one.output);
  check_equal(logged_losses(job.dir.file("a"), 3), logged_losses(one, 3));
  Launch to_two = mpirun(2, train_command(job, fmt::format(
      "--train.micro_batch=4 --train.zero=1 --train.out_dir={} --resume {}", job.dir.file("b"),
      fmt::format("{}/{}", one, middle))));
  REQUIRE_MESSAGE(to_two.result.exit_code == 0, to_two.result.output);
  check_equal(logged_losses(job.dir.file("b"), 3), logged_losses(one, 3));
}

TEST_CASE("a rank that raises at step 3 ends the whole job non-zero with its message") {
  TinyJob job("mpi_raise");
  Launch launch = mpirun(2, fmt::format("{}/mpi_fault_worker raise {}", SSA_TEST_BIN_DIR, job.config));
  CHECK(launch.result.exit_code != 0);
  CHECK_MESSAGE(contains(launch.result.output, "mpi_fault_worker: rank 1: injected failure at step 3"),
                launch.result.output);
  CHECK(launch.seconds < 20);
}

TEST_CASE("a collective that does not finish in train.comm_timeout_s aborts, naming rank and step") {
  TinyJob job("mpi_hang");
  std::ofstream(job.config, std::ios::app) << "comm_timeout_s = 1\n";  // the [train] section
  Launch launch = mpirun(2, fmt::format("{}/mpi_fault_worker hang {}", SSA_TEST_BIN_DIR, job.config));
  CHECK(launch.result.exit_code != 0);
  CHECK_MESSAGE(contains(launch.result.output, "rank 0: all_reduce at step 3 did not finish within 1 s"),
                launch.result.output);
  CHECK(launch.seconds < 20);
}

TEST_CASE("ssa-train on 8 ranks trains as 1 process with 8 micro-steps, plain and ZeRO-1") {
  TinyJob job("mpi_eight");
  const std::string run = "--attention.mode=ssa --attention.block_size=4 --attention.top_k=2 "
                          "--train.steps=50 --train.ckpt_every=-1 --data.val= --train.micro_batch=1";
  const std::string one = job.dir.file("one");
  Result single = job.train(fmt::format("{} --train.grad_accum=8 --train.out_dir={}", run, one));
  REQUIRE_MESSAGE(single.exit_code == 0, single.output);
  for (int zero : {0, 1}) {
    CAPTURE(zero);
    const std::string eight = job.dir.file(fmt::format("eight_{}", zero));
    Launch launch = mpirun(8, train_command(job, fmt::format("{} --train.zero={} --train.out_dir={}",
                                                              run, zero, eight)));
    REQUIRE_MESSAGE(launch.result.exit_code == 0, launch.result.output);
    check_equal(logged_losses(eight, 0), logged_losses(one, 0));
    CHECK(logged_losses(eight, 0).size() == 50);
  }
}
