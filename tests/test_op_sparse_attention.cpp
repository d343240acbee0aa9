#include <omp.h>

#include <algorithm>
#include <cmath>

#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/sparse_attention.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Config {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
  int64_t group() const { return heads / kv_heads; }
  int64_t q_at(int64_t b, int64_t t, int64_t h) const {
    return ((b * q_len + t) * heads + h) * head_dim;
  }
  int64_t kv_at(int64_t b, int64_t s, int64_t kv) const {
    return ((b * k_len + s) * kv_heads + kv) * head_dim;
  }
};

struct Inputs {
  Tensor q, k, v;
};

Inputs random_inputs(const Config& c, uint64_t seed, DType dtype = DType::f64,
                     bool requires_grad = true) {
  return {
      random_tensor({c.batch, c.q_len, c.heads, c.head_dim}, seed, dtype, requires_grad),
      random_tensor({c.batch, c.k_len, c.kv_heads, c.head_dim}, seed + 1, dtype, requires_grad),
      random_tensor({c.batch, c.k_len, c.kv_heads, c.head_dim}, seed + 2, dtype, requires_grad)};
}

int64_t selection_width(const Config& c, int64_t block_size, int64_t top_k) {
  return std::min(top_k, (c.k_len + block_size - 1) / block_size);
}

double dot(const double* a, const double* b, int64_t n) {
  double sum = 0;
  for (int64_t x = 0; x < n; ++x) sum += a[x] * b[x];
  return sum;
}

// The selection by its definition: block means, every candidate's summed group softmax, all
// candidates sorted by (score descending, index ascending), the first top_k − 1 and the own
// block, ascending, −1 padded.
std::vector<double> reference_selection(const Config& c, const Inputs& in, int64_t block_size,
                                        int64_t top_k) {
  const std::vector<double> q = in.q.to_vector(), k = in.k.to_vector();
  const int64_t blocks = c.k_len / block_size, width = selection_width(c, block_size, top_k);
  std::vector<double> kbar(c.batch * blocks * c.kv_heads * c.head_dim, 0.0);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t s = 0; s < blocks * block_size; ++s)
      for (int64_t kv = 0; kv < c.kv_heads; ++kv)
        for (int64_t x = 0; x < c.head_dim; ++x)
          kbar[((b * blocks + s / block_size) * c.kv_heads + kv) * c.head_dim + x] +=
              k[c.kv_at(b, s, kv) + x] / static_cast<double>(block_size);
  std::vector<double> selection;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t t = 0; t < c.q_len; ++t) {
      const int64_t own = (c.k_len - c.q_len + t) / block_size;
      for (int64_t kv = 0; kv < c.kv_heads; ++kv) {
        std::vector<std::pair<double, int64_t>> ranked;  // (−score, block)
        for (int64_t j = 0; j < own; ++j) {
          double score = 0;
          for (int64_t h = kv * c.group(); h < (kv + 1) * c.group(); ++h) {
            auto weight = [&](int64_t block) {
              const double* kbar_j = &kbar[((b * blocks + block) * c.kv_heads + kv) * c.head_dim];
              return std::exp(dot(&q[c.q_at(b, t, h)], kbar_j, c.head_dim) /
                              std::sqrt(static_cast<double>(c.head_dim)));
            };
            double total = 0;
            for (int64_t other = 0; other < own; ++other) total += weight(other);
            score += weight(j) / total;
          }
          ranked.push_back({-score, j});
        }
        std::sort(ranked.begin(), ranked.end());
        std::vector<double> row;
        for (int64_t r = 0; r < std::min(top_k - 1, own); ++r) row.push_back(ranked[r].second);
        row.push_back(own);
        std::sort(row.begin(), row.end());
        row.resize(width, -1);
        selection.insert(selection.end(), row.begin(), row.end());
      }
    }
  }
  return selection;
}

// softmax(q kᵀ / sqrt(d)) v over the keys s ≤ p whose block the selection row lists, with loops.
std::vector<double> reference_sparse_attention(const Config& c, const Inputs& in,
                                               const Tensor& selection, int64_t block_size) {
  const std::vector<double> q = in.q.to_vector(), k = in.k.to_vector(), v = in.v.to_vector();
  const std::vector<double> selected = selection.to_vector();
  const int64_t width = selection.dim(3);
  std::vector<double> out(q.size());
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t t = 0; t < c.q_len; ++t) {
      for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t kv = h / c.group();
        const double* row = &selected[((b * c.q_len + t) * c.kv_heads + kv) * width];
        std::vector<double> weight(c.k_len, 0.0);
        double total = 0;
        for (int64_t s = 0; s <= c.k_len - c.q_len + t; ++s) {
          if (std::find(row, row + width, static_cast<double>(s / block_size)) == row + width)
            continue;
          weight[s] = std::exp(dot(&q[c.q_at(b, t, h)], &k[c.kv_at(b, s, kv)], c.head_dim) /
                               std::sqrt(static_cast<double>(c.head_dim)));
          total += weight[s];
        }
        for (int64_t x = 0; x < c.head_dim; ++x) {
          double sum = 0;
          for (int64_t s = 0; s < c.k_len; ++s) sum += weight[s] / total * v[c.kv_at(b, s, kv) + x];
          out[c.q_at(b, t, h) + x] = sum;
        }
      }
    }
  }
  return out;
}

