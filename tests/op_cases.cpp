#include "op_cases.h"

#include <fmt/format.h>

#include "ops/attention.h"
#include "ops/attention_projections.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gate.h"
#include "ops/linear.h"
#include "ops/reshape.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/smooth_l1.h"
#include "ops/sparse_attention.h"
#include "ops/swiglu.h"
#include "parity_tolerances.h"

namespace ssa::test {
namespace {

// A random f64 input whose gradient is checked.
Tensor input(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return random_tensor(shape, seed, DType::f64, true, scale);
}

// A random f64 input without a gradient.
Tensor fixed(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return random_tensor(shape, seed, DType::f64, false, scale);
}

Tensor ids(const std::vector<double>& values, const Shape& shape) {
  return Tensor::from(values, shape, DType::i32);
}

// ---- elementwise, reshape, linear, matmul

const std::vector<Shape> kAwkwardShapes = {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 7}};

std::vector<OpCase> add_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : kAwkwardShapes)
    cases.push_back(
        {"", [](const auto& x) { return add(x[0], x[1]); }, {input(s, 1), input(s, 2)}});
  return cases;
}

// Element by element (111 elements), and in runs of 8 (256); "a + a" accumulates its two
// gradients in runs.
std::vector<OpCase> add_cuda() {
  const auto sum = [](const auto& x) { return add(x[0], x[1]); };
  return {{"", sum, {input({3, 37}, 1), input({3, 37}, 2)}},
          {"", sum, {input({4, 64}, 1), input({4, 64}, 2)}},
          {"a + a", [](const auto& x) { return add(x[0], x[0]); }, {input({4, 64}, 1)}}};
}

std::vector<OpCase> mul_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : kAwkwardShapes) {
    cases.push_back(
        {"", [](const auto& x) { return mul(x[0], x[1]); }, {input(s, 1), input(s, 2)}});
    cases.push_back({"a·a", [](const auto& x) { return mul(x[0], x[0]); }, {input(s, 1)}});
  }
  return cases;
}

std::vector<OpCase> mul_cuda() {
  const auto product = [](const auto& x) { return mul(x[0], x[1]); };
  return {{"", product, {input({5, 29}, 3), input({5, 29}, 4)}},
          {"", product, {input({2, 40}, 3), input({2, 40}, 4)}}};
}

std::vector<OpCase> scale_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : kAwkwardShapes)
    cases.push_back({"0.37", [](const auto& x) { return scale(x[0], 0.37); }, {input(s, 1)}});
  return cases;
}

std::vector<OpCase> scale_cuda() {
  return {{"0.37", [](const auto& x) { return scale(x[0], 0.37); }, {input({7, 13}, 5)}}};
}

std::vector<OpCase> sum_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : kAwkwardShapes)
    cases.push_back(
        {"of a·b", [](const auto& x) { return sum(mul(x[0], x[1])); }, {input(s, 1), input(s, 2)}});
  return cases;
}

// Small, and over many blocks of the two-pass tree.
std::vector<OpCase> sum_cuda() {
  auto f = [](const auto& x) { return sum(x[0]); };
  return {{"", f, {input({1001}, 6)}}, {"", f, {input({(1 << 20) + 3}, 7)}}};
}

std::vector<OpCase> mean_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : kAwkwardShapes)
    cases.push_back({"", [](const auto& x) { return mean(x[0]); }, {input(s, 1)}});
  return cases;
}

std::vector<OpCase> mean_cuda() {
  return {{"", [](const auto& x) { return mean(x[0]); }, {input({3, 333}, 8)}}};
}

// The reshaped input times a fixed tensor of the new shape.
std::vector<OpCase> reshape_cases() {
  auto f = [](const auto& x) { return mul(reshape(x[0], {6, 5}), x[1]); };
  return {{"to [6, 5], times b", f, {input({2, 3, 5}, 11), fixed({6, 5}, 12)}}};
}

OpCase linear_case(const Shape& x, const Shape& w, uint64_t seed) {
  return {"",
          [](const auto& in) { return linear(in[0], in[1]); },
          {input(x, seed), input(w, seed + 1)}};
}

std::vector<OpCase> linear_cpu() {
  return {linear_case({2, 3, 5}, {7, 5}, 1), linear_case({1, 5}, {1, 5}, 1),
          linear_case({4}, {3, 4}, 1)};
}

std::vector<OpCase> linear_cuda() {
  return {linear_case({2, 13, 67}, {45, 67}, 9), linear_case({37, 129}, {257, 129}, 11)};
}

