#include "train/dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>

#include "cuda/runtime/check.h"
#include "cuda/runtime/stream.h"
#include "train/dist/mpi_communicator.h"

// NCCL_CHECK(call): raises ssa::Error naming the call and NCCL's message.
#define NCCL_CHECK(call)                                                                         \
  do {                                                                                           \
    ncclResult_t status_ = (call);                                                               \
    if (status_ != ncclSuccess)                                                                  \
      ::ssa::detail::check_failed(__FILE__, __LINE__, #call,                                     \
                                  ::fmt::format("NCCL error: {}", ncclGetErrorString(status_))); \
  } while (0)

namespace ssa {
namespace {

ncclDataType_t summable_type(const Tensor& buffer) {
  SSA_CHECK(!buffer.is_cpu(), "the NCCL backend works on GPU tensors, got a CPU one");
  switch (buffer.dtype()) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    default:
      fail("NCCL sums f32 or f64 buffers, got {}", dtype_name(buffer.dtype()));
  }
}

void select_gpu(int local_rank) {
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  if (count == 0) fail("train.device = cuda, but this rank sees no GPU");
  CUDA_CHECK(cudaSetDevice(local_rank % count));
}

// Collectives run on their own stream: each waits for the compute stream's work issued before
// it (an event), so a gradient bucket is summed while backward goes on; wait() orders the
// compute stream after them and holds the host until they are done, under the watchdog. The
// exposed time is how long the collectives ran on after the compute issued before wait().
class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(int local_rank, double timeout_s)
      : NcclCommunicator(std::make_unique<MpiCommunicator>(timeout_s), local_rank) {}

  ~NcclCommunicator() override {
    ncclCommDestroy(comm_);
    cudaEventDestroy(issued_);
    cudaEventDestroy(compute_done_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }

  std::string description() const override {
    return fmt::format("NCCL {}.{} over MPI, {} ranks", NCCL_MAJOR, NCCL_MINOR, world());
  }

  void all_reduce_sum(const Tensor& buffer) override {
    ncclDataType_t type = summable_type(buffer);
    start("all_reduce");
    NCCL_CHECK(ncclAllReduce(buffer.raw(), buffer.raw(), static_cast<size_t>(buffer.numel()), type,
                             ncclSum, comm_, stream_));
  }

  void reduce_scatter_sum(const Tensor& buffer, const std::vector<int64_t>& bounds) override {
    ncclDataType_t type = summable_type(buffer);
    const size_t element = dtype_size(buffer.dtype());
    char* data = static_cast<char*>(buffer.raw());
    start("reduce_scatter");
    // One reduce per chunk, to its owner: chunks of any length (ncclReduceScatter needs equal).
    NCCL_CHECK(ncclGroupStart());
    for (int root = 0; root < world(); ++root) {
      char* chunk = data + static_cast<size_t>(bounds[root]) * element;
      NCCL_CHECK(ncclReduce(chunk, chunk, static_cast<size_t>(bounds[root + 1] - bounds[root]),
                            type, ncclSum, root, comm_, stream_));
    }
    NCCL_CHECK(ncclGroupEnd());
  }

  void all_gather(const Tensor& buffer, const std::vector<int64_t>& bounds) override {
    SSA_CHECK(!buffer.is_cpu(), "the NCCL backend works on GPU tensors, got a CPU one");
    const size_t element = dtype_size(buffer.dtype());
    char* data = static_cast<char*>(buffer.raw());
    start("all_gather");
    NCCL_CHECK(ncclGroupStart());
    for (int root = 0; root < world(); ++root) {
      char* chunk = data + static_cast<size_t>(bounds[root]) * element;
      NCCL_CHECK(ncclBroadcast(chunk, chunk,
                               static_cast<size_t>(bounds[root + 1] - bounds[root]) * element,
                               ncclUint8, root, comm_, stream_));
    }
    NCCL_CHECK(ncclGroupEnd());
  }

  std::vector<double> sum(std::vector<double> values) override {
    return host_->sum(std::move(values));
  }
  uint64_t broadcast(uint64_t value) override { return host_->broadcast(value); }
  std::vector<std::string> gather_text(const std::string& text) override {
    return host_->gather_text(text);
  }
  void barrier() override { host_->barrier(); }
  void set_step(int64_t step) override { host_->set_step(step); }

  void wait() override {
    if (!pending_) return;
    CUDA_CHECK(cudaEventRecord(compute_done_, cuda::compute_stream()));
    CUDA_CHECK(cudaEventRecord(done_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(), done_, 0));
    CUDA_CHECK(cudaEventSynchronize(done_));
    host_->watchdog().end();
    pending_ = false;
    CUDA_CHECK(cudaEventSynchronize(compute_done_));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, compute_done_, done_));
    add_exposed_seconds(std::max(0.0f, ms) / 1e3);
  }

 private:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> host, int local_rank)
      : Communicator(host->rank(), host->world()), host_(std::move(host)) {
    select_gpu(local_rank);  // before NCCL and the streams are made on it
    ncclUniqueId id;
    if (rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    {
      Watchdog::Scope watch(host_->watchdog(), "nccl_init");
      MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
      NCCL_CHECK(ncclCommInitRank(&comm_, world(), id, rank()));
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&issued_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreate(&compute_done_));
    CUDA_CHECK(cudaEventCreate(&done_));
  }

  // Orders the next collective after the compute stream's work so far; the first one since
  // wait() starts the watchdog (it ends when wait() sees them all done).
  void start(const char* collective) {
    CUDA_CHECK(cudaEventRecord(issued_, cuda::compute_stream()));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, issued_, 0));
    if (!pending_) host_->watchdog().begin(collective);
    pending_ = true;
  }

  std::unique_ptr<MpiCommunicator> host_;  // host values, bootstrap, watchdog
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t issued_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, done_ = nullptr;  // timed: the exposed time
  bool pending_ = false;                                 // collectives issued since the last wait()
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(int local_rank, double timeout_s) {
  return std::make_unique<NcclCommunicator>(local_rank, timeout_s);
}

}  // namespace ssa
