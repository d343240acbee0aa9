#pragma once
// The list of ops: every public function of ops/ with kernels or a backward of its own
// (block_sparse_attention, a composition of listed ops, is not one). tests/op_cases.cpp gives
// each op its test inputs, and the tests generate from them the float64 gradcheck of every op
// with a gradient and the CPU-vs-CUDA parity of every op; both tables are indexed by Op and
// checked against it at compile time, so an op added here without its test cases does not build.
#include <cstddef>
#include <iterator>
#include <string_view>

namespace ssa {

enum class Op {
  add,
  mul,
  scale,
  sum,
  mean,
  reshape,
  linear,
  matmul,
  embedding,
  rmsnorm,
  add_rmsnorm,
  rope,
  attention_projections,
  swiglu,
  swiglu_linear,
  head_gate,
  cross_entropy,
  smooth_l1,
  gated_smooth_l1,
  attention,
  sparse_attention,
  block_means,
  select_blocks,
  count
};

inline constexpr size_t kOpCount = static_cast<size_t>(Op::count);

struct OpInfo {
  Op op;
  std::string_view name;  // the function's name
  bool has_gradient;      // false: the op records no backward (block means, block indices)
};

inline constexpr OpInfo kOps[] = {
    {Op::add, "add", true},
    {Op::mul, "mul", true},
    {Op::scale, "scale", true},
    {Op::sum, "sum", true},
    {Op::mean, "mean", true},
    {Op::reshape, "reshape", true},
    {Op::linear, "linear", true},
    {Op::matmul, "matmul", true},
    {Op::embedding, "embedding", true},
    {Op::rmsnorm, "rmsnorm", true},
    {Op::add_rmsnorm, "add_rmsnorm", true},
    {Op::rope, "rope", true},
    {Op::attention_projections, "attention_projections", true},
    {Op::swiglu, "swiglu", true},
    {Op::swiglu_linear, "swiglu_linear", true},
    {Op::head_gate, "head_gate", true},
    {Op::cross_entropy, "cross_entropy", true},
    {Op::smooth_l1, "smooth_l1", true},
    {Op::gated_smooth_l1, "gated_smooth_l1", true},
    {Op::attention, "attention", true},
    {Op::sparse_attention, "sparse_attention", true},
    {Op::block_means, "block_means", false},
    {Op::select_blocks, "select_blocks", false},
};

// True when the table has one entry per Op, entry i for Op i.
template <typename Entry, size_t n>
constexpr bool indexed_by_op(const Entry (&table)[n]) {
  for (size_t i = 0; i < n; ++i)
    if (table[i].op != static_cast<Op>(i)) return false;
  return n == kOpCount;
}

static_assert(std::size(kOps) == kOpCount, "kOps needs one entry per Op");
static_assert(indexed_by_op(kOps), "kOps lists the ops in the order of enum Op");

constexpr const OpInfo& op_info(Op op) { return kOps[static_cast<size_t>(op)]; }

}  // namespace ssa
