#pragma once
// The MPI backend (built where SSA_HAVE_MPI): collectives on CPU tensors over MPI_COMM_WORLD,
// each watched. The NCCL backend uses it for its host values and its bootstrap.
#include <mpi.h>

#include <functional>
#include <memory>
#include <string>

#include "train/dist/communicator.h"
#include "train/dist/watchdog.h"

// MPI_CHECK(call): raises ssa::Error naming the call and MPI's message.
#define MPI_CHECK(call) ::ssa::check_mpi((call), #call)

namespace ssa {

void check_mpi(int status, const char* call);
// Prints `message` on stderr and ends every process of MPI_COMM_WORLD with `exit_code` (mpirun
// exits with it).
[[noreturn]] void abort_mpi_job(const std::string& message, int exit_code);

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s);
  std::string description() const override;

  void all_reduce_sum(const Tensor& buffer) override;
  void reduce_scatter_sum(const Tensor& buffer, const std::vector<int64_t>& bounds) override;
  void all_gather(const Tensor& buffer, const std::vector<int64_t>& bounds) override;
  std::vector<double> sum(std::vector<double> values) override;
  uint64_t broadcast(uint64_t value) override;
  std::vector<std::string> gather_text(const std::string& text) override;
  void barrier() override;
  void set_step(int64_t step) override { watchdog_.set_step(step); }

  Watchdog& watchdog() { return watchdog_; }

 private:
  // Runs a blocking tensor collective under the watchdog, counting its time as exposed.
  void blocking(const char* collective, const std::function<void()>& call);

  Watchdog watchdog_;
};

}  // namespace ssa