constexpr uint64_t kSeed = 131;

// The output and dq, dk, dv of op(q, k, v) on the inputs of kSeed, under a fixed random output
// gradient.
template <typename Op>
std::vector<std::vector<double>> output_and_gradients(const Config& c, DType dtype, Op op) {
  const Inputs in = random_inputs(c, kSeed, dtype, true);
  const Tensor out = op(in.q, in.k, in.v);
  backward(out, random_tensor(out.shape(), 137, dtype, false));
  return {out.to_vector(), in.q.grad().to_vector(), in.k.grad().to_vector(),
          in.v.grad().to_vector()};
}

}  // namespace

TEST_CASE("sparse: block_means averages each complete block and leaves a partial one out") {
  const Config c{2, 10, 10, 2, 2, 3};
  const Tensor k = random_inputs(c, 11).k;
  const Tensor means = block_means(k, 4);
  REQUIRE(means.shape() == Shape({2, 2, 2, 3}));
  const std::vector<double> key = k.to_vector(), mean = means.to_vector();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t x = 0; x < 2 * 3; ++x) {
        double sum = 0;
        for (int64_t s = 4 * j; s < 4 * j + 4; ++s) sum += key[(b * 10 + s) * 6 + x];
        CHECK(mean[(b * 2 + j) * 6 + x] == doctest::Approx(sum / 4).epsilon(1e-15));
      }
  CHECK(block_means(k.to(DType::f32), 4).dtype() == DType::f32);
  CHECK(block_means(k, 16).shape() == Shape({2, 0, 2, 3}));
}

TEST_CASE("sparse: select_blocks matches a brute-force ranking of the summed group softmax") {
  for (Config c :
       {Config{2, 50, 50, 4, 4, 5}, Config{2, 50, 50, 4, 2, 5}, Config{2, 50, 50, 4, 1, 5},
        Config{2, 3, 37, 4, 2, 6}, Config{2, 1, 37, 2, 1, 6}, Config{1, 17, 17, 2, 1, 4}}) {
    for (int64_t block_size : {4, 5}) {
      for (int64_t top_k : {1, 2, 3}) {
        CAPTURE(c.q_len);
        CAPTURE(c.k_len);
        CAPTURE(c.kv_heads);
        CAPTURE(block_size);
        CAPTURE(top_k);
        const Inputs in = random_inputs(c, 21, DType::f64, false);
        const Tensor selection =
            select_blocks(in.q, block_means(in.k, block_size), c.k_len, block_size, top_k);
        REQUIRE(selection.shape() ==
                Shape({c.batch, c.q_len, c.kv_heads, selection_width(c, block_size, top_k)}));
        CHECK(selection.to_vector() == reference_selection(c, in, block_size, top_k));
      }
    }
  }
}

TEST_CASE("sparse: select_blocks ignores block means past the keys (a decoder's running means)") {
  // The last query over 37 keys, with the means of those keys and with the means of 45 keys
  // that start with them.
  const Config c{2, 1, 37, 4, 2, 6};
  const Inputs in = random_inputs(c, 31, DType::f64, false);
  const std::vector<double> keys = in.k.to_vector(),
                            extra = random_tensor({2, 8, 2, 6}, 33).to_vector();
  std::vector<double> longer;
  for (int64_t b = 0; b < 2; ++b) {
    longer.insert(longer.end(), keys.begin() + b * 37 * 12, keys.begin() + (b + 1) * 37 * 12);
    longer.insert(longer.end(), extra.begin() + b * 8 * 12, extra.begin() + (b + 1) * 8 * 12);
  }
  const Tensor longer_means = block_means(Tensor::from(longer, {2, 45, 2, 6}, DType::f64), 4);
  REQUIRE(longer_means.dim(1) == 11);
  CHECK(select_blocks(in.q, longer_means, 37, 4, 3).to_vector() ==
        reference_selection(c, in, 4, 3));
}

