// The sparse path on the GPU: block means in k's dtype, the bf16 selection against the CPU op's
// (equal but at near ties) and its tie rule, block_sparse_attention as the composition of the
// GPU ops with bit-identical reruns, errors for what the kernels do not take. (The parity of
// block_means, f32 select_blocks and sparse_attention with the CPU ops: test_gpu_op_table.cpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/sparse_attention.h"
#include "parity_tolerances.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Config {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim, block_size, top_k;
};

struct Inputs {
  Tensor q, k, v, d_out;
};

// Inputs drawn in f64 and rounded to the tested dtype, so reference and kernel see equal values.
Inputs random_inputs(const Config& c, DType dtype, uint64_t seed) {
  auto draw = [&](Shape shape, uint64_t offset, double scale) {
    return random_tensor(shape, seed + offset, DType::f64, false, scale).to(dtype);
  };
  const Shape q_shape{c.batch, c.q_len, c.heads, c.head_dim};
  const Shape kv_shape{c.batch, c.k_len, c.kv_heads, c.head_dim};
  return {draw(q_shape, 0, 1.5), draw(kv_shape, 1, 1.5), draw(kv_shape, 2, 1.0),
          draw(q_shape, 3, 1.0)};
}

Tensor on(const Tensor& t, DType dtype, Device device) { return t.to(dtype).to(device); }

// The GPU's selection for the inputs (block means and selection on the GPU).
Tensor gpu_selection(const Config& c, const Inputs& in, DType dtype) {
  const Tensor k = on(in.k, dtype, Device::cuda);
  return select_blocks(on(in.q, dtype, Device::cuda), block_means(k, c.block_size), c.k_len,
                       c.block_size, c.top_k);
}

// Output and gradients (dq, dk, dv) of sparse_attention with `selection` on `device`, as f64.
std::vector<std::vector<double>> run_sparse(const Config& c, const Inputs& in,
                                            const Tensor& selection, DType dtype, Device device) {
  auto prepare = [&](const Tensor& t) {
    Tensor moved = on(t, dtype, device);
    moved.set_requires_grad(true);
    return moved;
  };
  const Tensor q = prepare(in.q), k = prepare(in.k), v = prepare(in.v);
  const Tensor out = sparse_attention(q, k, v, selection.to(device), c.block_size);
  const std::vector<Tensor> grads = out.grad_fn()->backward(on(in.d_out, dtype, device));
  return {out.to_vector(), grads[0].to_vector(), grads[1].to_vector(), grads[2].to_vector()};
}

size_t mismatches(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  size_t count = 0;
  for (size_t i = 0; i < got.size(); ++i) count += got[i] != want[i];
  return count;
}

#define CAPTURE_CONFIG(c)  \
  CAPTURE((c).batch);      \
  CAPTURE((c).q_len);      \
  CAPTURE((c).k_len);      \
  CAPTURE((c).heads);      \
  CAPTURE((c).kv_heads);   \
  CAPTURE((c).head_dim);   \
  CAPTURE((c).block_size); \
  CAPTURE((c).top_k)

// Block j's score for query t through KV head kv, in double as the CPU op defines it: the sum
// over the group's query heads of softmax over the candidates (blocks before the own one) of
// q · kbar / sqrt(d). q [B, Tq, H, d] and kbar [B, blocks, Hkv, d] as f64 vectors.
std::vector<double> cpu_block_scores(const Config& c, const std::vector<double>& q,
                                     const std::vector<double>& kbar, int64_t kbar_blocks,
                                     int64_t b, int64_t t, int64_t kv) {
  const int64_t own = (c.k_len - c.q_len + t) / c.block_size, group = c.heads / c.kv_heads;
  std::vector<double> score(own, 0.0), weight(own);
  for (int64_t i = kv * group; i < (kv + 1) * group; ++i) {
    const double* query = q.data() + ((b * c.q_len + t) * c.heads + i) * c.head_dim;
    for (int64_t j = 0; j < own; ++j) {
      const double* key = kbar.data() + ((b * kbar_blocks + j) * c.kv_heads + kv) * c.head_dim;
      double dot = 0;
      for (int64_t x = 0; x < c.head_dim; ++x) dot += query[x] * key[x];
      weight[j] = dot / std::sqrt(static_cast<double>(c.head_dim));
    }
    const double max = *std::max_element(weight.begin(), weight.end());
    double total = 0;
    for (double& w : weight) total += w = std::exp(w - max);
    for (int64_t j = 0; j < own; ++j) score[j] += weight[j] / total;
  }
  return score;
}

