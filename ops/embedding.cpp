#include "ops/embedding.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "ops/dispatch.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/embedding.h"
#include "cuda/reduce.h"
#endif

namespace ssa {
namespace {

constexpr int64_t kParallelElements = 1 << 16;  // smaller copies run on one thread

// The first position whose id is outside [0, vocab), or -1.
int64_t first_invalid(const Tensor& ids, int64_t vocab) {
  if (!ids.is_cpu()) {
    int64_t position = -1;
    SSA_ON_CUDA("embedding", position = cuda::scan_ids(ids.data<int32_t>(), ids.numel(), vocab,
                                                       cuda::kNoIgnoredId)
                                            .first_invalid);
    return position;
  }
  const int32_t* id = ids.data<int32_t>();
  for (int64_t position = 0; position < ids.numel(); ++position)
    if (id[position] < 0 || id[position] >= vocab) return position;
  return -1;
}

void check_ids(const Tensor& ids, int64_t vocab) {
  const int64_t position = first_invalid(ids, vocab);
  if (position >= 0)
    fail("embedding: id {} at position {} of ids {} is outside the vocabulary [0, {})",
         ids.at(position), position, ids.shape().str(), vocab);
}

// dtable[ids[t]] += dout[t], tokens in order, so repeated ids sum deterministically.
template <typename T>
void scatter_add(const int32_t* id, const T* dout, T* grad, int64_t tokens, int64_t dim) {
  for (int64_t t = 0; t < tokens; ++t) {
    T* row = grad + id[t] * dim;
    for (int64_t j = 0; j < dim; ++j) row[j] += dout[t * dim + j];
  }
}

template <typename T>
void gather(const int32_t* id, const T* rows, T* dst, int64_t tokens, int64_t dim) {
#pragma omp parallel for schedule(static) if (tokens * dim >= kParallelElements)
  for (int64_t t = 0; t < tokens; ++t) std::copy_n(rows + id[t] * dim, dim, dst + t * dim);
}

struct EmbeddingNode : Node {
  Tensor ids;
  Shape table_shape;
  EmbeddingNode(Tensor ids_, Shape table_shape_)
      : ids(std::move(ids_)), table_shape(table_shape_) {}
  const char* name() const override { return "embedding"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (!g.is_cpu()) return {cuda_backward(g)};
    Tensor dtable = Tensor::zeros(table_shape, g.dtype(), g.device());
    dispatch_float(g, "embedding backward", [&](auto zero) {
      using T = decltype(zero);
      scatter_add(ids.data<int32_t>(), g.data<T>(), dtable.data<T>(), ids.numel(), table_shape[1]);
    });
    return {dtable};
  }
  // Adds into the table's f32 gradient buffer where it has one (touching only the rows the ids
  // name, and returning no gradient), else returns the gradient (summed in f32).
  Tensor cuda_backward(const Tensor& g) {
    const Tensor& table = inputs()[0];
    Tensor buffer = gradient_buffer(table);
    const bool in_place = buffer.defined();
    if (in_place)
      settle_gradient(table);
    else
      buffer = Tensor::zeros(table_shape, DType::f32, g.device());
    SSA_ON_CUDA(
        "embedding backward",
        cuda::embedding_backward(ids.data<int32_t>(), g.raw(), g.dtype(), buffer.data<float>(),
                                 ids.numel(), table_shape[0], table_shape[1]));
    if (in_place) return Tensor();
    return g.dtype() == DType::f32 ? buffer : buffer.to(g.dtype());
  }
  void release() override { ids = Tensor(); }
};

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& table) {
  SSA_CHECK(ids.dtype() == DType::i32 && ids.device() == table.device(),
            "embedding: ids must be i32 on the table's device, got {} on {}",
            dtype_name(ids.dtype()), device_name(ids.device()));
  SSA_CHECK(table.rank() == 2 && ids.rank() < kMaxRank,
            "embedding: table {} must be [vocab, dim] and ids {} of rank below {}",
            table.shape().str(), ids.shape().str(), kMaxRank);
  const int64_t vocab = table.dim(0), dim = table.dim(1);
  Shape out_shape = ids.shape();
  out_shape.dims[out_shape.rank++] = dim;
  Tensor out = Tensor::empty(out_shape, table.dtype(), table.device());
  check_ids(ids, vocab);
  if (table.is_cpu()) {
    dispatch_float(table, "embedding", [&](auto zero) {
      using T = decltype(zero);
      gather(ids.data<int32_t>(), table.data<T>(), out.data<T>(), ids.numel(), dim);
    });
  } else {
    SSA_ON_CUDA("embedding", cuda::embedding_forward(ids.data<int32_t>(), table.raw(), out.raw(),
                                                     table.dtype(), ids.numel(), dim));
  }
  if (!should_record({&table})) return out;
  return record(out, std::make_shared<EmbeddingNode>(ids, table.shape()), {table});
}

}  // namespace ssa
