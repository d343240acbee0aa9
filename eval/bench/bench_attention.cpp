// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
// ssa-bench attention: full and sparse attention and the SSA pair, forward + backward, TFLOP/s.
#include <fmt/format.h>

#include "autograd/autograd.h"
#include "core/command_line.h"
#include "cuda/runtime/runtime.h"
#include "eval/bench/bench.h"
#include "eval/bench/bench_formulas.h"
#include "eval/bench/bench_gpu.h"
#include "models/attention_options.h"
#include "ops/attention.h"
#include "ops/sparse_attention.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "Causal attention forward and backward in bf16 through the ops, at each sequence length:\n"
    "full (ops/attention.h, flash attention), sparse (ops/sparse_attention.h: block means and\n"
    "block selection, timed apart, then attention over the selected blocks) and ssa (the SSA\n"
    "pair: both paths from the same q, k, v, SSA's alignment loss between their outputs, and the\n"
    "backward of that loss through both). TFLOP/s count 4·d·H FLOPs per (query, key) pair a\n"
    "path scores forward and 2.5 times that backward (docs/PERF.md); the total's time includes\n"
    "the selection, whose scoring is not counted. A path that fails (no kernel, no memory) is\n"
    "reported as unavailable and the others go on.";

struct AttentionShape {
  int64_t batch, heads, kv_heads, head_dim, block_size, top_k;
};

// The measured paths: one of the two attention paths, or the SSA pair of both.
enum class BenchPath { full, sparse, ssa };

BenchPath parse_path(const std::string& name) {
  if (name == "full") return BenchPath::full;
  if (name == "sparse") return BenchPath::sparse;
  if (name == "ssa") return BenchPath::ssa;
  usage_error("--paths: unknown path '{}' (expected full, sparse or ssa)", name);
}

const char* bench_path_name(BenchPath path) {
  return path == BenchPath::full ? "full" : path == BenchPath::sparse ? "sparse" : "ssa";
}

struct Times {
  double select, forward, backward;  // select: the sparse path's block means and selection
};

// The sparse path's selection, the op's forward, then its node's backward (the gradients are
// returned, not accumulated into leaves), each timed. The SSA pair: the selection, both paths
// and the alignment loss forward, then backward from the loss into q, k and v.
Times time_attention(BenchPath path, int64_t seq_len, const AttentionShape& a,
                     const GpuTimer& timer) {
  Rng rng(static_cast<uint64_t>(seq_len));
  Tensor q = random_tensor({a.batch, seq_len, a.heads, a.head_dim}, DType::bf16, 1.0, rng);
  Tensor k = random_tensor({a.batch, seq_len, a.kv_heads, a.head_dim}, DType::bf16, 1.0, rng);
  Tensor v = random_tensor({a.batch, seq_len, a.kv_heads, a.head_dim}, DType::bf16, 1.0, rng);
  Tensor d_out = random_tensor(q.shape(), DType::bf16, 1.0, rng);
  for (const Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
  Tensor selection, out;
  std::vector<Tensor> grads;
  auto forward = [&] {
    if (path == BenchPath::full) out = attention(q, k, v);
    if (path == BenchPath::sparse) out = sparse_attention(q, k, v, selection, a.block_size);
    if (path == BenchPath::ssa)
      out = alignment_loss(attention(q, k, v), sparse_attention(q, k, v, selection, a.block_size),
                           1.0);
  };
  auto backward = [&] {
    if (path == BenchPath::ssa) {
      ssa::backward(out);
    } else {
      grads = out.grad_fn()->backward(d_out);
      grads.clear();
    }
    out = Tensor();
  };
  if (path == BenchPath::full) {
    const std::vector<double> ms = timer.median_phase_ms({forward, backward});
    return {0, ms[0], ms[1]};
  }
  const std::vector<double> ms = timer.median_phase_ms(
      {[&] {
         selection = select_blocks(q, block_means(k, a.block_size), seq_len, a.block_size, a.top_k);
       },
       forward, backward});
  return {ms[0], ms[1], ms[2]};
}

// (query, key) pairs one batch row scores: the SSA pair scores both paths'.
double scored_pairs(BenchPath path, int64_t seq_len, const AttentionShape& a) {
  const double full = causal_pairs(seq_len), sparse = sparse_pairs(seq_len, a.block_size, a.top_k);
  return path == BenchPath::full ? full : path == BenchPath::sparse ? sparse : full + sparse;
}

void attention_row(BenchPath path, int64_t seq_len, const AttentionShape& a, const GpuTimer& timer,
                   const BenchOutput& output) {
  const std::string name = bench_path_name(path);
  JsonLine json;
  json.add("bench", std::string("attention"))
      .add("case", fmt::format("{} T={} B={} Hkv={}", name, seq_len, a.batch, a.kv_heads));
  json.add("path", name).add("seq_len", seq_len).add("batch", a.batch).add("heads", a.heads);
  json.add("kv_heads", a.kv_heads).add("head_dim", a.head_dim);
  if (path != BenchPath::full) json.add("block_size", a.block_size).add("top_k", a.top_k);
  try {
    const Times t = time_attention(path, seq_len, a, timer);
    const double pairs = static_cast<double>(a.batch) * scored_pairs(path, seq_len, a);
    const double forward_flops = attention_forward_flops(pairs, a.heads, a.head_dim);
    const double backward_flops = attention_backward_flops(pairs, a.heads, a.head_dim);
    const double ms = t.select + t.forward + t.backward;
    const double fwd = forward_flops / t.forward / 1e9, bwd = backward_flops / t.backward / 1e9;
    const double total = (forward_flops + backward_flops) / ms / 1e9;
    fmt::print("{:<7} {:>6} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>9.1f} {:>9.1f} {:>9.1f}\n",
               name, seq_len, t.select, t.forward, t.backward, ms, fwd, bwd, total);
    json.add("pairs", pairs).add("select_ms", t.select).add("fwd_ms", t.forward);
    json.add("bwd_ms", t.backward).add("ms", ms).add("fwd_tflops", fwd).add("bwd_tflops", bwd);
    json.add("tflops", total);
  } catch (const std::exception& error) {
    fmt::print("{:<7} {:>6} unavailable: {}\n", name, seq_len, error.what());
    json.add("error", std::string(error.what()));
  }
  std::fflush(stdout);
  output.write(json);
}

}  // namespace

