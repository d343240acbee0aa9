#include "cuda/device.cuh"
#include "cuda/rmsnorm.h"

namespace ssa::cuda {
namespace {

constexpr int kColumns = 32, kRowLanes = 8;  // a weight-gradient block: columns x row lanes
constexpr int64_t kMinChunkRows = 64, kMaxChunks = 256;

template <typename T>
__global__ void forward_kernel(const T* x, const T* weight, T* y, float* rstd, int64_t dim,
                               float eps) {
  const int64_t base = blockIdx.x * dim;
  float squares = 0;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float v = to_float(x[base + j]);
    squares += v * v;
  }
  squares = block_sum(squares);
  const float r = 1.0f / sqrtf(squares / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    y[base + j] = from_float<T>(to_float(x[base + j]) * r * to_float(weight[j]));
}

template <typename T>
__global__ void input_gradient_kernel(const T* x, const T* weight, const T* dy, const float* rstd,
                                      T* dx, int64_t dim) {
  const int64_t base = blockIdx.x * dim;
  const float r = rstd[blockIdx.x];
  float dot = 0;  // Σ_j dy_j w_j x_j; times r it is Σ_j dx̂_j x̂_j
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    dot += to_float(dy[base + j]) * to_float(weight[j]) * to_float(x[base + j]);
  const float mean_dot = block_sum(dot) * r / static_cast<float>(dim);
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float x_hat = to_float(x[base + j]) * r;
    dx[base + j] =
        from_float<T>(r * (to_float(dy[base + j]) * to_float(weight[j]) - x_hat * mean_dot));
  }
}

// partial[chunk, j] = Σ over the chunk's rows of dy[r, j] · x[r, j] · rstd[r].
template <typename T>
__global__ void weight_partials_kernel(const T* x, const T* dy, const float* rstd, float* partial,
                                       int64_t rows, int64_t dim, int64_t chunk_rows) {
  __shared__ float lane_sums[kRowLanes][kColumns + 1];
  const int64_t j = blockIdx.x * int64_t(kColumns) + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk_rows, end = min(rows, begin + chunk_rows);
  float sum = 0;
  if (j < dim)
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowLanes)
      sum += to_float(dy[r * dim + j]) * to_float(x[r * dim + j]) * rstd[r];
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || j >= dim) return;
  for (int lane = 1; lane < kRowLanes; ++lane) sum += lane_sums[lane][threadIdx.x];
  partial[blockIdx.y * dim + j] = sum;
}

template <typename T>
struct SumChunks {
  const float* partial;
  T* dw;
  int64_t chunks, dim;
  __device__ void operator()(int64_t j) const {
    float sum = 0;
    for (int64_t c = 0; c < chunks; ++c) sum += partial[c * dim + j];
    dw[j] = from_float<T>(sum);
  }
};

}  // namespace

void rmsnorm_forward(const void* x, const void* weight, void* y, float* rstd, DType dtype,
                     int64_t rows, int64_t dim, double eps) {
  if (rows == 0) return;
  with_storage_type(dtype, "rmsnorm", [&](auto zero) {
    using T = decltype(zero);
    forward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<T*>(y), rstd, dim,
        static_cast<float>(eps));
    check_launch();
  });
}

void rmsnorm_backward_input(const void* x, const void* weight, const void* dy, const float* rstd,
                            void* dx, DType dtype, int64_t rows, int64_t dim) {
  if (rows == 0) return;
  with_storage_type(dtype, "rmsnorm backward", [&](auto zero) {
    using T = decltype(zero);
    input_gradient_kernel<<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(dy), rstd,
        static_cast<T*>(dx), dim);
    check_launch();
  });
}

// The chunking depends on the shape only, never on the device.
void rmsnorm_backward_weight(const void* x, const void* dy, const float* rstd, void* dw,
                             DType dtype, int64_t rows, int64_t dim) {
  const int64_t chunks =
      std::clamp<int64_t>((rows + kMinChunkRows - 1) / kMinChunkRows, 1, kMaxChunks);
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  DeviceScratch partial(chunks * dim * sizeof(float));
  with_storage_type(dtype, "rmsnorm backward", [&](auto zero) {
    using T = decltype(zero);
    const dim3 grid(static_cast<unsigned>((dim + kColumns - 1) / kColumns),
                    static_cast<unsigned>(chunks));
    weight_partials_kernel<<<grid, dim3(kColumns, kRowLanes), 0, compute_stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(dy), rstd, partial.as<float>(), rows, dim,
        chunk_rows);
    check_launch();
    for_each(dim, SumChunks<T>{partial.as<float>(), static_cast<T*>(dw), chunks, dim});
  });
}

}  // namespace ssa::cuda