// a [m, k] (read transposed: [k, m]) times b [k, n] (read transposed: [n, k]), 2-D or batched.
OpCase matmul_case(bool ta, bool tb, Shape a, Shape b, uint64_t seed) {
  if (ta) std::swap(a.dims[a.rank - 2], a.dims[a.rank - 1]);
  if (tb) std::swap(b.dims[b.rank - 2], b.dims[b.rank - 1]);
  return {fmt::format("ta={} tb={}", ta, tb),
          [ta, tb](const auto& x) { return matmul(x[0], x[1], ta, tb); },
          {input(a, seed), input(b, seed + 1)}};
}

std::vector<OpCase> matmul_cpu() {
  std::vector<OpCase> cases;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      cases.push_back(matmul_case(ta, tb, {3, 5}, {5, 4}, 1));
      cases.push_back(matmul_case(ta, tb, {2, 1, 3}, {2, 3, 6}, 3));
    }
  }
  return cases;
}

std::vector<OpCase> matmul_cuda() {
  std::vector<OpCase> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      cases.push_back(matmul_case(ta, tb, {3, 17, 29}, {3, 29, 23}, 13));
  return cases;
}

// ---- embedding, rmsnorm, rope, swiglu, head_gate

std::vector<OpCase> embedding_cases(const std::vector<std::pair<Tensor, Tensor>>& ids_and_tables) {
  std::vector<OpCase> cases;
  for (const auto& [token_ids, table] : ids_and_tables)
    cases.push_back({"", [](const auto& x) { return embedding(x[0], x[1]); }, {token_ids, table}});
  return cases;
}

// Repeated ids, a one-column table, random ids.
std::vector<OpCase> embedding_cpu() {
  return embedding_cases({{ids({4, 1, 4, 0}, {2, 2}), input({5, 3}, 1)},
                          {ids({2}, {1}), input({3, 1}, 2)},
                          {random_ids({2, 3, 2}, 7, 9), input({7, 5}, 3)}});
}

// Element by element (19 columns), in packs with mostly unused rows (1000 ids), 1200 tokens
// over 20 ids (runs of about 60 across chunks of 32 sorted positions), and 1000 over 3 (runs
// over a dozen chunks).
std::vector<OpCase> embedding_cuda() {
  return embedding_cases({{random_ids({2, 45}, 37, 15), input({37, 19}, 16)},
                          {random_ids({3, 100}, 1000, 17), input({1000, 64}, 18)},
                          {random_ids({4, 300}, 20, 19), input({20, 24}, 20)},
                          {random_ids({2, 500}, 3, 21), input({3, 16}, 22)}});
}

OpCase rmsnorm_case(const Shape& x, double eps, uint64_t seed) {
  return {fmt::format("eps {}", eps),
          [eps](const auto& in) { return rmsnorm(in[0], in[1], eps); },
          {input(x, seed), input({x.back()}, seed + 1)}};
}

std::vector<OpCase> rmsnorm_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : {Shape{2, 3, 5}, Shape{1, 7}, Shape{4, 1}, Shape{9}})
    cases.push_back(rmsnorm_case(s, 1e-3, 1));
  return cases;
}

// Rows the row kernels cannot take (dim not a multiple of 8), and rows they take: a partial
// last piece (520), whole pieces (1024), and in f32 over 8 pieces (2048: the block kernel);
// 300 rows make 5 chunks of the weight gradient.
std::vector<OpCase> rmsnorm_cuda() {
  return {rmsnorm_case({2, 13, 97}, 1e-5, 19), rmsnorm_case({1000, 65}, 1e-5, 21),
          rmsnorm_case({7, 520}, 1e-5, 23),    rmsnorm_case({2, 3, 1024}, 1e-5, 25),
          rmsnorm_case({5, 2048}, 1e-6, 27),   rmsnorm_case({3, 100, 256}, 1e-5, 29)};
}

// rope of x [B, T, H, head_dim] at positions offset.. with a table of `positions` rows, made on
// x's device in x's dtype (f32 for bf16).
OpCase rope_case(int64_t positions, int64_t offset, Tensor x) {
  const int64_t head_dim = x.dim(3);
  return {fmt::format("table {} offset {}", positions, offset),
          [positions, head_dim, offset](const auto& in) {
            const DType dtype = in[0].dtype() == DType::bf16 ? DType::f32 : in[0].dtype();
            return rope(in[0], rope_table(positions, head_dim, 10000.0, dtype, in[0].device()),
                        offset);
          },
          {std::move(x)}};
}

// The last position of the table, and head_dim 2.
std::vector<OpCase> rope_cpu() {
  return {rope_case(12, 0, input({2, 3, 3, 6}, 31)), rope_case(12, 11, input({1, 1, 2, 6}, 32)),
          rope_case(12, 4, input({2, 5, 1, 2}, 33))};
}