// Where the GPU's row and the CPU's differ, every block in one but not the other must score
// (in double) within `tolerance` · (the CPU's lowest kept score) of that lowest kept score: a
// tie within the GPU's scoring precision. Returns the rows that differ.
int64_t check_near_ties(const Config& c, const std::vector<double>& got,
                        const std::vector<double>& want, const Tensor& q, const Tensor& means,
                        double tolerance) {
  const std::vector<double> q64 = q.to(DType::f64).to(Device::cpu).to_vector();
  const std::vector<double> kbar64 = means.to(DType::f64).to(Device::cpu).to_vector();
  const int64_t width = static_cast<int64_t>(want.size()) / (c.batch * c.q_len * c.kv_heads);
  int64_t differing = 0;
  for (int64_t r = 0; r < c.batch * c.q_len * c.kv_heads; ++r) {
    const auto row_got = got.begin() + r * width, row_want = want.begin() + r * width;
    if (std::equal(row_got, row_got + width, row_want)) continue;
    ++differing;
    const int64_t b = r / c.kv_heads / c.q_len, t = r / c.kv_heads % c.q_len, kv = r % c.kv_heads;
    const std::vector<double> score = cpu_block_scores(c, q64, kbar64, means.dim(1), b, t, kv);
    double lowest_kept = INFINITY;
    for (int64_t slot = 0; slot + 1 < width; ++slot)
      lowest_kept = std::min(lowest_kept, score[static_cast<size_t>(row_want[slot])]);
    for (int64_t slot = 0; slot + 1 < width; ++slot) {
      for (const auto& [row, other] :
           {std::pair{row_got, row_want}, std::pair{row_want, row_got}}) {
        const double j = row[slot];
        if (std::find(other, other + width, j) != other + width) continue;
        CAPTURE(b);
        CAPTURE(t);
        CAPTURE(kv);
        CAPTURE(j);
        CHECK(std::abs(score[static_cast<size_t>(j)] - lowest_kept) <= tolerance * lowest_kept);
      }
    }
    CHECK(row_got[width - 1] == row_want[width - 1]);  // the own block, last
  }
  return differing;
}

// The GPU's bf16 selection against the CPU op's on the same queries and block means (the GPU's
// means, in f64): it scores on tensor cores in fp32, so rows may differ only between near ties,
// and in few rows.
void check_bf16_selection(const Config& c, uint64_t seed) {
  const Inputs in = random_inputs(c, DType::bf16, seed);
  const Tensor means = block_means(on(in.k, DType::bf16, Device::cuda), c.block_size);
  const Tensor q = on(in.q, DType::bf16, Device::cuda);
  const Tensor got = select_blocks(q, means, c.k_len, c.block_size, c.top_k);
  const Tensor want =
      select_blocks(on(in.q, DType::f64, Device::cpu), on(means, DType::f64, Device::cpu), c.k_len,
                    c.block_size, c.top_k);
  REQUIRE(got.shape() == want.shape());
  CHECK(got.device() == Device::cuda);
  const int64_t rows = c.batch * c.q_len * c.kv_heads;
  const int64_t differing = check_near_ties(c, got.to_vector(), want.to_vector(), q, means, 1e-4);
  CHECK_MESSAGE(differing * 100 <= rows, differing, " of ", rows, " rows differ");
}

}  // namespace

