#include "cuda/device.cuh"
#include "cuda/rope.h"

namespace ssa::cuda {
namespace {

// P pairs (i .. i + P − 1 and their partners i + half ..) of one row per index: P = 1, or
// kPack<T> for 16-byte loads and stores.
template <typename T, typename Table, int P>
struct Rotate {
  const T* x;
  T* out;
  const Table* cos;
  const Table* sin;
  RopeDims d;
  float direction;
  __device__ void operator()(int64_t index) const {
    const int64_t runs = d.half / P, row = index / runs, i = (index - row * runs) * P;
    const int64_t token = row / d.heads, in_token = (row - token * d.heads) * 2 * d.half + i;
    const int64_t position = d.position_offset + token % d.seq_len;
    const int64_t first = token * d.x_stride + in_token,
                  out_first = token * d.out_stride + in_token;
    float a[P], b[P], c[P], s[P];
    load_floats(x + first, a);
    load_floats(x + first + d.half, b);
    load_floats(cos + position * d.half + i, c);
    load_floats(sin + position * d.half + i, s);
    float rotated_a[P], rotated_b[P];
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const float sj = direction * s[j];
      rotated_a[j] = a[j] * c[j] - b[j] * sj;
      rotated_b[j] = b[j] * c[j] + a[j] * sj;
    }
    store_floats(out + out_first, rotated_a);
    store_floats(out + out_first + d.half, rotated_b);
  }
};

}  // namespace

void rope(const void* x, void* out, DType dtype, const void* cos, const void* sin,
          DType table_dtype, const RopeDims& dims, float direction) {
  with_storage_type(dtype, "rope", [&](auto zero) {
    using T = decltype(zero);
    with_storage_type(table_dtype, "rope table", [&](auto table_zero) {
      using Table = decltype(table_zero);
      const Rotate<T, Table, 1> pairs{static_cast<const T*>(x),
                                      static_cast<T*>(out),
                                      static_cast<const Table*>(cos),
                                      static_cast<const Table*>(sin),
                                      dims,
                                      direction};
      if constexpr (kPack<T> % kPack<Table> == 0) {
        constexpr int P = kPack<T>;
        if (dims.half % P == 0 && dims.x_stride % P == 0 && dims.out_stride % P == 0 &&
            packs_aligned({x, out, cos, sin}))
          return for_each(
              dims.rows * (dims.half / P),
              Rotate<T, Table, P>{pairs.x, pairs.out, pairs.cos, pairs.sin, dims, direction});
      }
      for_each(dims.rows * dims.half, pairs);
    });
  });
}

}  // namespace ssa::cuda