// Halves of 8 and 32 (16-byte packs) and of 6 (one pair at a time).
std::vector<OpCase> rope_cuda() {
  return {rope_case(40, 5, input({2, 13, 3, 16}, 23)), rope_case(40, 0, input({2, 9, 2, 64}, 24)),
          rope_case(40, 5, input({2, 13, 3, 12}, 25))};
}

// ---- attention_projections

struct Projections {
  int64_t batch, seq, d_model, heads, kv_heads, head_dim;
  bool gate;
  int64_t position_offset;
};
constexpr int kAllOutputs = -1;

// Inputs: h, wq, wk, wv (, wg), separate tensors (the stacked weight is then a copy). The case
// returns one output (0 q, 1 k, 2 v, 3 gate_logits: the others get no gradient) or, for
// kAllOutputs, Σ sum(output · output) over the outputs, so that every output's gradient reaches
// the backward at once (a sum of squares: no cancellation to blur bf16's parity).
OpCase attention_projections_case(const Projections& p, int output, uint64_t seed) {
  std::vector<Tensor> in{input({p.batch, p.seq, p.d_model}, seed),
                         input({p.heads * p.head_dim, p.d_model}, seed + 1),
                         input({p.kv_heads * p.head_dim, p.d_model}, seed + 2),
                         input({p.kv_heads * p.head_dim, p.d_model}, seed + 3)};
  if (p.gate) in.push_back(input({p.heads, p.d_model}, seed + 4));
  return {fmt::format("head_dim {} offset {} {}", p.head_dim, p.position_offset,
                      output == kAllOutputs ? "all outputs" : fmt::format("output {}", output)),
          [p, output](const auto& x) {
            const DType table_dtype = x[0].dtype() == DType::bf16 ? DType::f32 : x[0].dtype();
            const RopeTable table = rope_table(p.position_offset + p.seq, p.head_dim, 10000.0,
                                               table_dtype, x[0].device());
            const AttentionInputs out =
                attention_projections(x[0], {x[1], x[2], x[3], p.gate ? x[4] : Tensor()},
                                      p.head_dim, table, p.position_offset);
            const std::vector<Tensor> outputs{out.q, out.k, out.v, out.gate_logits};
            if (output != kAllOutputs) return outputs[static_cast<size_t>(output)];
            Tensor total = sum(mul(outputs[0], outputs[0]));
            for (size_t i = 1; i < outputs.size(); ++i)
              if (outputs[i].defined()) total = add(total, sum(mul(outputs[i], outputs[i])));
            return total;
          },
          std::move(in)};
}

// Each output alone, all four, no gate, KV heads 1 and 2, an offset.
std::vector<OpCase> attention_projections_cpu() {
  const Projections gated{2, 3, 5, 2, 1, 4, true, 1}, plain{1, 4, 6, 2, 2, 2, false, 0};
  std::vector<OpCase> cases;
  for (int output : {0, 1, 2, 3, kAllOutputs})
    cases.push_back(attention_projections_case(gated, output, 41));
  cases.push_back(attention_projections_case(plain, kAllOutputs, 47));
  return cases;
}

// Rows of y 648 and 384 wide (16-byte packs of bf16: RoPE in packs) and 388 (pair by pair); k
// alone (the other columns of dy zeros).
std::vector<OpCase> attention_projections_cuda() {
  return {attention_projections_case({1, 40, 64, 8, 1, 64, true, 0}, kAllOutputs, 51),
          attention_projections_case({2, 37, 96, 4, 1, 64, false, 3}, kAllOutputs, 53),
          attention_projections_case({2, 37, 96, 4, 1, 64, true, 3}, kAllOutputs, 55),
          attention_projections_case({2, 13, 40, 2, 2, 8, true, 0}, 1, 57)};
}

// ---- add_rmsnorm

// Inputs x, residual, weight; the case returns the norm (normed_only) or Σ sum(output · output)
// over both outputs, so that the sum's gradient comes both ways. (The sum alone gives the weight
// no gradient: tests/test_op_rmsnorm.cpp checks that case.)
OpCase add_rmsnorm_case(const Shape& x, bool normed_only, uint64_t seed) {
  return {normed_only ? "normed" : "both outputs",
          [normed_only](const auto& in) {
            const NormedSum out = add_rmsnorm(in[0], in[1], in[2], 1e-5);
            if (normed_only) return out.normed;
            return add(sum(mul(out.sum, out.sum)), sum(mul(out.normed, out.normed)));
          },
          {input(x, seed), input(x, seed + 1), input({x.back()}, seed + 2)}};
}