TEST_SUITE("gpu sparse attention") {
  TEST_CASE("sparse block_means on the GPU keeps k's dtype") {
    const Config c{2, 100, 100, 4, 2, 64, 16, 1};
    for (DType dtype : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(dtype));
      const Tensor k = on(random_inputs(c, dtype, 5).k, dtype, Device::cuda);
      CHECK(block_means(k, c.block_size).dtype() == dtype);
    }
  }

  TEST_CASE("sparse select_blocks on the GPU breaks ties toward the lower block index") {
    // Zero queries: every candidate scores 1 / (own block) exactly, in double and in fp32.
    for (const Config& c :
         {Config{2, 200, 200, 8, 2, 64, 16, 5}, Config{1, 300, 300, 16, 1, 128, 16, 17},
          Config{2, 150, 150, 2, 2, 64, 16, 3}}) {
      CAPTURE_CONFIG(c);
      std::vector<double> want;
      for (int64_t row = 0; row < c.batch * c.q_len * c.kv_heads; ++row) {  // (b, t, kv head)
        const int64_t own = row / c.kv_heads % c.q_len / c.block_size;
        for (int64_t slot = 0; slot < c.top_k; ++slot)
          want.push_back(own < c.top_k ? (slot <= own ? slot : -1)
                                       : (slot < c.top_k - 1 ? slot : own));
      }
      for (DType dtype : {DType::f32, DType::bf16}) {
        const Tensor q =
            Tensor::zeros({c.batch, c.q_len, c.heads, c.head_dim}, dtype, Device::cuda);
        const Tensor k = on(random_inputs(c, DType::f32, 9).k, dtype, Device::cuda);
        const std::vector<double> got =
            select_blocks(q, block_means(k, c.block_size), c.k_len, c.block_size, c.top_k)
                .to_vector();
        CHECK(mismatches(got, want) == 0);
      }
    }
  }

  TEST_CASE("sparse select_blocks bf16 picks the CPU op's blocks but at near ties") {
    // The shapes of the op table's CUDA cases (tests/op_cases.cpp, kCudaBlocks).
    for (const Config& c :
         {Config{1, 1, 1, 4, 1, 64, 16, 16}, Config{2, 7, 7, 4, 4, 128, 16, 16},
          Config{2, 100, 100, 16, 1, 64, 16, 4}, Config{1, 257, 257, 8, 2, 128, 16, 3},
          Config{2, 300, 300, 4, 4, 64, 32, 5}, Config{1, 333, 333, 4, 1, 128, 64, 3},
          Config{1, 200, 200, 2, 1, 64, 16, 1}, Config{1, 90, 90, 4, 2, 64, 16, 100},
          Config{2, 1, 300, 8, 2, 64, 16, 4}, Config{1, 100, 257, 4, 1, 128, 16, 6},
          Config{1, 513, 513, 32, 2, 64, 16, 16}, Config{1, 1000, 1000, 16, 1, 128, 16, 16},
          Config{1, 4096, 4096, 16, 1, 64, 16, 16}}) {
      CAPTURE_CONFIG(c);
      check_bf16_selection(c, 8);
    }
  }

  TEST_CASE("sparse select_blocks bf16: every query-head group size, top_k 1 and 17, reruns") {
    for (const Config& c :
         {Config{2, 700, 700, 4, 4, 64, 16, 16}, Config{1, 900, 900, 8, 1, 128, 16, 17},
          Config{1, 640, 700, 16, 4, 64, 16, 9}, Config{2, 513, 513, 16, 2, 64, 16, 1},
          Config{1, 1100, 1100, 16, 1, 64, 32, 12}}) {
      CAPTURE_CONFIG(c);
      check_bf16_selection(c, 13);
      const Inputs in = random_inputs(c, DType::bf16, 14);
      const Tensor first = gpu_selection(c, in, DType::bf16);
      CHECK(mismatches(first.to_vector(), gpu_selection(c, in, DType::bf16).to_vector()) == 0);
    }
  }

  TEST_CASE("sparse attention: block_sparse_attention composes the GPU ops; reruns are identical") {
    const Config c{2, 257, 257, 8, 2, 64, 16, 4};
    for (DType dtype : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(dtype));
      const Inputs in = random_inputs(c, dtype, 41);
      auto run_block_sparse = [&] {
        Tensor q = on(in.q, dtype, Device::cuda), k = on(in.k, dtype, Device::cuda),
               v = on(in.v, dtype, Device::cuda);
        for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
        backward(block_sparse_attention(q, k, v, c.block_size, c.top_k),
                 on(in.d_out, dtype, Device::cuda));
        return std::vector<std::vector<double>>{q.grad().to_vector(), k.grad().to_vector(),
                                                v.grad().to_vector()};
      };
      const auto first = run_block_sparse();
      CHECK(first == run_block_sparse());
      const auto composed = run_sparse(c, in, gpu_selection(c, in, dtype), dtype, Device::cuda);
      CHECK(first[0] == composed[1]);
      CHECK(first[1] == composed[2]);
      CHECK(first[2] == composed[3]);
    }
  }

  // Keys scaled up along the sequence: a row's largest score grows chunk after chunk (see
  // test_gpu_attention.cpp).
  TEST_CASE("sparse attention: bf16 matches the CPU when later keys raise a row's max") {
    const Config c{1, 600, 600, 8, 2, 64, 16, 8};
    Inputs in = random_inputs(c, DType::bf16, 81);
    in.k = grown_along_sequence(in.k, 60.0);
    const Tensor selection =
        select_blocks(in.q.to(DType::f64), block_means(in.k.to(DType::f64), c.block_size), c.k_len,
                      c.block_size, c.top_k);
    const auto want = run_sparse(c, in, selection, DType::f64, Device::cpu);
    const auto got = run_sparse(c, in, selection, DType::bf16, Device::cuda);
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);  // out, dq, dk, dv
      CHECK(relative_error(got[i], want[i]) <= kAttentionBf16Tolerance);
    }
  }

  // In ssa mode both paths read q, and the second backward adds its dq into the first's instead
  // of a separate sum: the same bits as that sum, whichever path runs second, both dtypes, and
  // in bf16 both full-attention kernel families (SSA_NO_WGMMA: the mma.sync ones).
  TEST_CASE("sparse and full attention: the second backward adds its dq into the first's") {
    const Config c{2, 200, 200, 8, 2, 64, 16, 4};
    for (const auto& [dtype, no_wgmma] :
         {std::pair{DType::f32, false}, std::pair{DType::bf16, false},
          std::pair{DType::bf16, true}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(no_wgmma);
      if (no_wgmma) setenv("SSA_NO_WGMMA", "1", 1);
      const Inputs in = random_inputs(c, dtype, 81);
      const Tensor selection = gpu_selection(c, in, dtype);
      const Tensor k = on(in.k, dtype, Device::cuda), v = on(in.v, dtype, Device::cuda);
      const Tensor d_out = on(in.d_out, dtype, Device::cuda);
      auto full = [&](const Tensor& q) { return attention(q, k, v); };
      auto sparse = [&](const Tensor& q) {
        return sparse_attention(q, k, v, selection, c.block_size);
      };
      // The gradient of q through the paths, q made an op's output by scale(·, 1); the later
      // path's backward runs first.
      auto dq_through = [&](auto... paths) {
        Tensor q = on(in.q, dtype, Device::cuda);
        q.set_requires_grad(true);
        const Tensor scaled = scale(q, 1.0);
        Tensor out;
        ((out = out.defined() ? add(out, paths(scaled)) : paths(scaled)), ...);
        backward(out, d_out);
        return q.grad();
      };
      const Tensor summed = add(dq_through(full), dq_through(sparse));
      CHECK(dq_through(full, sparse).to_vector() == summed.to_vector());
      CHECK(dq_through(sparse, full).to_vector() == summed.to_vector());
      unsetenv("SSA_NO_WGMMA");
    }
  }

  TEST_CASE("sparse attention: unsupported inputs are errors naming the op") {
    auto zeros = [](Shape s, DType dtype) { return Tensor::zeros(s, dtype, Device::cuda); };
    const Tensor q64 = zeros({1, 32, 2, 64}, DType::f64), kv64 = zeros({1, 32, 1, 64}, DType::f64);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q64, kv64, kv64, 16, 2),
                         doctest::Contains("f32 or bf16"), Error);
    const Tensor q = zeros({1, 32, 2, 32}, DType::bf16), kv = zeros({1, 32, 1, 32}, DType::bf16);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q, kv, kv, 16, 2), doctest::Contains("head_dim"),
                         Error);
    const Tensor q_ok = zeros({1, 32, 2, 64}, DType::f32),
                 kv_ok = zeros({1, 32, 1, 64}, DType::f32);
    CHECK_THROWS_WITH_AS(block_sparse_attention(q_ok, kv_ok, kv_ok, 8, 2),
                         doctest::Contains("multiple of 16"), Error);
    const Tensor after_own = Tensor::from(std::vector<double>(32, 1.0), {1, 32, 1, 1}, DType::i32);
    CHECK_THROWS_WITH_AS(sparse_attention(q_ok, kv_ok, kv_ok, after_own.to(Device::cuda), 16),
                         doctest::Contains("selection row (b 0, t 0, kv head 0)"), Error);
    CHECK_THROWS_AS(sparse_attention(q_ok, kv_ok, kv_ok, after_own, 16), Error);  // on the CPU
  }
}
