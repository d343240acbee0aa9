#include "cuda/device.cuh"
#include "cuda/rope.h"

namespace ssa::cuda {
namespace {

// One pair (i, i + half) of one row per index.
template <typename T, typename Table>
struct Rotate {
  const T* x;
  T* out;
  const Table* cos;
  const Table* sin;
  RopeDims d;
  float direction;
  __device__ void operator()(int64_t pair) const {
    const int64_t row = pair / d.half, i = pair - row * d.half;
    const int64_t position = d.position_offset + (row / d.heads) % d.seq_len;
    const float c = to_float(cos[position * d.half + i]);
    const float s = direction * to_float(sin[position * d.half + i]);
    const int64_t first = row * 2 * d.half + i, second = first + d.half;
    const float a = to_float(x[first]), b = to_float(x[second]);
    out[first] = from_float<T>(a * c - b * s);
    out[second] = from_float<T>(b * c + a * s);
  }
};

}  // namespace

void rope(const void* x, void* out, DType dtype, const void* cos, const void* sin,
          DType table_dtype, const RopeDims& dims, float direction) {
  with_storage_type(dtype, "rope", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(table_dtype, "rope table", [&](auto table_zero) {
      using Table = decltype(table_zero);
      for_each(dims.rows * dims.half,
               Rotate<T, Table>{static_cast<const T*>(x), static_cast<T*>(out),
                                static_cast<const Table*>(cos), static_cast<const Table*>(sin),
                                dims, direction});
    });
  });
}

}  // namespace ssa::cuda