std::vector<OpCase> add_rmsnorm_cpu() {
  return {add_rmsnorm_case({2, 3, 5}, true, 61), add_rmsnorm_case({2, 3, 5}, false, 61),
          add_rmsnorm_case({4, 1}, false, 64)};
}

// As rmsnorm's: rows the row kernels cannot take (97), a partial last piece (520), whole pieces
// (1024), and the block kernel for f32 (2048); the norm alone at 256.
std::vector<OpCase> add_rmsnorm_cuda() {
  return {add_rmsnorm_case({2, 13, 97}, false, 71), add_rmsnorm_case({7, 520}, false, 74),
          add_rmsnorm_case({2, 3, 1024}, false, 77), add_rmsnorm_case({5, 2048}, false, 80),
          add_rmsnorm_case({3, 100, 256}, true, 83)};
}

std::vector<OpCase> swiglu_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 11}}) {
    cases.push_back(
        {"", [](const auto& x) { return swiglu(x[0], x[1]); }, {input(s, 41, 4.0), input(s, 42)}});
    cases.push_back(
        {"a, a", [](const auto& x) { return swiglu(x[0], x[0]); }, {input(s, 41, 4.0)}});
  }
  return cases;
}

// Element by element (123 elements) and in runs of 8 (192).
std::vector<OpCase> swiglu_cuda() {
  const auto gated = [](const auto& x) { return swiglu(x[0], x[1]); };
  return {{"", gated, {input({3, 41}, 24, 4.0), input({3, 41}, 25)}},
          {"", gated, {input({3, 64}, 24, 4.0), input({3, 64}, 25)}},
          {"a, a", [](const auto& x) { return swiglu(x[0], x[0]); }, {input({3, 64}, 26, 4.0)}}};
}

OpCase swiglu_linear_case(const Shape& a, const Shape& w, uint64_t seed) {
  return {"",
          [](const auto& x) { return swiglu_linear(x[0], x[1], x[2]); },
          {input(a, seed, 4.0), input(a, seed + 1), input(w, seed + 2)}};
}

std::vector<OpCase> swiglu_linear_cpu() {
  return {swiglu_linear_case({2, 3, 5}, {4, 5}, 43),
          swiglu_linear_case({7}, {3, 7}, 43),
          {"a, a",
           [](const auto& x) { return swiglu_linear(x[0], x[0], x[1]); },
           {input({3, 5}, 46, 4.0), input({2, 5}, 47)}}};
}

// The product's element-by-element (41) and run-of-8 (64) kernels.
std::vector<OpCase> swiglu_linear_cuda() {
  return {swiglu_linear_case({3, 41}, {45, 41}, 27), swiglu_linear_case({2, 13, 64}, {37, 64}, 27)};
}

OpCase head_gate_case(const Shape& o, uint64_t seed) {
  return {"",
          [](const auto& x) { return head_gate(x[0], x[1]); },
          {input(o, seed), input({o[0], o[1], o[2]}, seed + 1, 3.0)}};
}

std::vector<OpCase> head_gate_cpu() {
  return {head_gate_case({1, 1, 1, 1}, 53), head_gate_case({2, 3, 3, 5}, 53),
          head_gate_case({1, 7, 2, 3}, 53)};
}

// head_dim 37 (element by element), 64 (16-byte packs, a power-of-two lane group per row) and
// 24 (packs forward; in bf16 three lanes a row, so the backward's warp-per-row kernel).
std::vector<OpCase> head_gate_cuda() {
  return {head_gate_case({2, 13, 3, 37}, 26), head_gate_case({2, 13, 3, 64}, 27),
          head_gate_case({1, 9, 5, 24}, 28)};
}

// ---- losses

OpCase cross_entropy_case(double divisor, Tensor logits, Tensor targets) {
  return {fmt::format("divisor {}", divisor),
          [divisor](const auto& x) { return cross_entropy(x[0], x[1], divisor); },
          {std::move(logits), std::move(targets)}};
}

// Targets in [0, vocab) with every `ignored_every`-th row set to ignore_index −1.
Tensor targets_with_ignored(int64_t rows, int64_t vocab, uint64_t seed, int64_t ignored_every) {
  Tensor t = random_ids({rows}, vocab, seed);
  for (int64_t r = 0; r < rows; r += ignored_every) t.data<int32_t>()[r] = -1;
  return t;
}

