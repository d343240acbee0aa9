#include "ops/linear.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>

#include "autograd/autograd.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/blas.h"
#endif

namespace ssa {
namespace {

template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ColMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// c[i] = op(a[i]) · op(b[i]) for i < batch; op(a) is [m, k], op(b) is [k, n].
struct GemmShape {
  int64_t batch, m, n, k;
  bool transpose_a, transpose_b;
};

// C is cut into a grid of square tiles whose side depends on the shape only, never on the
// thread count, each computed by a sequential Eigen GEMM. (Eigen's own threading picks its
// k-blocking, and so the summation order, from the thread count.) Large tiles repack the operands
// less; small ones keep the cores busy when C is small.
constexpr int64_t kSmallTile = 64, kLargeTile = 128;
constexpr int64_t kMinLargeTiles = 64;  // fewer large tiles than this: use small ones
// Multiply-adds below which one thread is faster.
constexpr int64_t kParallelWork = int64_t{1} << 18;

struct TileGrid {
  int64_t side, rows, cols;  // rows x cols tiles of side x side per matrix
  TileGrid(const GemmShape& s, int64_t tile_side)
      : side(tile_side), rows((s.m + side - 1) / side), cols((s.n + side - 1) / side) {}
  int64_t per_matrix() const { return rows * cols; }
};

TileGrid tile_grid(const GemmShape& s) {
  const TileGrid large(s, kLargeTile);
  return s.batch * large.per_matrix() >= kMinLargeTiles ? large : TileGrid(s, kSmallTile);
}

// Calls f with op(x) as an Eigen expression of `rows` x `cols`. x is row-major; read column-major
// (when transposed) the same buffer is its transpose.
template <typename T, typename F>
void with_operand(const T* x, int64_t rows, int64_t cols, bool transposed, F&& f) {
  if (transposed)
    f(Eigen::Map<const ColMajorMatrix<T>>(x, rows, cols));
  else
    f(Eigen::Map<const RowMajorMatrix<T>>(x, rows, cols));
}

template <typename T>
void multiply_tile(const T* a, const T* b, T* c, const GemmShape& s, int64_t row0, int64_t col0,
                   int64_t side) {
  const int64_t rows = std::min(side, s.m - row0), cols = std::min(side, s.n - col0);
  with_operand(a, s.m, s.k, s.transpose_a, [&](const auto& op_a) {
    with_operand(b, s.k, s.n, s.transpose_b, [&](const auto& op_b) {
      Eigen::Map<RowMajorMatrix<T>> op_c(c, s.m, s.n);
      op_c.block(row0, col0, rows, cols).noalias() =
          op_a.middleRows(row0, rows) * op_b.middleCols(col0, cols);
    });
  });
}

template <typename T>
void gemm(const T* a, const T* b, T* c, const GemmShape& s) {
  const TileGrid grid = tile_grid(s);
  const bool parallel = s.batch * s.m * s.n * s.k >= kParallelWork;
#pragma omp parallel if (parallel)
  {
    omp_set_num_threads(1);  // this thread's setting only: Eigen then never threads a tile
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < s.batch * grid.per_matrix(); ++tile) {
      const int64_t i = tile / grid.per_matrix(), in_matrix = tile % grid.per_matrix();
      multiply_tile(a + i * s.m * s.k, b + i * s.k * s.n, c + i * s.m * s.n, s,
                    in_matrix / grid.cols * grid.side, in_matrix % grid.cols * grid.side,
                    grid.side);
    }
  }
}

// op(a) · op(b) for 2-D or 3-D (batched) a and b whose shapes were checked, without recording.
Tensor product(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  const bool batched = a.rank() == 3;
  const GemmShape s{batched ? a.dim(0) : 1,
                    transpose_a ? a.dim(-1) : a.dim(-2),
                    transpose_b ? b.dim(-2) : b.dim(-1),
                    transpose_a ? a.dim(-2) : a.dim(-1),
                    transpose_a,
                    transpose_b};
  Tensor c =
      Tensor::empty(batched ? Shape{s.batch, s.m, s.n} : Shape{s.m, s.n}, a.dtype(), a.device());
  if (a.is_cpu()) {
    dispatch_float(a, "matmul", [&](auto zero) {
      using T = decltype(zero);
      gemm(a.data<T>(), b.data<T>(), c.data<T>(), s);
    });
  } else {
    SSA_ON_CUDA("matmul", cuda::gemm(a.raw(), b.raw(), c.raw(), a.dtype(),
                                     {s.batch, s.m, s.n, s.k, transpose_a, transpose_b}));
  }
  return c;
}

struct LinearNode : Node {
  Tensor x, w;
  LinearNode(Tensor x_, Tensor w_) : x(std::move(x_)), w(std::move(w_)) {}
  const char* name() const override { return "linear"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor dy = as_matrix(g);
    return {inputs()[0].requires_grad() ? input_gradient(dy) : Tensor(),
            inputs()[1].requires_grad() ? weight_gradients(dy, as_matrix(x), {inputs()[1]})[0]
                                        : Tensor()};
  }
  void release() override { x = w = Tensor(); }

