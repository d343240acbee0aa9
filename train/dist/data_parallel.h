#pragma once
// Keeping the weights of data-parallel ranks equal. Each rank's loss is divided by the global
// token count, so the gradient of the global batch is the SUM over ranks of the local ones.
//  - GradientBuckets: the flat gradient buffer cut into buckets of whole parameters, each summed
//    over ranks (all-reduce) as soon as backward has finished every gradient it covers; on NCCL
//    that runs on the communication stream while backward goes on.
//  - ZeroOptimizer (train.zero = 1, ZeRO-1): gradients reduce-scattered, each rank keeping the
//    fp32 master weights and AdamW moments of its chunk of the flat buffer and updating only
//    that chunk, then the updated (compute-dtype) weights all-gathered.
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "autograd/autograd.h"
#include "models/parameters.h"
#include "train/dist/communicator.h"
#include "train/optimizer.h"

namespace ssa {

class GradientBuckets {
 public:
  // Buckets of about bucket_bytes, filled with parameters in reverse table order (the order in
  // which backward finishes them).
  GradientBuckets(const Parameters& params, Communicator& comm, int64_t bucket_bytes);

  // For the backward() whose gradients are the step's last: sums each bucket once all its
  // parameters' gradients are final.
  LeafFinal on_final();
  // Sums the buckets on_final did not (all of them after a backward without it), waits for
  // the collectives, and gets ready for the next step.
  void finish();
  size_t count() const { return buckets_.size(); }

 private:
  struct Bucket {
    int64_t begin, end;  // elements of the flat buffer
    int pending = 0;     // parameters whose gradient is not final yet
    bool reduced = false;
    int parameters = 0;
  };
  void reduce(Bucket& bucket);

  const Parameters& params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;  // parameter -> its bucket
};

// Chunk bounds of a flat buffer of n elements over `world` ranks: rank r owns
// [bounds[r], bounds[r + 1]), chunks of ceil(n / world) rounded up to 128 elements (the last
// shorter), so every chunk starts 512-byte aligned in f32.
std::vector<int64_t> chunk_bounds(int64_t n, int world);

class ZeroOptimizer {
 public:
  ZeroOptimizer(const Parameters& params, AdamWConfig config, Communicator& comm);

  // After backward: this rank's chunk of the gradient becomes the sum over ranks.
  void reduce_gradients();
  // The global gradient norm (every rank's chunk together).
  double gradient_norm();
  // Clips this rank's chunk to max_norm, updates it, and all-gathers the updated weights.
  void step(double lr, double norm, double max_norm);

  // For a checkpoint (collectives): the full master weights (under mixed precision only this
  // rank's chunk of params.flat() is kept current between calls) and full moment buffers.
  void gather_master();
  Tensor gathered_first_moment() { return gathered(optimizer_.first_moment()); }
  Tensor gathered_second_moment() { return gathered(optimizer_.second_moment()); }
  // Takes this rank's chunk of full moment buffers (a checkpoint's).
  void load_moments(const Tensor& first, const Tensor& second);
  AdamW& adamw() { return optimizer_; }

 private:
  Tensor chunk(const Tensor& flat) const;
  Tensor gathered(const Tensor& chunk_buffer);

  const Parameters& params_;
  Communicator& comm_;
  std::vector<int64_t> bounds_;
  AdamW optimizer_;  // over this rank's chunk: the master weights of params.flat(), own moments
};

}  // namespace ssa