// An ignored row, a divisor, one row, three classes.
std::vector<OpCase> cross_entropy_cpu() {
  std::vector<OpCase> cases;
  for (double divisor : {0.0, 5.5})
    cases.push_back(cross_entropy_case(divisor, input({4, 7}, 1, 2.0), ids({6, -1, 0, 3}, {4})));
  cases.push_back(cross_entropy_case(0, input({1, 9}, 2), ids({5}, {1})));
  cases.push_back(cross_entropy_case(0, input({13, 3}, 3), random_ids({13}, 3, 4)));
  return cases;
}

// Odd vocabularies, GPT-2's, ignored rows, a divisor, every row ignored; a vocabulary of whole
// 16-byte packs, with ignored rows and every row ignored.
std::vector<OpCase> cross_entropy_cuda() {
  return {
      cross_entropy_case(0, input({37, 1024}, 36, 4.0), targets_with_ignored(37, 1024, 37, 5)),
      cross_entropy_case(3, input({4, 64}, 38), targets_with_ignored(4, 64, 39, 1)),
      cross_entropy_case(0, input({37, 1037}, 28, 4.0), targets_with_ignored(37, 1037, 29, 5)),
      cross_entropy_case(100, input({37, 1037}, 30, 4.0), targets_with_ignored(37, 1037, 31, 4)),
      cross_entropy_case(0, input({19, 50257}, 32, 4.0), targets_with_ignored(19, 50257, 33, 7)),
      cross_entropy_case(0, input({5, 33}, 34), targets_with_ignored(5, 33, 35, 1))};
}

OpCase smooth_l1_case(double beta, Tensor a, Tensor b) {
  return {fmt::format("beta {}", beta),
          [beta](const auto& x) { return smooth_l1(x[0], x[1], beta); },
          {std::move(a), std::move(b)}};
}

// Gradients to both inputs and to either one alone.
std::vector<OpCase> smooth_l1_cpu() {
  std::vector<OpCase> cases;
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{2, 3, 5}}) {
    for (double beta : {1.0, 0.3}) {
      cases.push_back(smooth_l1_case(beta, input(s, 61), input(s, 62)));
      cases.push_back(smooth_l1_case(beta, input(s, 61), fixed(s, 63)));
      cases.push_back(smooth_l1_case(beta, fixed(s, 63), input(s, 62)));
    }
  }
  return cases;
}

// beta 1 and plain L1, element by element (385 elements); in runs of 8 (384), also at a beta
// whose inverse float is inexact (the kernels multiply by it).
std::vector<OpCase> smooth_l1_cuda() {
  return {smooth_l1_case(1.0, input({5, 77}, 36, 2.0), input({5, 77}, 37, 2.0)),
          smooth_l1_case(0.0, input({5, 77}, 38, 2.0), input({5, 77}, 39, 2.0)),
          smooth_l1_case(1.0, input({4, 96}, 40, 2.0), input({4, 96}, 41, 2.0)),
          smooth_l1_case(0.3, input({4, 96}, 42, 2.0), input({4, 96}, 43, 2.0))};
}

OpCase gated_smooth_l1_case(double beta, const Shape& o, uint64_t seed) {
  return {fmt::format("beta {}", beta),
          [beta](const auto& x) { return gated_smooth_l1(x[0], x[1], x[2], beta); },
          {input(o, seed, 2.0), input(o, seed + 1, 2.0), input({o[0], o[1], o[2]}, seed + 2, 3.0)}};
}

std::vector<OpCase> gated_smooth_l1_cpu() {
  return {gated_smooth_l1_case(1.0, {1, 1, 1, 1}, 64), gated_smooth_l1_case(1.0, {2, 3, 2, 5}, 65),
          gated_smooth_l1_case(0.3, {1, 4, 3, 2}, 66)};
}

// head_dim 64 (runs of 8 forward, a group of 8 or 16 lanes a row backward), 37 (element by
// element) and 24 (runs of 8 forward; in bf16 three packs a row, so a warp a row backward).
// Only beta 1: the gated value is rounded to the dtype as head_gate stores it, and inside
// |d| < beta the gradient d / beta scales that rounding by 1 / beta (beta 0.3 gave 1.5e-2 in
// bf16 against f64, beyond the table's bf16 tolerance). test_gpu_ops checks beta 0.3 to the
// bit against head_gate then smooth_l1, head_dim 128 with it.
std::vector<OpCase> gated_smooth_l1_cuda() {
  return {gated_smooth_l1_case(1.0, {2, 13, 3, 64}, 44),
          gated_smooth_l1_case(1.0, {2, 13, 3, 37}, 46),
          gated_smooth_l1_case(1.0, {1, 9, 5, 24}, 47)};
}

// ---- attention

