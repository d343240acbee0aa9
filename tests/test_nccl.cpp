// The NCCL backend, run under mpirun with one rank per GPU (label gpu; built where NCCL is).
// ctest runs it as a world of one (mpirun -np 1), where every sum is over one rank but still
// goes through NCCL, its communication stream and its events; on a machine with W GPUs
// `mpirun -np W build/tests/test_nccl` runs the same cases over W ranks.
#include <doctest/doctest.h>

#include "autograd/autograd.h"
#include "op_test_util.h"
#include "train/dist/data_parallel.h"
#include "train/dist/mpi_communicator.h"
#include "train/dist/nccl_communicator.h"
#include "train/trainer.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

constexpr double kTimeout = 60;

int node_local_rank() {
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int rank = 0;
  MPI_CHECK(MPI_Comm_rank(node, &rank));
  MPI_CHECK(MPI_Comm_free(&node));
  return rank;
}

// Made before any GPU tensor of a test: it selects this rank's GPU.
std::shared_ptr<Communicator> nccl_world() {
  static std::shared_ptr<Communicator> comm = make_nccl_communicator(node_local_rank(), kTimeout);
  return comm;
}

std::vector<double> flat_gradient(const Trainer& trainer) {
  return trainer.model().params().flat_grad().to(Device::cpu).to_vector();
}

// Every rank trains on the same batch here, so the sum over ranks is world × its own.
std::vector<double> times_world(std::vector<double> values) {
  for (double& value : values) value *= nccl_world()->world();
  return values;
}

}  // namespace

TEST_CASE("NCCL sums, reduce-scatters and all-gathers GPU buffers over the ranks") {
  Communicator& comm = *nccl_world();
  const int world = comm.world(), rank = comm.rank();
  const int64_t n = 1000;
  std::vector<double> mine(n), sum(n);
  for (int64_t i = 0; i < n; ++i) {
    mine[i] = double(i % 97) + rank;
    sum[i] = world * double(i % 97) + world * (world - 1) / 2.0;
  }
  Tensor x = Tensor::from(mine, {n}, DType::f32).to(Device::cuda);
  comm.all_reduce_sum(x);
  comm.wait();
  CHECK(x.to(Device::cpu).to_vector() == sum);

  const std::vector<int64_t> bounds = chunk_bounds(n, world);
  Tensor y = Tensor::from(mine, {n}, DType::f64).to(Device::cuda);
  comm.reduce_scatter_sum(y, bounds);
  comm.wait();
  std::vector<double> got = y.to(Device::cpu).to_vector();
  for (int64_t i = bounds[rank]; i < bounds[rank + 1]; ++i) CHECK(got[i] == sum[i]);
  // All-gather bf16 weights: chunk r comes from rank r.
  std::vector<double> owner(n);
  for (int r = 0; r < world; ++r)
    for (int64_t i = bounds[r]; i < bounds[r + 1]; ++i) owner[i] = r;
  Tensor z = Tensor::from(std::vector<double>(n, rank), {n}, DType::bf16).to(Device::cuda);
  comm.all_gather(z, bounds);
  comm.wait();
  CHECK(z.to(Device::cpu).to_vector() == owner);

  const double exposed = comm.take_exposed_seconds();
  CHECK(exposed >= 0);
  CHECK(exposed < kTimeout);
  CHECK(comm.take_exposed_seconds() == 0);
}

TEST_CASE("gradient buckets summed on the communication stream during backward") {
  Communicator& comm = *nccl_world();
  TempDir dir("nccl_buckets");
  write_tiny_shards(dir);
  for (const std::string& dtype : {kCudaF32, kCudaBf16}) {
    CAPTURE(dtype);
    Trainer trainer(tiny_settings(dir, kGpuShape + dtype));
    Decoder& model = trainer.model();
    Loader loader(expand_glob(dir.file("train_*.bin")), 64, kTinyVocab, 3, true);
    const Batch batch = loader.next_batch(4);
    model.params().zero_grad();
    backward(model.loss(batch.inputs, batch.targets, 0, {}));
    const std::vector<double> local = flat_gradient(trainer);

    GradientBuckets buckets(model.params(), comm, 16 << 10);
    CHECK(buckets.count() > 4);
    model.params().zero_grad();
    backward(model.loss(batch.inputs, batch.targets, 0, {}), Tensor(), buckets.on_final());
    buckets.finish();
    CHECK(relative_error(flat_gradient(trainer), times_world(local)) < 1e-6);
    CHECK(comm.take_exposed_seconds() >= 0);
  }
}

TEST_CASE("ZeRO-1 over NCCL trains as the plain optimizer") {
  TempDir dir("nccl_zero");
  write_tiny_shards(dir);
  const std::string ssa = "[attention]\nmode = ssa\nblock_size = 16\ntop_k = 2\n";
  for (const std::string& dtype : {kCudaF32, kCudaBf16}) {
    CAPTURE(dtype);
    Trainer plain(tiny_settings(dir, kGpuShape + ssa + dtype), nccl_world());
    Trainer zero(tiny_settings(dir, kGpuShape + ssa + dtype + "zero = 1\n"), nccl_world());
    for (int step = 0; step < 5; ++step) {
      const StepResult expected = plain.train_step(), got = zero.train_step();
      CHECK(got.loss == doctest::Approx(expected.loss).epsilon(1e-5));
      CHECK(got.comm_exposed_seconds > 0);  // the reduce-scatter and all-gather are not hidden
    }
    // The weights the model computes with (ZeRO keeps only its chunk of the masters current).
    CHECK(relative_error(zero.model().params().compute_flat().to(Device::cpu).to_vector(),
                         plain.model().params().compute_flat().to(Device::cpu).to_vector()) < 1e-5);
  }
}
