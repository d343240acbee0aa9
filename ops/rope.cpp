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
// Token n's H rows start at element n·x_stride of x and n·out_stride of out.
struct RopeLayout {
  int64_t rows, seq_len, heads, half, x_stride, out_stride;
};

// Rotates each pair (i, i + half) of every row by +angle (direction 1) or −angle (direction −1).
template <typename T>
void rotate(const T* x, T* out, const T* cos, const T* sin, RopeLayout layout,
            int64_t position_offset, T direction) {
  const int64_t half = layout.half;
#pragma omp parallel for schedule(static) if (layout.rows * 2 * half >= kParallelElements)
  for (int64_t r = 0; r < layout.rows; ++r) {
    const int64_t token = r / layout.heads, in_token = (r % layout.heads) * 2 * half;
    const int64_t position = position_offset + token % layout.seq_len;
    const T* c = cos + position * half;
    const T* s = sin + position * half;
    const T* xr = x + token * layout.x_stride + in_token;
    T* yr = out + token * layout.out_stride + in_token;
    for (int64_t i = 0; i < half; ++i) {
      const T first = xr[i], second = xr[i + half], sine = direction * s[i];
      yr[i] = first * c[i] - second * sine;
      yr[i + half] = second * c[i] + first * sine;
    }
  }
}

// Where rows of x [B, T, H, head_dim] lie: token n's H·head_dim values start at element
// start + n·stride of data.
struct TokenRows {
  Tensor data;
  int64_t start, stride;
};

TokenRows rows_of(const Tensor& x) { return {x, 0, x.dim(2) * x.dim(3)}; }
TokenRows rows_of(const ColumnWindow& window) {
  return {window.matrix, window.column, window.matrix.dim(1)};
}

void rotate_rows(const TokenRows& x, const TokenRows& out, const Shape& shape,
                 const RopeTable& table, int64_t position_offset, double direction,
                 const char* op) {
  const RopeLayout layout{
      shape[0] * shape[1] * shape[2], shape[1], shape[2], shape[3] / 2, x.stride, out.stride};
  if (x.data.is_cpu()) {
    dispatch_float(x.data, op, [&](auto zero) {
      using T = decltype(zero);
      rotate(x.data.data<T>() + x.start, out.data.data<T>() + out.start, table.cos.data<T>(),
             table.sin.data<T>(), layout, position_offset, static_cast<T>(direction));
    });
  } else {
    const size_t element = dtype_size(x.data.dtype());
    SSA_ON_CUDA(op, cuda::rope(static_cast<const char*>(x.data.raw()) + x.start * element,
                               static_cast<char*>(out.data.raw()) + out.start * element,
                               x.data.dtype(), table.cos.raw(), table.sin.raw(), table.cos.dtype(),
                               {layout.rows, layout.seq_len, layout.heads, layout.half,
                                position_offset, layout.x_stride, layout.out_stride},
                               static_cast<float>(direction)));
  }
}

Tensor apply_rotation(const Tensor& x, const RopeTable& table, int64_t position_offset,
                      double direction, const char* op) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  rotate_rows(rows_of(x), rows_of(out), x.shape(), table, position_offset, direction, op);
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

// x: the shape, dtype and device of the rotated values.
void check_rope_inputs(const Shape& x, DType dtype, Device device, const RopeTable& table,
                       int64_t position_offset) {
  check_same_kind({&table.cos, &table.sin}, "rope table");
  SSA_CHECK(
      device == table.cos.device() &&
          (table.cos.dtype() == dtype || (dtype == DType::bf16 && table.cos.dtype() == DType::f32)),
      "rope: a {} table on {} for a {} x on {} (expected x's device, and x's dtype or f32 "
      "for a bf16 x)",
      dtype_name(table.cos.dtype()), device_name(table.cos.device()), dtype_name(dtype),
      device_name(device));
  SSA_CHECK(x.rank == 4 && x[3] % 2 == 0,
            "rope: x {} must be [B, T, H, head_dim] with an even head_dim", x.str());
  const Shape table_shape{table.max_positions(), x[3] / 2};
  SSA_CHECK(table.cos.shape() == table_shape && table.sin.shape() == table_shape,
            "rope: table cos {} / sin {} do not match x {} (expected [positions, {}])",
            table.cos.shape().str(), table.sin.shape().str(), x.str(), x[3] / 2);
  SSA_CHECK(position_offset >= 0, "rope: negative position offset {}", position_offset);
  const int64_t last_position = position_offset + x[1] - 1;
  if (last_position >= table.max_positions())
    fail("rope: position {} is beyond the table of {} positions (raise its max_positions)",
         last_position, table.max_positions());
}

// A window of x's shape fits the matrix: B·T rows, H·head_dim columns from `column`.
void check_window(const ColumnWindow& window, const Shape& x, const char* op) {
  SSA_CHECK(window.matrix.rank() == 2 && window.matrix.dim(0) == x[0] * x[1] &&
                window.column >= 0 && window.column + x[2] * x[3] <= window.matrix.dim(1),
            "{}: columns {}.. of a matrix {} cannot hold x {}", op, window.column,
            window.matrix.shape().str(), x.str());
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
  check_rope_inputs(x.shape(), x.dtype(), x.device(), table, position_offset);
  Tensor out = apply_rotation(x, table, position_offset, 1.0, "rope");
  if (!should_record({&x})) return out;
  return record(out, std::make_shared<RopeNode>(table, position_offset), {x});
}

Tensor rope_from_columns(const ColumnWindow& x, const Shape& shape, const RopeTable& table,
                         int64_t position_offset) {
  check_rope_inputs(shape, x.matrix.dtype(), x.matrix.device(), table, position_offset);
  check_window(x, shape, "rope_from_columns");
  Tensor out = Tensor::empty(shape, x.matrix.dtype(), x.matrix.device());
  rotate_rows(rows_of(x), rows_of(out), shape, table, position_offset, 1.0, "rope");
  return out;
}

void rope_back_into_columns(const Tensor& grad, const ColumnWindow& out, const RopeTable& table,
                            int64_t position_offset) {
  check_same_kind({&grad, &out.matrix}, "rope_back_into_columns");
  check_rope_inputs(grad.shape(), grad.dtype(), grad.device(), table, position_offset);
  check_window(out, grad.shape(), "rope_back_into_columns");
  rotate_rows(rows_of(grad), rows_of(out), grad.shape(), table, position_offset, -1.0,
              "rope backward");
}

}  // namespace ssa