TEST_CASE("sparse: select_blocks keeps the own block even when it would score lowest") {
  // q > 0 everywhere, keys of blocks 0..2 > 0 and of block 3 < 0: as a candidate block 3 would
  // rank last.
  const Tensor q = Tensor::full({1, 16, 2, 4}, 1.0, DType::f64);
  std::vector<double> keys = random_tensor({1, 16, 1, 4}, 41, DType::f64, false).to_vector();
  for (int64_t i = 0; i < 16 * 4; ++i) keys[i] = i < 12 * 4 ? std::abs(keys[i]) + 0.1 : -1.0;
  const Tensor k = Tensor::from(keys, {1, 16, 1, 4}, DType::f64);
  const std::vector<double> selection = select_blocks(q, block_means(k, 4), 16, 4, 3).to_vector();
  REQUIRE(selection.size() == 16 * 3);
  for (int64_t t = 0; t < 16; ++t) {
    CAPTURE(t);
    const int64_t own = t / 4, kept = std::min<int64_t>(3, own + 1);
    const double* row = &selection[t * 3];
    CHECK(row[kept - 1] == own);
    for (int64_t slot = 1; slot < kept; ++slot) CHECK(row[slot - 1] < row[slot]);
    for (int64_t slot = kept; slot < 3; ++slot) CHECK(row[slot] == -1);
  }
  CHECK(std::vector(selection.begin(), selection.begin() + 3) == std::vector<double>{0, -1, -1});
  CHECK(std::vector(selection.begin() + 4 * 3, selection.begin() + 5 * 3) ==
        std::vector<double>{0, 1, -1});
  CHECK(select_blocks(q, block_means(k, 4), 16, 4, 10).dim(3) == 4);  // width ≤ block count
  CHECK(select_blocks(q.view(0, {1, 1, 2, 4}), block_means(k, 4), 17, 4, 10).dim(3) == 5);
}

TEST_CASE("sparse: select_blocks breaks ties toward the lower block index") {
  const Config c{2, 32, 32, 4, 2, 3};
  const Tensor q = Tensor::zeros({2, 32, 4, 3}, DType::f64);  // every candidate scores 1 / own
  const Tensor k = random_inputs(c, 51).k;
  const std::vector<double> selection = select_blocks(q, block_means(k, 4), 32, 4, 3).to_vector();
  std::vector<double> expected;
  for (int64_t row = 0; row < 2 * 32 * 2; ++row) {  // rows (b, t, kv head)
    const double own = static_cast<double>(row / 2 % 32 / 4);
    const std::vector<double> rows[] = {{0, -1, -1}, {0, 1, -1}, {0, 1, 2}, {0, 1, own}};
    const auto& expected_row = rows[std::min<int64_t>(row / 2 % 32 / 4, 3)];
    expected.insert(expected.end(), expected_row.begin(), expected_row.end());
  }
  CHECK(selection == expected);
}

TEST_CASE("sparse: with every block selected, forward and gradients equal full attention") {
  std::vector<std::pair<int64_t, int64_t>> lengths{{1, 37}, {3, 37}};  // (Tq, Tk)
  for (int64_t len : {1, 5, 16, 17, 50, 64}) lengths.push_back({len, len});
  for (auto [q_len, k_len] : lengths) {
    for (int64_t block_size : {4, 16}) {
      for (int64_t kv_heads : {4, 2, 1}) {
        const Config c{2, q_len, k_len, 4, kv_heads, 8};
        CAPTURE(q_len);
        CAPTURE(k_len);
        CAPTURE(block_size);
        CAPTURE(kv_heads);
        const auto full = output_and_gradients(c, DType::f64, attention);
        const auto sparse = output_and_gradients(c, DType::f64, [&](auto q, auto k, auto v) {
          return block_sparse_attention(q, k, v, block_size, 1000);
        });
        for (size_t i = 0; i < full.size(); ++i) CHECK(max_abs_diff(full[i], sparse[i]) < 1e-6);
      }
    }
  }
}

