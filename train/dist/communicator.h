#pragma once
// Data-parallel communication. A Communicator knows who this process is (rank, world size) and
// runs the collectives training needs over flat buffers. Backends:
//  - single process: a world of 1, every collective the identity;
//  - MPI: CPU tensors, so every distributed code path runs on a CPU machine under mpirun;
//  - NCCL: GPU tensors, bootstrapped over MPI (rank 0 makes the NCCL id and broadcasts it);
//    collectives run on a communication stream, ordered after the compute stream's work by
//    events (train/dist/nccl_communicator.cpp).
// Rank and world come from MPI; the GPU is the node-local rank modulo the visible GPUs.
// Every collective is watched: one not finished within the timeout ends the whole job with a
// message naming the rank, the collective and the step (never a hang).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ssa {

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int world() const { return world_; }
  virtual std::string description() const = 0;

  // buffer = the element-wise sum over ranks of buffer (f32 or f64).
  virtual void all_reduce_sum(const Tensor& buffer) = 0;
  // `bounds` (world + 1 ascending offsets, 0 to buffer.numel()) cut `buffer` into one chunk per
  // rank, of any lengths. reduce_scatter_sum: this rank's chunk becomes the sum over ranks of
  // that chunk (the other chunks are left undefined). all_gather: chunk r of every rank becomes
  // rank r's chunk (any dtype).
  virtual void reduce_scatter_sum(const Tensor& buffer, const std::vector<int64_t>& bounds) = 0;
  virtual void all_gather(const Tensor& buffer, const std::vector<int64_t>& bounds) = 0;
  // Host values: the element-wise sum over ranks; rank 0's value on every rank.
  virtual std::vector<double> sum(std::vector<double> values) = 0;
  virtual uint64_t broadcast(uint64_t value) = 0;
  // Every rank's `text` (any lengths), indexed by rank, on every rank.
  virtual std::vector<std::string> gather_text(const std::string& text) = 0;
  virtual void barrier() = 0;
  // Until wait(), a tensor collective may still be running (NCCL issues them asynchronously);
  // the compute stream's later work is ordered after it either way.
  virtual void wait() {}

  // The step the watchdog names when a collective does not finish in time.
  virtual void set_step(int64_t) {}

  // Seconds this rank waited on tensor collectives since the last call, beyond the compute they
  // overlapped: NCCL times on the GPU how long its collectives ran on after the compute issued
  // before wait(); MPI's collectives block, so all their time counts.
  double take_exposed_seconds() { return std::exchange(exposed_seconds_, 0.0); }

 protected:
  Communicator(int rank, int world) : rank_(rank), world_(world) {}
  void add_exposed_seconds(double seconds) { exposed_seconds_ += seconds; }

 private:
  int rank_, world_;
  double exposed_seconds_ = 0;
};

// A world of one process.
std::unique_ptr<Communicator> single_process_communicator();

// The processes of one training job. When an MPI launcher started this process (mpirun sets
// OMPI_COMM_WORLD_SIZE, Hydra PMI_SIZE, PMIx PMIX_RANK) MPI runs from construction to
// destruction; otherwise the job is this one process.
class Job {
 public:
  Job(int& argc, char**& argv);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int local_rank() const { return local_rank_; }  // among the ranks of this node
  // The communicator to train on `device` with: single process in a world of 1, MPI on the CPU,
  // NCCL on GPUs (which also selects this rank's GPU). Collectives not finished within
  // timeout_s abort the job.
  std::unique_ptr<Communicator> communicator(Device device, double timeout_s) const;
  // Ends every process of the job with exit_code after printing "<program>: rank R: message"
  // (a world of 1: "<program>: error: message") on stderr.
  [[noreturn]] void abort(const std::string& program, const std::string& message,
                          int exit_code) const;

 private:
  bool mpi_ = false;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
};

// The main of a job's process (core/tool.h's run_tool around a Job): runs body and returns its
// exit code. --help prints on rank 0 only; an exception (on any rank) ends every rank with exit
// code 1 and "<program>: rank R: <message>" (Job::abort); a usage error with exit code 2 and
// the pointer to --help after the message.
int run_job(int& argc, char**& argv, const std::string& program,
            const std::function<int(const Job&)>& body);

}  // namespace ssa
