#pragma once
// Shared pieces of the CPU kernels: deterministic task parallelism and Eigen row-major types.
#include <omp.h>

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

namespace ssa {

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Runs task(i) for i < count, each task on one thread with Eigen's own threading off (it would
// pick its blocking, and so the summation order, from the thread count).
template <typename F>
void run_tasks(int64_t count, bool parallel, F&& task) {
#pragma omp parallel if (parallel)
  {
    omp_set_num_threads(1);  // this thread's setting only
#pragma omp for schedule(static)
    for (int64_t i = 0; i < count; ++i) task(i);
  }
}

}  // namespace ssa