struct Heads {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
  Shape q() const { return {batch, q_len, heads, head_dim}; }
  Shape kv() const { return {batch, k_len, kv_heads, head_dim}; }
};

// q, k, v drawn from seed, seed + 1, seed + 2; q and k scaled by qk_scale.
std::vector<Tensor> qkv(const Heads& h, uint64_t seed, double qk_scale, bool requires_grad = true) {
  return {random_tensor(h.q(), seed, DType::f64, requires_grad, qk_scale),
          random_tensor(h.kv(), seed + 1, DType::f64, requires_grad, qk_scale),
          random_tensor(h.kv(), seed + 2, DType::f64, requires_grad)};
}

OpCase attention_case(const Heads& h, uint64_t seed, double qk_scale,
                      std::vector<DType> cuda_dtypes = {DType::f32, DType::bf16}) {
  return {"", [](const auto& x) { return attention(x[0], x[1], x[2]); }, qkv(h, seed, qk_scale),
          std::move(cuda_dtypes)};
}

// GQA groups 1, 2, 4; T = 1; Tq < Tk (decoding: Tq = 1).
std::vector<OpCase> attention_cpu() {
  std::vector<OpCase> cases;
  for (const Heads& h : {Heads{2, 5, 5, 3, 3, 3}, Heads{1, 7, 7, 4, 2, 5}, Heads{1, 4, 4, 4, 1, 6},
                         Heads{1, 1, 1, 2, 1, 3}, Heads{2, 1, 5, 2, 2, 3}, Heads{1, 3, 6, 4, 2, 5}})
    cases.push_back(attention_case(h, 91, 1.0));
  return cases;
}

// T = 1, odd, a tile, not a tile multiple; GQA 1, 4, 16; head_dim 64 and 128; decoding
// (Tq = 1, Tk = 300) and Tq < Tk; T = 4096; in f32 also head_dims that are not multiples of 16
// (the bf16 kernels take 64 and 128 only).
std::vector<OpCase> attention_cuda() {
  std::vector<OpCase> cases;
  for (const Heads& h :
       {Heads{1, 1, 1, 4, 1, 64}, Heads{2, 7, 7, 4, 4, 128}, Heads{2, 64, 64, 4, 1, 64},
        Heads{1, 64, 64, 16, 1, 128}, Heads{2, 100, 100, 16, 1, 64}, Heads{2, 257, 257, 8, 2, 128},
        Heads{1, 257, 257, 4, 4, 64}, Heads{1, 1024, 1024, 4, 1, 64},
        Heads{1, 1024, 1024, 4, 4, 128}, Heads{2, 1, 300, 8, 2, 64}, Heads{2, 1, 300, 16, 1, 128},
        Heads{1, 100, 257, 4, 1, 128}, Heads{1, 100, 257, 4, 1, 64}})
    cases.push_back(attention_case(h, 11, 1.5));
  cases.push_back(attention_case({1, 4096, 4096, 2, 1, 64}, 13, 1.5, {DType::f32}));
  cases.push_back(attention_case({1, 4096, 4096, 2, 1, 128}, 23, 1.5, {DType::bf16}));
  cases.push_back(attention_case({1, 2048, 2048, 4, 2, 64}, 24, 1.5, {DType::bf16}));
  cases.push_back(attention_case({2, 33, 40, 4, 2, 4}, 15, 1.5, {DType::f32}));
  cases.push_back(attention_case({1, 70, 70, 2, 1, 100}, 16, 1.5, {DType::f32}));
  return cases;
}

struct Blocks {
  Heads heads;
  int64_t block_size, top_k;
};

OpCase sparse_attention_case(int64_t block_size, std::vector<Tensor> q_k_v, Tensor selection) {
  q_k_v.push_back(std::move(selection));
  return {
      fmt::format("block {}", block_size),
      [block_size](const auto& x) { return sparse_attention(x[0], x[1], x[2], x[3], block_size); },
      std::move(q_k_v)};
}

// sparse_attention with the selection select_blocks makes from the inputs.
OpCase selected_by_select_blocks(const Blocks& b, uint64_t seed, double qk_scale) {
  std::vector<Tensor> x = qkv(b.heads, seed, qk_scale);
  Tensor selection =
      select_blocks(x[0], block_means(x[1], b.block_size), b.heads.k_len, b.block_size, b.top_k);
  OpCase c = sparse_attention_case(b.block_size, std::move(x), std::move(selection));
  c.arguments += fmt::format(" top_k {}", b.top_k);
  return c;
}

