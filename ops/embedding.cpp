#include "ops/embedding.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "ops/dispatch.h"

namespace ssa {
namespace {

constexpr int64_t kParallelElements = 1 << 16;  // smaller copies run on one thread

void check_ids(const Tensor& ids, int64_t vocab) {
  const int32_t* id = ids.data<int32_t>();
  for (int64_t position = 0; position < ids.numel(); ++position) {
    if (id[position] < 0 || id[position] >= vocab)
      fail("embedding: id {} at position {} of ids {} is outside the vocabulary [0, {})",
           id[position], position, ids.shape().str(), vocab);
  }
}

struct EmbeddingNode : Node {
  Tensor ids;
  Shape table_shape;
  EmbeddingNode(Tensor ids_, Shape table_shape_)
      : ids(std::move(ids_)), table_shape(table_shape_) {}
  const char* name() const override { return "embedding"; }
  // dtable[ids[t]] += dout[t], tokens in order, so repeated ids sum deterministically.
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dtable = Tensor::zeros(table_shape, g.dtype(), g.device());
    dispatch_float(g, "embedding backward", [&](auto zero) {
      using T = decltype(zero);
      const int64_t dim = table_shape[1];
      const int32_t* id = ids.data<int32_t>();
      const T* dout = g.data<T>();
      T* grad = dtable.data<T>();
      for (int64_t t = 0; t < ids.numel(); ++t) {
        T* row = grad + id[t] * dim;
        for (int64_t j = 0; j < dim; ++j) row[j] += dout[t * dim + j];
      }
    });
    return {dtable};
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
  dispatch_float(table, "embedding", [&](auto zero) {
    using T = decltype(zero);
    check_ids(ids, vocab);
    const int32_t* id = ids.data<int32_t>();
    const T* rows = table.data<T>();
    T* dst = out.data<T>();
#pragma omp parallel for schedule(static) if (ids.numel() * dim >= kParallelElements)
    for (int64_t t = 0; t < ids.numel(); ++t) std::copy_n(rows + id[t] * dim, dim, dst + t * dim);
  });
  if (!should_record({&table})) return out;
  return record(out, std::make_shared<EmbeddingNode>(ids, table.shape()), {table});
}

}  // namespace ssa
