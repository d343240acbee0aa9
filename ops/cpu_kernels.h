#pragma once
// Shared pieces of the CPU kernels: when to go parallel, deterministic task parallelism,
// Eigen row-major types, the logistic sigmoid.
#include <omp.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace ssa {

// Below these sizes a kernel runs on one thread: elements of elementwise work, multiply-adds of
// attention.
constexpr int64_t kParallelElements = 1 << 15;
constexpr int64_t kParallelWork = int64_t{1} << 16;

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

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace ssa
