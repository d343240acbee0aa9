#include "ops/rope.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/rope.h"
#endif

namespace ssa {
namespace {

// x [B, T, H, 2·half] viewed as rows of 2·half; row r sits at sequence position (r / H) % T.
struct RopeLayout {
  int64_t rows, seq_len, heads, half;
};

// Rotates each pair (i, i + half) of every row by +angle (direction 1) or −angle (direction −1).
template <typename T>
void rotate(const T* x, T* out, const T* cos, const T* sin, RopeLayout layout,
            int64_t position_offset, T direction) {
  const int64_t half = layout.half;
#pragma omp parallel for schedule(static) if (layout.rows * 2 * half >= kParallelElements)
  for (int64_t r = 0; r < layout.rows; ++r) {
    const int64_t position = position_offset + (r / layout.heads) % layout.seq_len;
    const T* c = cos + position * half;
    const T* s = sin + position * half;
    const T* xr = x + r * 2 * half;
    T* yr = out + r * 2 * half;
    for (int64_t i = 0; i < half; ++i) {
      const T first = xr[i], second = xr[i + half], sine = direction * s[i];
      yr[i] = first * c[i] - second * sine;
      yr[i + half] = second * c[i] + first * sine;
    }
  }
}

Tensor apply_rotation(const Tensor& x, const RopeTable& table, int64_t position_offset,
                      double direction, const char* op) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const RopeLayout layout{x.dim(0) * x.dim(1) * x.dim(2), x.dim(1), x.dim(2), x.dim(3) / 2};
  if (x.is_cpu()) {
    dispatch_float(x, op, [&](auto zero) {
      using T = decltype(zero);
      rotate(x.data<T>(), out.data<T>(), table.cos.data<T>(), table.sin.data<T>(), layout,
             position_offset, static_cast<T>(direction));
    });
  } else {
    SSA_ON_CUDA(
        op, cuda::rope(x.raw(), out.raw(), x.dtype(), table.cos.raw(), table.sin.raw(),
                       table.cos.dtype(),
                       {layout.rows, layout.seq_len, layout.heads, layout.half, position_offset},
                       static_cast<float>(direction)));
  }
  return out;
}

// The rotation is orthogonal, so its gradient is the gradient rotated back.
struct RopeNode : Node {
  RopeTable table;
  int64_t position_offset;
  RopeNode(RopeTable table_, int64_t offset) : table(std::move(table_)), position_offset(offset) {}
  const char* name() const override { return "rope"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {apply_rotation(g, table, position_offset, -1.0, "rope backward")};
  }
  void release() override { table = RopeTable(); }
};

void check_rope_inputs(const Tensor& x, const RopeTable& table, int64_t position_offset) {
  check_same_kind({&table.cos, &table.sin}, "rope table");
  SSA_CHECK(x.device() == table.cos.device() &&
                (table.cos.dtype() == x.dtype() ||
                 (x.dtype() == DType::bf16 && table.cos.dtype() == DType::f32)),
            "rope: a {} table on {} for a {} x on {} (expected x's device, and x's dtype or f32 "
            "for a bf16 x)",
            dtype_name(table.cos.dtype()), device_name(table.cos.device()), dtype_name(x.dtype()),
            device_name(x.device()));
  SSA_CHECK(x.rank() == 4 && x.dim(3) % 2 == 0,
            "rope: x {} must be [B, T, H, head_dim] with an even head_dim", x.shape().str());
  const Shape table_shape{table.max_positions(), x.dim(3) / 2};
  SSA_CHECK(table.cos.shape() == table_shape && table.sin.shape() == table_shape,
            "rope: table cos {} / sin {} do not match x {} (expected [positions, {}])",
            table.cos.shape().str(), table.sin.shape().str(), x.shape().str(), x.dim(3) / 2);
  SSA_CHECK(position_offset >= 0, "rope: negative position offset {}", position_offset);
  const int64_t last_position = position_offset + x.dim(1) - 1;
  if (last_position >= table.max_positions())
    fail("rope: position {} is beyond the table of {} positions (raise its max_positions)",
         last_position, table.max_positions());
}

}  // namespace

RopeTable rope_table(int64_t max_positions, int64_t head_dim, double theta, DType dtype,
                     Device device) {
  SSA_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope_table: head_dim {} must be even and positive",
            head_dim);
  SSA_CHECK(max_positions > 0 && theta > 0, "rope_table: max_positions {} and theta {} must be > 0",
            max_positions, theta);
  const int64_t half = head_dim / 2;
  std::vector<double> cos(static_cast<size_t>(max_positions * half)), sin(cos.size());
  for (int64_t i = 0; i < half; ++i) {
    const double frequency =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t p = 0; p < max_positions; ++p) {
      const double angle = static_cast<double>(p) * frequency;
      cos[p * half + i] = std::cos(angle);
      sin[p * half + i] = std::sin(angle);
    }
  }
  const Shape shape{max_positions, half};
  return {Tensor::from(cos, shape, dtype).to(device), Tensor::from(sin, shape, dtype).to(device)};
}

Tensor rope(const Tensor& x, const RopeTable& table, int64_t position_offset) {
  check_rope_inputs(x, table, position_offset);
  Tensor out = apply_rotation(x, table, position_offset, 1.0, "rope");
  if (!should_record({&x})) return out;
  return record(out, std::make_shared<RopeNode>(table, position_offset), {x});
}

}  // namespace ssa