  // dx = dy·w, added by the product itself into the gradient already summed for x when
  // backward() offers it (x read by several products, as the feed-forward's w1 and w3 read
  // theirs): no product tensor and no separate sum.
  Tensor input_gradient(const Tensor& dy) const {
    const Tensor pending = pending_gradient_like(inputs()[0], x);
    if (pending.defined()) {
      matrix_product_into(as_matrix(pending), dy, w, false, false, true);
      return pending;
    }
    return product(dy, w, false, false).reshape(x.shape());
  }
};

// With c = op(a)·op(b): d op(a) = dc·op(b)ᵀ and d op(b) = op(a)ᵀ·dc, each transposed back when
// the operand was read transposed.
struct MatmulNode : Node {
  Tensor a, b;
  bool transpose_a, transpose_b;
  MatmulNode(Tensor a_, Tensor b_, bool ta, bool tb)
      : a(std::move(a_)), b(std::move(b_)), transpose_a(ta), transpose_b(tb) {}
  const char* name() const override { return "matmul"; }
  std::vector<Tensor> backward(const Tensor& dc) override {
    Tensor da, db;
    if (inputs()[0].requires_grad())
      da = transpose_a ? product(b, dc, transpose_b, true) : product(dc, b, false, !transpose_b);
    if (inputs()[1].requires_grad())
      db = transpose_b ? product(dc, a, true, transpose_a) : product(a, dc, !transpose_a, false);
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
};

void check_matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  check_same_kind({&a, &b}, "matmul");
  SSA_CHECK(a.rank() == b.rank() && (a.rank() == 2 || a.rank() == 3),
            "matmul: a {} and b {} must both be 2-D or both 3-D", a.shape().str(), b.shape().str());
  SSA_CHECK(a.rank() == 2 || a.dim(0) == b.dim(0), "matmul: batch sizes of a {} and b {} differ",
            a.shape().str(), b.shape().str());
  const int64_t k_a = transpose_a ? a.dim(-2) : a.dim(-1);
  const int64_t k_b = transpose_b ? b.dim(-1) : b.dim(-2);
  SSA_CHECK(k_a == k_b, "matmul: inner sizes differ: a {}{} and b {}{}", a.shape().str(),
            transpose_a ? "ᵀ" : "", b.shape().str(), transpose_b ? "ᵀ" : "");
}

}  // namespace

Tensor as_matrix(const Tensor& x) {
  int64_t rows = 1;
  for (int axis = 0; axis + 1 < x.rank(); ++axis) rows *= x.dim(axis);
  return x.reshape({rows, x.shape().back()});
}

Tensor linear(const Tensor& x, const Tensor& w) {
  check_same_kind({&x, &w}, "linear");
  SSA_CHECK(w.rank() == 2 && x.rank() >= 1 && x.shape().back() == w.dim(1),
            "linear: x {} does not fit w {} (expected x [..., in], w [out, in])", x.shape().str(),
            w.shape().str());
  Shape out_shape = x.shape();
  out_shape.dims[out_shape.rank - 1] = w.dim(0);
  Tensor y = product(as_matrix(x), w, false, true).reshape(out_shape);
  if (!should_record({&x, &w})) return y;
  return record(y, std::make_shared<LinearNode>(x.detach(), w.detach()), {x, w});
}

Tensor matrix_product(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  check_matmul(a, b, transpose_a, transpose_b);
  return product(a, b, transpose_a, transpose_b);
}

