// Data-parallel training on the MPI backend, run under mpirun -np 2 (label mpi). Every rank runs
// each case; the world-1 references run on every rank with a single-process communicator.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "op_test_util.h"
#include "train/dist/mpi_communicator.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

constexpr double kTimeout = 30;

std::shared_ptr<Communicator> mpi_world() {
  static std::shared_ptr<Communicator> comm = std::make_shared<MpiCommunicator>(kTimeout);
  return comm;
}

// A scratch directory every rank sees (named by rank 0's process id), removed by rank 0.
class SharedDir {
 public:
  explicit SharedDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              fmt::format("ssa_mpi_{}_{}", name, mpi_world()->broadcast(uint64_t(::getpid())))) {
    if (mpi_world()->rank() == 0) std::filesystem::create_directories(path_);
    mpi_world()->barrier();
  }
  ~SharedDir() {
    mpi_world()->barrier();
    if (mpi_world()->rank() == 0) std::filesystem::remove_all(path_);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string batch(int64_t micro_batch, int64_t grad_accum = 1) {
  return fmt::format("[train]\nsteps = 10\nmicro_batch = {}\ngrad_accum = {}\n", micro_batch,
                     grad_accum);
}

// ‖a − b‖ / ‖b‖ of two trainers' master weights.
double parameter_diff(const Trainer& a, const Trainer& b) {
  return relative_norm_error(a.model().params().flat().to_vector(),
                             b.model().params().flat().to_vector());
}

void check_equal_losses(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
}

}  // namespace

TEST_CASE("the MPI backend sums, reduce-scatters and all-gathers over 2 ranks") {
  Communicator& comm = *mpi_world();
  REQUIRE(comm.world() == 2);
  const double r = comm.rank();
  Tensor x = Tensor::from({1 + r, 10 + r, 100 + r, 1000 + r, 5}, {5}, DType::f32);
  comm.all_reduce_sum(x);
  CHECK(x.to_vector() == std::vector<double>{3, 21, 201, 2001, 10});
  const std::vector<int64_t> bounds{0, 3, 5};  // rank 0 owns 3 elements, rank 1 two
  Tensor y = Tensor::from({1 + r, 2 + r, 3 + r, 4 + r, 5 + r}, {5}, DType::f64);
  comm.reduce_scatter_sum(y, bounds);
  const std::vector<double> own =
      comm.rank() == 0 ? std::vector<double>{3, 5, 7} : std::vector<double>{9, 11};
  for (size_t i = 0; i < own.size(); ++i) CHECK(y.at(bounds[comm.rank()] + int64_t(i)) == own[i]);
  comm.all_gather(y, bounds);
  CHECK(y.to_vector() == std::vector<double>{3, 5, 7, 9, 11});
  // Blocking collectives: all their time is exposed; taking the total resets it.
  CHECK(comm.take_exposed_seconds() > 0);
  CHECK(comm.take_exposed_seconds() == 0);
  CHECK(comm.sum({r, 1})[1] == 2);
  CHECK(comm.broadcast(uint64_t(7 + r)) == 7);
  const std::string mine(static_cast<size_t>(3 * comm.rank()), 'x');  // "" on rank 0
  CHECK(comm.gather_text(mine) == std::vector<std::string>{"", "xxx"});
}

TEST_CASE("2 ranks with micro-batch b train as 1 process with batch 2b") {
  TempDir dir("mpi_equal");
  write_tiny_shards(dir);
  const std::string ssa = "[attention]\nmode = ssa\nblock_size = 4\ntop_k = 2\n";
  struct Case {
    const char* name;
    std::string two_ranks, one_rank;
  };
  for (const Case& c : {Case{"full attention", batch(4), batch(8)},
                        Case{"2 micro-steps per step", batch(2, 2), batch(8)},
                        Case{"ssa", batch(4) + ssa, batch(8) + ssa}}) {
    CAPTURE(c.name);
    Trainer two(tiny_settings(dir, c.two_ranks), mpi_world());
    Trainer one(tiny_settings(dir, c.one_rank, dir.file("one")));
    check_equal_losses(train_losses(two, 10), train_losses(one, 10));
    CHECK(parameter_diff(two, one) < 1e-6);
    // Validation batches are micro_batch per rank: world 2 x 4 and world 1 x 8 see the same.
    if (c.two_ranks.find("grad_accum = 1") != std::string::npos)
      CHECK(two.validation_loss() == doctest::Approx(one.validation_loss()).epsilon(1e-6));
  }
}

