#include "train/dist/communicator.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/tool.h"
#ifdef SSA_HAVE_MPI
#include "train/dist/mpi_communicator.h"
#endif
#ifdef SSA_HAVE_NCCL
#include "train/dist/nccl_communicator.h"
#endif

namespace ssa {
namespace {

class SingleProcess : public Communicator {
 public:
  SingleProcess() : Communicator(0, 1) {}
  std::string description() const override { return "single process"; }
  void all_reduce_sum(const Tensor&) override {}
  void reduce_scatter_sum(const Tensor&, const std::vector<int64_t>&) override {}
  void all_gather(const Tensor&, const std::vector<int64_t>&) override {}
  std::vector<double> sum(std::vector<double> values) override { return values; }
  uint64_t broadcast(uint64_t value) override { return value; }
  std::vector<std::string> gather_text(const std::string& text) override { return {text}; }
  void barrier() override {}
};

// The world size an MPI launcher announces in the environment, 0 when none started us.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* value = std::getenv(name)) return std::max(1, std::atoi(value));
  return std::getenv("PMIX_RANK") != nullptr ? 1 : 0;
}

}  // namespace

std::unique_ptr<Communicator> single_process_communicator() {
  return std::make_unique<SingleProcess>();
}

Job::Job([[maybe_unused]] int& argc, [[maybe_unused]] char**& argv) {
  const int announced = launcher_world_size();
  if (announced == 0) return;
#ifdef SSA_HAVE_MPI
  int provided = 0;
  // The watchdog's thread may end the job (MPI_Abort) while the main thread is inside MPI.
  MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided));
  mpi_ = true;
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  MPI_CHECK(MPI_Comm_free(&node));
#else
  if (announced > 1)
    fail(
        "started by an MPI launcher as one of {} processes, but this build has no MPI "
        "(install libopenmpi-dev and reconfigure with -DSSA_MPI=ON)",
        announced);
#endif
}

Job::~Job() {
#ifdef SSA_HAVE_MPI
  if (mpi_) MPI_Finalize();
#endif
}

std::unique_ptr<Communicator> Job::communicator(Device device, double timeout_s) const {
  if (world_ == 1) return single_process_communicator();
#ifdef SSA_HAVE_MPI
  if (device == Device::cpu) return std::make_unique<MpiCommunicator>(timeout_s);
#endif
#ifdef SSA_HAVE_NCCL
  return make_nccl_communicator(local_rank_, timeout_s);
#else
  (void)device;
  (void)timeout_s;
  fail(
      "train.device = cuda on {} ranks needs NCCL, which this build lacks (install NCCL and "
      "reconfigure with -DSSA_NCCL=ON)",
      world_);
#endif
}

void Job::abort(const std::string& program, const std::string& message, int exit_code) const {
  const std::string line = world_ > 1 ? fmt::format("{}: rank {}: {}", program, rank_, message)
                                      : fmt::format("{}: error: {}", program, message);
#ifdef SSA_HAVE_MPI
  if (mpi_) abort_mpi_job(line, exit_code);
#endif
  std::fflush(stdout);
  fmt::print(stderr, "{}\n", line);
  std::exit(exit_code);
}

int run_job(int& argc, char**& argv, const std::string& program,
            const std::function<int(const Job&)>& body) {
  return run_tool(program, [&] {
    Job job(argc, argv);
    try {
      return body(job);
    } catch (const HelpRequested&) {
      if (job.rank() == 0) throw;
      return 0;
    } catch (const UsageError& error) {
      // One process: run_tool prints it with the pointer to --help and returns 2. Under mpirun
      // every rank must stop, so the job is aborted, with the same exit code.
      if (job.world() == 1) throw;
      job.abort(program, fmt::format("{}; {}", error.what(), help_pointer(program)), 2);
    } catch (const std::exception& error) {
      job.abort(program, error.what(), 1);
    }
  });
}

}  // namespace ssa