void matrix_product_into(const Tensor& c, const Tensor& a, const Tensor& b, bool transpose_a,
                         bool transpose_b, bool add) {
  check_matmul(a, b, transpose_a, transpose_b);
  SSA_CHECK(a.rank() == 2, "matrix_product_into: a {} and b {} (expected 2-D)", a.shape().str(),
            b.shape().str());
  const GemmShape s{1,
                    transpose_a ? a.dim(1) : a.dim(0),
                    transpose_b ? b.dim(0) : b.dim(1),
                    transpose_a ? a.dim(0) : a.dim(1),
                    transpose_a,
                    transpose_b};
  SSA_CHECK((c.dtype() == DType::f32 || c.dtype() == a.dtype()) && c.shape() == (Shape{s.m, s.n}) &&
                c.device() == a.device(),
            "matrix_product_into: c {} {} for a {} product of {}x{} (expected f32 or {} on a's "
            "device)",
            dtype_name(c.dtype()), c.shape().str(), dtype_name(a.dtype()), s.m, s.n,
            dtype_name(a.dtype()));
  if (c.is_cpu()) {
    const Tensor result = product(a, b, transpose_a, transpose_b);
    if (add)
      accumulate_into(c, result);
    else
      c.copy_from(result);
    return;
  }
  SSA_ON_CUDA("matrix_product_into",
              cuda::gemm_into(a.raw(), b.raw(), c.raw(), a.dtype(), c.dtype(),
                              {s.batch, s.m, s.n, s.k, transpose_a, transpose_b}, add));
}

namespace {

bool follows(const Tensor& first, const Tensor& second) {
  return first.same_storage(second) &&
         static_cast<const char*>(first.raw()) + first.nbytes() == second.raw();
}

bool adjacent(const std::vector<Tensor>& parts) {
  for (size_t i = 1; i < parts.size(); ++i)
    if (!follows(parts[i - 1], parts[i])) return false;
  return true;
}

int64_t total_rows(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const Tensor& part : parts) rows += part.dim(0);
  return rows;
}

}  // namespace

Tensor stacked_rows(const std::vector<Tensor>& parts) {
  const Shape shape{total_rows(parts), parts[0].dim(1)};
  if (adjacent(parts)) return parts[0].view(0, shape);
  Tensor stacked = Tensor::empty(shape, parts[0].dtype(), parts[0].device());
  int64_t row = 0;
  for (const Tensor& part : parts) {
    stacked.view(row * shape.back(), part.shape()).copy_from(part);
    row += part.dim(0);
  }
  return stacked;
}

std::vector<Tensor> weight_gradients(const Tensor& dy, const Tensor& x,
                                     const std::vector<Tensor>& parts) {
  std::vector<Tensor> buffers;
  for (const Tensor& part : parts) buffers.push_back(gradient_buffer(part));
  const bool all_buffered = std::all_of(buffers.begin(), buffers.end(),
                                        [](const Tensor& buffer) { return buffer.defined(); });
  std::vector<Tensor> grads(parts.size());
  const int64_t in = x.dim(1);
  if (all_buffered && adjacent(buffers)) {
    const bool overwrite = std::all_of(parts.begin(), parts.end(),
                                       [](const Tensor& part) { return part.grad_unwritten(); });
    if (!overwrite)
      for (const Tensor& part : parts) settle_gradient(part);
    matrix_product_into(buffers[0].view(0, {total_rows(parts), in}), dy, x, true, false,
                        !overwrite);
    for (const Tensor& part : parts) part.set_grad_unwritten(false);
    return grads;
  }
  const bool any = std::any_of(parts.begin(), parts.end(),
                               [](const Tensor& part) { return part.requires_grad(); });
  if (!any) return grads;
  const Tensor dw = matrix_product(dy, x, true, false);
  int64_t row = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].requires_grad()) grads[i] = dw.view(row * in, parts[i].shape());
    row += parts[i].dim(0);
  }
  return grads;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  Tensor c = matrix_product(a, b, transpose_a, transpose_b);
  if (!should_record({&a, &b})) return c;
  return record(c, std::make_shared<MatmulNode>(a.detach(), b.detach(), transpose_a, transpose_b),
                {a, b});
}

}  // namespace ssa