// A random valid selection of `width` slots: each block up to the own one with probability 1/3
// (at least one), ascending, −1 padded; queries of one tile read different blocks.
Tensor random_selection(const Blocks& b, int64_t width, uint64_t seed) {
  const Heads& h = b.heads;
  const std::vector<double> coin =
      fixed({h.batch * h.q_len * h.kv_heads * width * 8}, seed).to_vector();
  std::vector<double> rows;
  size_t draw = 0;
  for (int64_t r = 0; r < h.batch * h.q_len * h.kv_heads; ++r) {
    const int64_t own = (h.k_len - h.q_len + r / h.kv_heads % h.q_len) / b.block_size;
    std::vector<double> row;
    for (int64_t j = 0; j <= own && static_cast<int64_t>(row.size()) < width; ++j)
      if (coin[draw++ % coin.size()] < -1.0 / 3) row.push_back(static_cast<double>(j));
    if (row.empty()) row.push_back(static_cast<double>(own));
    row.resize(width, -1);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  return Tensor::from(rows, {h.batch, h.q_len, h.kv_heads, width}, DType::i32);
}

// 5 blocks of 2 keys and top_k = 2: queries from block 2 on drop blocks.
std::vector<OpCase> sparse_attention_cpu() {
  std::vector<OpCase> cases;
  for (const Heads& h :
       {Heads{1, 10, 10, 4, 2, 3}, Heads{2, 3, 9, 2, 1, 4}, Heads{1, 9, 9, 2, 2, 3}})
    cases.push_back(selected_by_select_blocks({h, 2, 2}, 81, 1.0));
  return cases;
}

// T = 1, odd T, T not a multiple of the block size, a long sequence; GQA 1, 2, 4, 16; head_dim
// 64 and 128; blocks of 16, 32, 64; top_k 1, below and above the block count; decoding (Tq = 1)
// and Tq < Tk.
const std::vector<Blocks> kCudaBlocks = {
    {{1, 1, 1, 4, 1, 64}, 16, 16},        {{2, 7, 7, 4, 4, 128}, 16, 16},
    {{2, 100, 100, 16, 1, 64}, 16, 4},    {{1, 257, 257, 8, 2, 128}, 16, 3},
    {{2, 300, 300, 4, 4, 64}, 32, 5},     {{1, 333, 333, 4, 1, 128}, 64, 3},
    {{1, 200, 200, 2, 1, 64}, 16, 1},     {{1, 90, 90, 4, 2, 64}, 16, 100},
    {{2, 1, 300, 8, 2, 64}, 16, 4},       {{1, 100, 257, 4, 1, 128}, 16, 6},
    {{1, 513, 513, 32, 2, 64}, 16, 16},   {{1, 1000, 1000, 16, 1, 128}, 16, 16},
    {{1, 4096, 4096, 16, 1, 64}, 16, 16},
};

// The selections of select_blocks, then random ones, whose queries in one tile read different
// blocks.
std::vector<OpCase> sparse_attention_cuda() {
  std::vector<OpCase> cases;
  for (const Blocks& b : kCudaBlocks) cases.push_back(selected_by_select_blocks(b, 11, 1.5));
  for (const Blocks& b :
       {Blocks{{2, 150, 150, 4, 4, 64}, 16, 0}, Blocks{{1, 130, 200, 8, 2, 128}, 32, 0},
        Blocks{{1, 77, 77, 16, 1, 64}, 16, 0}}) {
    OpCase c =
        sparse_attention_case(b.block_size, qkv(b.heads, 33, 1.5), random_selection(b, 6, 31));
    c.arguments += " random selection";
    cases.push_back(std::move(c));
  }
  return cases;
}

OpCase block_means_case(const Shape& k, int64_t block_size, uint64_t seed) {
  return {fmt::format("block {}", block_size),
          [block_size](const auto& x) { return block_means(x[0], block_size); },
          {fixed(k, seed, 1.5)}};
}

// A partial last block; blocks of 3 keys.
std::vector<OpCase> block_means_cpu() {
  return {block_means_case({2, 10, 2, 3}, 4, 12), block_means_case({1, 9, 3, 2}, 3, 13)};
}

// No complete block; head_dim 5.
std::vector<OpCase> block_means_cuda() {
  return {block_means_case({2, 100, 2, 64}, 16, 6), block_means_case({1, 7, 2, 64}, 16, 6),
          block_means_case({2, 300, 4, 5}, 32, 6)};
}

// select_blocks on queries and the block means of keys.
OpCase select_blocks_case(const Blocks& b, uint64_t seed, double qk_scale) {
  const std::vector<Tensor> x = qkv(b.heads, seed, qk_scale, false);
  const int64_t k_len = b.heads.k_len, block_size = b.block_size, top_k = b.top_k;
  return {fmt::format("k_len {} block {} top_k {}", k_len, block_size, top_k),
          [=](const auto& in) { return select_blocks(in[0], in[1], k_len, block_size, top_k); },
          {x[0], block_means(x[1], block_size)},
          {DType::f32}};
}

// GQA groups 1, 2, 4; top_k 1, 2, 3; Tq < Tk and decoding; partial blocks.
std::vector<OpCase> select_blocks_cpu() {
  return {select_blocks_case({{2, 50, 50, 4, 2, 5}, 4, 3}, 21, 1.0),
          select_blocks_case({{2, 50, 50, 4, 1, 5}, 5, 2}, 21, 1.0),
          select_blocks_case({{2, 50, 50, 4, 4, 5}, 4, 2}, 21, 1.0),
          select_blocks_case({{2, 3, 37, 4, 2, 6}, 4, 3}, 21, 1.0),
          select_blocks_case({{2, 1, 37, 2, 1, 6}, 5, 3}, 21, 1.0),
          select_blocks_case({{1, 17, 17, 2, 1, 4}, 4, 1}, 21, 1.0)};
}

// f32 only: it scores in double on the GPU as on the CPU, so rows are equal. bf16 scores on
// tensor cores and may differ at near ties: test_gpu_sparse_attention.cpp checks it on these
// shapes with that allowance.
std::vector<OpCase> select_blocks_cuda() {
  std::vector<OpCase> cases;
  for (const Blocks& b : kCudaBlocks) cases.push_back(select_blocks_case(b, 7, 1.5));
  return cases;
}

constexpr Tolerance kOpTolerance{kF32Tolerance, kBf16Tolerance};
constexpr Tolerance kAttentionTolerance{kAttentionF32Tolerance, kAttentionBf16Tolerance};

constexpr OpEntry kEntries[] = {
    {Op::add, kOpTolerance, add_cpu, add_cuda},
    {Op::mul, kOpTolerance, mul_cpu, mul_cuda},
    {Op::scale, kOpTolerance, scale_cpu, scale_cuda},
    {Op::sum, kOpTolerance, sum_cpu, sum_cuda},
    {Op::mean, kOpTolerance, mean_cpu, mean_cuda},
    {Op::reshape, kOpTolerance, reshape_cases, reshape_cases},
    {Op::linear, kOpTolerance, linear_cpu, linear_cuda},
    {Op::matmul, kOpTolerance, matmul_cpu, matmul_cuda},
    {Op::embedding, kOpTolerance, embedding_cpu, embedding_cuda},
    {Op::rmsnorm, kOpTolerance, rmsnorm_cpu, rmsnorm_cuda},
    {Op::add_rmsnorm, kOpTolerance, add_rmsnorm_cpu, add_rmsnorm_cuda},
    {Op::rope, kOpTolerance, rope_cpu, rope_cuda},
    {Op::attention_projections, kOpTolerance, attention_projections_cpu,
     attention_projections_cuda},
    {Op::swiglu, kOpTolerance, swiglu_cpu, swiglu_cuda},
    {Op::swiglu_linear, kOpTolerance, swiglu_linear_cpu, swiglu_linear_cuda},
    {Op::head_gate, kOpTolerance, head_gate_cpu, head_gate_cuda},
    {Op::cross_entropy, kOpTolerance, cross_entropy_cpu, cross_entropy_cuda},
    {Op::smooth_l1, kOpTolerance, smooth_l1_cpu, smooth_l1_cuda},
    {Op::gated_smooth_l1, kOpTolerance, gated_smooth_l1_cpu, gated_smooth_l1_cuda},
    {Op::attention, kAttentionTolerance, attention_cpu, attention_cuda},
    {Op::sparse_attention, kAttentionTolerance, sparse_attention_cpu, sparse_attention_cuda},
    {Op::block_means, kExact, block_means_cpu, block_means_cuda},
    {Op::select_blocks, kExact, select_blocks_cpu, select_blocks_cuda},
};

static_assert(indexed_by_op(kEntries),
              "kEntries needs one entry per Op of ops/op_table.h, in the order of enum Op");

}  // namespace

const OpEntry& op_entry(Op op) { return kEntries[static_cast<size_t>(op)]; }

std::string case_name(Op op, const OpCase& c) {
  std::string name(op_info(op).name);
  for (const Tensor& t : c.inputs) name += fmt::format(" {}", t.shape().str());
  if (!c.arguments.empty()) name += fmt::format(" {}", c.arguments);
  return name;
}

}  // namespace ssa::test
