#include "train/dist/data_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ssa {
namespace {

constexpr int64_t kChunkAlignment = 128;

int64_t chunk_begin(const std::vector<int64_t>& bounds, int rank) {
  return bounds[static_cast<size_t>(rank)];
}
int64_t chunk_end(const std::vector<int64_t>& bounds, int rank) {
  return bounds[static_cast<size_t>(rank) + 1];
}

}  // namespace

GradientBuckets::GradientBuckets(const Parameters& params, Communicator& comm, int64_t bucket_bytes)
    : params_(params), comm_(comm) {
  const int64_t element = static_cast<int64_t>(dtype_size(params.flat_grad().dtype()));
  for (size_t i = params.size(); i-- > 0;) {
    const int64_t begin = params.offsets()[i], end = begin + params[i].numel();
    if (buckets_.empty() || (buckets_.back().end - buckets_.back().begin) * element >= bucket_bytes)
      buckets_.push_back({begin, end});
    Bucket& bucket = buckets_.back();
    bucket.begin = begin;  // parameters come in reverse order: the bucket grows downwards
    ++bucket.parameters;
    bucket.pending = bucket.parameters;
    bucket_of_[params[i].impl()] = buckets_.size() - 1;
  }
}

LeafFinal GradientBuckets::on_final() {
  return [this](const Tensor& leaf) {
    auto it = bucket_of_.find(leaf.impl());
    if (it == bucket_of_.end()) return;
    Bucket& bucket = buckets_[it->second];
    if (--bucket.pending == 0) reduce(bucket);
  };
}

void GradientBuckets::reduce(Bucket& bucket) {
  comm_.all_reduce_sum(params_.grad_slice(bucket.begin, bucket.end));
  bucket.reduced = true;
}

void GradientBuckets::finish() {
  for (Bucket& bucket : buckets_)
    if (!bucket.reduced) reduce(bucket);
  comm_.wait();
  for (Bucket& bucket : buckets_) {
    bucket.reduced = false;
    bucket.pending = bucket.parameters;
  }
}

std::vector<int64_t> chunk_bounds(int64_t n, int world) {
  const int64_t per_rank = (n + world - 1) / world;
  const int64_t chunk = (per_rank + kChunkAlignment - 1) / kChunkAlignment * kChunkAlignment;
  std::vector<int64_t> bounds;
  for (int r = 0; r <= world; ++r) bounds.push_back(std::min(n, r * chunk));
  bounds.back() = n;
  return bounds;
}

ZeroOptimizer::ZeroOptimizer(const Parameters& params, AdamWConfig config, Communicator& comm)
    : params_(params),
      comm_(comm),
      bounds_(chunk_bounds(params.count(), comm.world())),
      optimizer_(params, config, chunk_begin(bounds_, comm.rank()),
                 chunk_end(bounds_, comm.rank())) {
  if (optimizer_.begin() == optimizer_.end())
    fail(
        "train.zero = 1 over {} ranks leaves rank {} no parameters ({} in all); use "
        "train.zero = 0",
        comm.world(), comm.rank(), params.count());
}

Tensor ZeroOptimizer::chunk(const Tensor& flat) const {
  return flat.view(optimizer_.begin(), {optimizer_.end() - optimizer_.begin()});
}

void ZeroOptimizer::reduce_gradients() {
  comm_.reduce_scatter_sum(params_.flat_grad(), bounds_);
  comm_.wait();
}

double ZeroOptimizer::gradient_norm() {
  const double local = ssa::gradient_norm(chunk(params_.flat_grad()));
  return std::sqrt(comm_.sum({local * local})[0]);
}

void ZeroOptimizer::step(double lr, double norm, double max_norm) {
  optimizer_.step(lr, params_.mixed_precision() ? chunk(params_.compute_flat()) : Tensor(),
                  clip_factor(norm, max_norm));
  comm_.all_gather(params_.compute_flat(), bounds_);
  comm_.wait();
}

void ZeroOptimizer::gather_master() {
  comm_.all_gather(params_.flat(), bounds_);
  comm_.wait();
}

void ZeroOptimizer::load_moments(const Tensor& first, const Tensor& second) {
  optimizer_.first_moment().copy_from(chunk(first));
  optimizer_.second_moment().copy_from(chunk(second));
}

Tensor ZeroOptimizer::gathered(const Tensor& chunk_buffer) {
  Tensor full = Tensor::zeros(params_.flat().shape(), chunk_buffer.dtype(), chunk_buffer.device());
  chunk(full).copy_from(chunk_buffer);
  comm_.all_gather(full, bounds_);
  comm_.wait();
  return full;
}

}  // namespace ssa