TEST_CASE("sparse: sparse_attention matches a softmax masked to the selected tokens") {
  for (Config c :
       {Config{2, 50, 50, 4, 4, 5}, Config{2, 50, 50, 4, 2, 5}, Config{2, 50, 50, 4, 1, 5},
        Config{2, 3, 37, 4, 2, 6}, Config{2, 1, 37, 4, 1, 6}}) {
    for (int64_t top_k : {1, 2, 3}) {
      CAPTURE(c.q_len);
      CAPTURE(c.kv_heads);
      CAPTURE(top_k);
      const Inputs in = random_inputs(c, 61, DType::f64, false);
      const Tensor selection = select_blocks(in.q, block_means(in.k, 4), c.k_len, 4, top_k);
      const std::vector<double> expected = reference_sparse_attention(c, in, selection, 4);
      CHECK(max_abs_diff(sparse_attention(in.q, in.k, in.v, selection, 4).to_vector(), expected) <
            1e-10);
      CHECK(max_abs_diff(block_sparse_attention(in.q, in.k, in.v, 4, top_k).to_vector(), expected) <
            1e-10);
      const Tensor out32 = sparse_attention(in.q.to(DType::f32), in.k.to(DType::f32),
                                            in.v.to(DType::f32), selection, 4);
      CHECK(max_abs_diff(out32.to_vector(), expected) < 1e-5);
    }
  }
}

TEST_CASE("sparse: sparse_attention reads any valid selection, not only select_blocks output") {
  // Query 9 (own block 4 of size 2) reads blocks 1 and 4, i.e. keys 2, 3, 8, 9; query 8 reads
  // only its own block's first key, so it returns v[8].
  const Config c{1, 10, 10, 2, 1, 3};
  const Inputs in = random_inputs(c, 71, DType::f64, false);
  std::vector<double> rows(10 * 2, -1.0);
  for (int64_t t = 0; t < 10; ++t) rows[t * 2] = static_cast<double>(t / 2);
  rows[9 * 2] = 1;
  rows[9 * 2 + 1] = 4;
  const Tensor selection = Tensor::from(rows, {1, 10, 1, 2}, DType::i32);
  const std::vector<double> out = sparse_attention(in.q, in.k, in.v, selection, 2).to_vector();
  CHECK(max_abs_diff(out, reference_sparse_attention(c, in, selection, 2)) < 1e-12);
  const std::vector<double> v = in.v.to_vector();
  for (int64_t x = 0; x < 3; ++x) CHECK(out[8 * 2 * 3 + x] == doctest::Approx(v[8 * 3 + x]));
}

TEST_CASE("sparse: forward, backward and selection are bit-identical for any thread count") {
  const int previous = omp_get_max_threads();
  const Config c{3, 140, 140, 4, 2, 16};
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    const Inputs in = random_inputs(c, kSeed, DType::f32, false);
    const Tensor selection = select_blocks(in.q, block_means(in.k, 16), c.k_len, 16, 3);
    auto result = output_and_gradients(c, DType::f32, [&](auto q, auto k, auto v) {
      return sparse_attention(q, k, v, selection, 16);
    });
    result.push_back(selection.to_vector());
    return result;
  };
  const auto one_thread = run(1);
  const auto two_threads = run(2);
  CHECK(omp_get_max_threads() == 2);  // the single-thread setting inside the op does not leak
  omp_set_num_threads(previous);
  CHECK(one_thread == two_threads);
}

TEST_CASE("sparse: errors") {
  const Tensor q = Tensor::zeros({1, 4, 2, 3}, DType::f32);
  const Tensor kv = Tensor::zeros({1, 4, 1, 3}, DType::f32);
  auto selection = [](std::vector<double> rows) {
    return Tensor::from(rows, {1, 4, 1, 2}, DType::i32);
  };
  CHECK_NOTHROW(sparse_attention(q, kv, kv, selection({0, -1, 0, -1, 0, 1, 1, -1}), 2));
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, selection({0, -1, 0, -1, 1, 0, 1, -1}), 2),
                  Error);  // descending
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, selection({0, -1, 0, -1, 1, 1, 1, -1}), 2),
                  Error);  // repeated
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, selection({1, -1, 0, -1, 0, 1, 1, -1}), 2),
                  Error);  // past the own block
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, selection({-1, -1, 0, -1, 0, 1, 1, -1}), 2),
                  Error);  // empty
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, selection({-1, 0, 0, -1, 0, 1, 1, -1}), 2),
                  Error);  // a block after padding
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, Tensor::zeros({1, 4, 1, 2}, DType::f32), 2),
                  Error);  // dtype
  CHECK_THROWS_AS(sparse_attention(q, kv, kv, Tensor::zeros({1, 4, 2, 2}, DType::i32), 2),
                  Error);                                                 // shape
  CHECK_THROWS_AS(select_blocks(q, block_means(kv, 2), 4, 2, 0), Error);  // top_k
  CHECK_THROWS_AS(select_blocks(q, block_means(kv, 2), 8, 2, 2), Error);  // too few means
  CHECK_THROWS_AS(select_blocks(q, Tensor::zeros({1, 2, 3, 3}, DType::f32), 4, 2, 2), Error);
  CHECK_THROWS_AS(block_means(kv, 0), Error);
}
