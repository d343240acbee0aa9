#include "train/dist/mpi_communicator.h"

#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <numeric>

#include "core/error.h"

namespace ssa {
namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int mpi_count(int64_t count) {
  SSA_CHECK(count <= INT_MAX, "{} elements in one MPI call: more than MPI's int count", count);
  return static_cast<int>(count);
}

MPI_Datatype summable_type(const Tensor& buffer) {
  SSA_CHECK(buffer.is_cpu(), "the MPI backend works on CPU tensors, got one on {}",
            device_name(buffer.device()));
  switch (buffer.dtype()) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    default:
      fail("MPI sums f32 or f64 buffers, got {}", dtype_name(buffer.dtype()));
  }
}

void check_bounds(const Tensor& buffer, const std::vector<int64_t>& bounds, int world) {
  SSA_CHECK(bounds.size() == static_cast<size_t>(world) + 1 && bounds.front() == 0 &&
                bounds.back() == buffer.numel(),
            "chunk bounds of {} entries for {} ranks over {} elements", bounds.size(), world,
            buffer.numel());
}

}  // namespace

void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  fail("{} failed: {}", call, std::string(text, static_cast<size_t>(length)));
}

void abort_mpi_job(const std::string& message, int exit_code) {
  std::fflush(stdout);
  fmt::print(stderr, "{}\n", message);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps the promise of [[noreturn]]
}

MpiCommunicator::MpiCommunicator(double timeout_s)
    : Communicator(world_rank(), world_size()),
      watchdog_(rank(), timeout_s, [](const std::string& message) { abort_mpi_job(message, 1); }) {}

std::string MpiCommunicator::description() const { return fmt::format("MPI, {} ranks", world()); }

void MpiCommunicator::blocking(const char* collective, const std::function<void()>& call) {
  Watchdog::Scope watch(watchdog_, collective);
  const auto start = std::chrono::steady_clock::now();
  call();
  add_exposed_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void MpiCommunicator::all_reduce_sum(const Tensor& buffer) {
  MPI_Datatype type = summable_type(buffer);
  blocking("all_reduce", [&] {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buffer.raw(), mpi_count(buffer.numel()), type, MPI_SUM,
                            MPI_COMM_WORLD));
  });
}

void MpiCommunicator::reduce_scatter_sum(const Tensor& buffer, const std::vector<int64_t>& bounds) {
  MPI_Datatype type = summable_type(buffer);
  check_bounds(buffer, bounds, world());
  const size_t element = dtype_size(buffer.dtype());
  char* data = static_cast<char*>(buffer.raw());
  // One reduce per chunk, to its owner (chunks of any length, unlike MPI_Reduce_scatter_block).
  blocking("reduce_scatter", [&] {
    for (int root = 0; root < world(); ++root) {
      char* chunk = data + static_cast<size_t>(bounds[root]) * element;
      const int count = mpi_count(bounds[root + 1] - bounds[root]);
      MPI_CHECK(MPI_Reduce(root == rank() ? MPI_IN_PLACE : chunk, chunk, count, type, MPI_SUM, root,
                           MPI_COMM_WORLD));
    }
  });
}

void MpiCommunicator::all_gather(const Tensor& buffer, const std::vector<int64_t>& bounds) {
  SSA_CHECK(buffer.is_cpu(), "the MPI backend works on CPU tensors, got one on {}",
            device_name(buffer.device()));
  check_bounds(buffer, bounds, world());
  const int64_t element = static_cast<int64_t>(dtype_size(buffer.dtype()));
  std::vector<int> counts, offsets;
  for (int r = 0; r < world(); ++r) {
    counts.push_back(mpi_count((bounds[r + 1] - bounds[r]) * element));
    offsets.push_back(mpi_count(bounds[r] * element));
  }
  blocking("all_gather", [&] {
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer.raw(), counts.data(),
                             offsets.data(), MPI_BYTE, MPI_COMM_WORLD));
  });
}

std::vector<double> MpiCommunicator::sum(std::vector<double> values) {
  Watchdog::Scope watch(watchdog_, "sum");
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values.data(), mpi_count(std::ssize(values)), MPI_DOUBLE,
                          MPI_SUM, MPI_COMM_WORLD));
  return values;
}

uint64_t MpiCommunicator::broadcast(uint64_t value) {
  Watchdog::Scope watch(watchdog_, "broadcast");
  MPI_CHECK(MPI_Bcast(&value, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
  return value;
}

std::vector<std::string> MpiCommunicator::gather_text(const std::string& text) {
  Watchdog::Scope watch(watchdog_, "all_gather");
  const int length = mpi_count(std::ssize(text));
  std::vector<int> lengths(static_cast<size_t>(world()));
  MPI_CHECK(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD));
  std::vector<int> offsets(lengths.size());
  std::exclusive_scan(lengths.begin(), lengths.end(), offsets.begin(), 0);
  std::string joined(static_cast<size_t>(offsets.back() + lengths.back()), '\0');
  MPI_CHECK(MPI_Allgatherv(text.data(), length, MPI_CHAR, joined.data(), lengths.data(),
                           offsets.data(), MPI_CHAR, MPI_COMM_WORLD));
  std::vector<std::string> texts;
  for (size_t r = 0; r < lengths.size(); ++r)
    texts.push_back(
        joined.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])));
  return texts;
}

void MpiCommunicator::barrier() {
  Watchdog::Scope watch(watchdog_, "barrier");
  MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

}  // namespace ssa