TEST_CASE("validation shards of fewer windows than ranks: each window counts once") {
  TempDir dir("mpi_val_one");
  write_tiny_shards(dir);
  write_shard(dir.file("one_val.bin"), tiny_corpus(17, 3));  // one window of 16 + 1 tokens
  const std::string one_window = fmt::format("[data]\nval = \"{}\"\n", dir.file("one_val.bin"));
  Trainer two(tiny_settings(dir, one_window), mpi_world());
  Trainer one(tiny_settings(dir, one_window, dir.file("one")));
  CHECK(two.validation_loss() == doctest::Approx(one.validation_loss()).epsilon(1e-6));
}

TEST_CASE("ZeRO-1 trains as plain all-reduce with half the optimizer state per rank") {
  TempDir dir("mpi_zero");
  write_tiny_shards(dir);
  Trainer plain(tiny_settings(dir, batch(4)), mpi_world());
  Trainer zero(tiny_settings(dir, batch(4) + "zero = 1\n"), mpi_world());
  check_equal_losses(train_losses(zero, 10), train_losses(plain, 10));
  CHECK(parameter_diff(zero, plain) < 1e-6);
  const double share = double(zero.optimizer_state_bytes()) / double(plain.optimizer_state_bytes());
  CHECK(share > 0.45);
  CHECK(share < 0.55);
}

TEST_CASE("every step reports the communication time its rank did not hide") {
  TempDir dir("mpi_exposed");
  write_tiny_shards(dir);
  for (const char* zero : {"zero = 0\n", "zero = 1\n"}) {
    CAPTURE(zero);
    Trainer trainer(tiny_settings(dir, batch(4) + zero), mpi_world());
    for (int step = 0; step < 2; ++step) {
      const double exposed = trainer.train_step().comm_exposed_seconds;
      CHECK(exposed > 0);
      CHECK(exposed < kTimeout);
    }
  }
}

TEST_CASE("a 2-rank checkpoint resumes on 1 rank, and a 1-rank one on 2 ranks") {
  TempDir dir("mpi_resume");
  write_tiny_shards(dir);
  SharedDir shared("resume");
  Trainer straight(tiny_settings(dir, batch(8), dir.file("straight")));
  std::vector<double> losses = train_losses(straight, 6);
  const std::vector<double> last(losses.begin() + 3, losses.end());
  for (const char* zero : {"zero = 0\n", "zero = 1\n"}) {
    CAPTURE(zero);
    {  // 2 ranks, then 1
      Trainer two(tiny_settings(dir, batch(4) + zero, shared.file("two")), mpi_world());
      train_losses(two, 3);
      const std::string checkpoint = two.save_checkpoint();  // written by rank 0
      Trainer one(tiny_settings(dir, batch(8), dir.file("one")));
      one.resume_from(checkpoint);
      check_equal_losses(train_losses(one, 3), last);
      CHECK(parameter_diff(one, straight) < 1e-6);
    }
    {  // 1 rank, then 2
      Trainer one(tiny_settings(dir, batch(8), dir.file("one_first")));
      train_losses(one, 3);
      const std::string checkpoint = one.save_checkpoint();  // every rank writes its own copy
      Trainer two(tiny_settings(dir, batch(4) + zero, shared.file("two_after")), mpi_world());
      two.resume_from(checkpoint);
      check_equal_losses(train_losses(two, 3), last);
      CHECK(parameter_diff(two, straight) < 1e-6);
    }
  }
}

TEST_CASE("ranks that start from different weights are refused") {
  TempDir dir("mpi_seed");
  write_tiny_shards(dir);
  const std::string seed = fmt::format("[train]\nseed = {}\n", 1 + mpi_world()->rank());
  const std::string message =
      error_of([&] { Trainer trainer(tiny_settings(dir, seed), mpi_world()); });
  if (mpi_world()->rank() == 0)
    CHECK(message.empty());
  else
    CHECK(message == fmt::format("this rank's config differs from rank 0's: train.seed = {} here, "
                                 "1 on rank 0; every rank must run the same config (data paths "
                                 "and train.out_dir may differ)",
                                 1 + mpi_world()->rank()));
}