int bench_attention_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-bench attention", kAbout);
  line.option("--t", "LIST", "sequence lengths (default 4096,8192,16384,32768)")
      .option("--paths", "LIST", "full, sparse and/or ssa (default full,sparse,ssa)")
      .option("--heads", "N", "query heads (default 16)")
      .option("--kv-heads", "N", "key/value heads (default 1)")
      .option("--head-dim", "N", "(default 64)")
      .option("--batch", "N", "(default 1)")
      .option("--block-size", "N", "sparse: tokens per block (default 16)")
      .option("--top-k", "N", "sparse: blocks per query, its own included (default 16)")
      .option("--json", "PATH", "append one JSON object per row");
  declare_timing_options(line).parse(args);
  const std::vector<int64_t> lengths = line.get_int_list("--t", {4096, 8192, 16384, 32768}, 1);
  std::vector<BenchPath> paths;
  for (const std::string& name : split_list(line.get("--paths", "full,sparse,ssa"), "--paths"))
    paths.push_back(parse_path(name));
  const AttentionShape shape{
      line.get_size("--batch", 1, 1),       line.get_size("--heads", 16, 1),
      line.get_size("--kv-heads", 1, 1),    line.get_size("--head-dim", 64, 1),
      line.get_size("--block-size", 16, 1), line.get_size("--top-k", 16, 1)};
  if (shape.heads % shape.kv_heads != 0)
    usage_error("--kv-heads ({}) must divide --heads ({})", shape.kv_heads, shape.heads);
  const TimingOptions timing = timing_options(line);
  require_gpu();
  const GpuTimer timer(timing);
  const BenchOutput output(line.get("--json", ""));
  fmt::print(
      "device: {}\nbf16, batch {}, {} heads, {} KV heads, head_dim {}; sparse: blocks of "
      "{}, top-{}\n",
      cuda::current_device_description(), shape.batch, shape.heads, shape.kv_heads, shape.head_dim,
      shape.block_size, shape.top_k);
  fmt::print("{:<7} {:>6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}\n", "path", "T",
             "select ms", "fwd ms", "bwd ms", "total ms", "fwd TF/s", "bwd TF/s", "tot TF/s");
  for (BenchPath path : paths)
    for (int64_t seq_len : lengths) attention_row(path, seq_len, shape, timer, output);
  return 0;
}

}  // namespace ssa
#endif
