// CUDA builds only: ssa-bench measures the GPU.
#ifdef SSA_HAVE_CUDA
// ssa-bench kernels: cuBLAS GEMMs at the configs' shapes and each fused kernel's bandwidth.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/command_line.h"
#include "cuda/adamw.h"
#include "cuda/cross_entropy.h"
#include "cuda/elementwise.h"
#include "cuda/embedding.h"
#include "cuda/gate.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/runtime/blas.h"
#include "cuda/runtime/runtime.h"
#include "cuda/smooth_l1.h"
#include "cuda/swiglu.h"
#include "eval/bench/bench.h"
#include "eval/bench/bench_formulas.h"
#include "eval/bench/bench_gpu.h"
#include "models/decoder.h"
#include "ops/rope.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    R"(The kernels of a training step at the shapes of each config (tokens = micro_batch · seq_len):
  gemm   each weight's forward (x·Wᵀ), input-gradient (dy·W) and weight-gradient (dyᵀ·x)
         product through cuBLAS in bf16, in TFLOP/s, and an 8192³ product: the ceiling;
  fused  each fused kernel forward and backward (RMSNorm, RoPE, SwiGLU, head gate,
         cross-entropy, embedding, SmoothL1 and its gated form, residual add, gradient
         accumulation, gradient norm, AdamW) in GB/s of its least traffic (inputs read once,
         outputs written once), and as a share of a 1 GiB device-to-device copy measured in
         the same run.
The L2 cache is evicted before each run, by a read (its lines are then clean).)";

constexpr double kBf16 = 2, kF32 = 4, kI32 = 4;

// A config's training step.
struct Shapes {
  std::string config;
  int64_t tokens, seq_len, d_model, heads, kv_heads, head_dim, ffn, vocab, params;
  double rope_theta;
};

Shapes shapes_of(const BenchConfig& c) {
  const ModelConfig& m = c.settings.model;
  const int64_t params = decoder_parameter_count(m);
  return {c.name,
          c.settings.run.micro_batch * c.settings.run.seq_len,
          c.settings.run.seq_len,
          m.d_model,
          m.n_heads,
          m.n_kv_heads,
          m.head_dim,
          m.ffn_dim,
          m.vocab_size,
          params,
          m.rope_theta};
}

// The distinct products [out, in] of a layer and the head, named by their weights.
struct WeightShape {
  std::string names;
  int64_t out, in;
};

std::vector<WeightShape> weight_shapes(const ModelConfig& model) {
  std::vector<WeightShape> shapes;
  auto add = [&shapes](const std::string& name, int64_t out, int64_t in) {
    for (WeightShape& shape : shapes)
      if (shape.out == out && shape.in == in) {
        shape.names += "," + name;
        return;
      }
    shapes.push_back({name, out, in});
  };
  // wq, wk, wv and wg are one stacked product (ops/attention_projections.h).
  const std::string first_layer = "layers.0.", projections = "layers.0.attn.w";
  int64_t stacked_rows = 0;
  for (const ParamSpec& spec : decoder_param_specs(model))
    if (spec.name.starts_with(projections) && spec.name != projections + "o")
      stacked_rows += spec.shape[0];
  add(model.attention_gate ? "attn.wq+wk+wv+wg" : "attn.wq+wk+wv", stacked_rows, model.d_model);
  for (const ParamSpec& spec : decoder_param_specs(model))
    if (spec.shape.rank == 2 && spec.name.starts_with(first_layer) &&
        (!spec.name.starts_with(projections) || spec.name == projections + "o"))
      add(spec.name.substr(first_layer.size()), spec.shape[0], spec.shape[1]);
  add("head", model.vocab_size, model.d_model);
  return shapes;
}

class KernelBench {
 public:
  KernelBench(const GpuTimer& timer, const BenchOutput& output) : timer_(timer), output_(output) {}

  void measure_copy(Rng& rng) {
    const int64_t n = int64_t{1} << 28;  // 1 GiB of f32
    Tensor src = random_tensor({n}, DType::f32, 1.0, rng);
    Tensor dst = Tensor::empty({n}, DType::f32, Device::cuda);
    const double bytes = 2 * kF32 * static_cast<double>(n);
    const double ms =
        timer_.median_ms([&] { cuda::copy(dst.raw(), true, src.raw(), true, src.nbytes()); });
    copy_gbps_ = bytes / ms / 1e6;
    fmt::print("device-to-device copy of 1 GiB: {:.3f} ms, {:.0f} GB/s (bytes read + written)\n\n",
               ms, copy_gbps_);
    output_.write(JsonLine()
                      .add("bench", std::string("op"))
                      .add("case", std::string("copy"))
                      .add("bytes", bytes)
                      .add("ms", ms)
                      .add("gbps", copy_gbps_));
  }

  void gemm(const std::string& config, const std::string& names, const std::string& pass,
            const cuda::GemmDims& dims, const Tensor& a, const Tensor& b, const Tensor& c) const {
    const double ms = timer_.median_ms(
        [&] { cuda::gemm_into(a.raw(), b.raw(), c.raw(), DType::bf16, c.dtype(), dims, false); });
    const double tflops = gemm_flops(dims.m, dims.n, dims.k) / ms / 1e9;
    const std::string mnk = fmt::format("{}x{}x{}", dims.m, dims.n, dims.k);
    fmt::print("{:<11} {:<22} {:<4} {:<20} {:>9.3f} {:>8.1f}\n", config, names, pass, mnk, ms,
               tflops);
    output_.write(JsonLine()
                      .add("bench", std::string("gemm"))
                      .add("case", fmt::format("{} {} {}", config, pass, mnk))
                      .add("names", names)
                      .add("m", dims.m)
                      .add("n", dims.n)
                      .add("k", dims.k)
                      .add("ms", ms)
                      .add("tflops", tflops));
  }

  void fused(const Shapes& s, const std::string& op, double bytes,
             const std::function<void()>& run) const {
    const double ms = timer_.median_ms(run);
    const double gbps = bytes / ms / 1e6;
    fmt::print("{:<11} {:<20} {:>10.1f} {:>9.3f} {:>8.0f} {:>7.0f}%\n", s.config, op, bytes / 1e6,
               ms, gbps, 100 * gbps / copy_gbps_);
    output_.write(JsonLine()
                      .add("bench", std::string("op"))
                      .add("case", fmt::format("{} {}", s.config, op))
                      .add("bytes", bytes)
                      .add("ms", ms)
                      .add("gbps", gbps)
                      .add("copy_share", gbps / copy_gbps_));
  }

 private:
  const GpuTimer& timer_;
  const BenchOutput& output_;
  double copy_gbps_ = 0;
};

void gemm_rows(const Shapes& s, const WeightShape& w, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens;
  Tensor x = random_tensor({n, w.in}, DType::bf16, 1.0, rng);
  Tensor weight = random_tensor({w.out, w.in}, DType::bf16, 0.02, rng);
  Tensor dy = random_tensor({n, w.out}, DType::bf16, 1.0, rng);
  Tensor y = Tensor::empty({n, w.out}, DType::bf16, Device::cuda);
  Tensor dx = Tensor::empty({n, w.in}, DType::bf16, Device::cuda);
  Tensor dw = Tensor::empty({w.out, w.in}, DType::bf16, Device::cuda);
  Tensor dw_f32 = Tensor::empty({w.out, w.in}, DType::f32, Device::cuda);
  bench.gemm(s.config, w.names, "fwd", {1, n, w.out, w.in, false, true}, x, weight, y);
  bench.gemm(s.config, w.names, "dx", {1, n, w.in, w.out, false, false}, dy, weight, dx);
  bench.gemm(s.config, w.names, "dw", {1, w.out, w.in, n, true, false}, dy, x, dw);
  // As a training step runs it: written in fp32 into the gradient buffer.
  bench.gemm(s.config, w.names, "dw32", {1, w.out, w.in, n, true, false}, dy, x, dw_f32);
}

void square_gemm_row(const KernelBench& bench, Rng& rng) {
  const int64_t n = 8192;
  Tensor a = random_tensor({n, n}, DType::bf16, 1.0, rng);
  Tensor b = random_tensor({n, n}, DType::bf16, 1.0, rng);
  Tensor c = Tensor::empty({n, n}, DType::bf16, Device::cuda);
  bench.gemm("square", "-", "fwd", {1, n, n, n, false, false}, a, b, c);
}

void rmsnorm_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens, d = s.d_model;
  Tensor x = random_tensor({n, d}, DType::bf16, 1.0, rng);
  Tensor w = random_tensor({d}, DType::bf16, 1.0, rng);
  Tensor dy = random_tensor({n, d}, DType::bf16, 1.0, rng);
  Tensor y = Tensor::empty({n, d}, DType::bf16, Device::cuda);
  Tensor dx = Tensor::empty({n, d}, DType::bf16, Device::cuda);
  Tensor dw = Tensor::empty({d}, DType::bf16, Device::cuda);
  Tensor rstd = Tensor::empty({n}, DType::f32, Device::cuda);
  float* r = rstd.data<float>();
  const double rows = static_cast<double>(n), row = static_cast<double>(d);
  bench.fused(s, "rmsnorm.fwd", 2 * rows * row * kBf16 + rows * kF32 + row * kBf16, [&] {
    cuda::rmsnorm_forward(x.raw(), w.raw(), y.raw(), r, DType::bf16, n, d, 1e-5);
  });
  bench.fused(s, "rmsnorm.bwd", 3 * rows * row * kBf16 + rows * kF32 + 2 * row * kBf16, [&] {
    cuda::rmsnorm_backward(x.raw(), w.raw(), dy.raw(), r, dx.raw(), dw.raw(), DType::bf16, n, d);
  });
  // The residual add fused in: reads x and the branch, writes the sum and its norm; the
  // backward also reads the sum's own gradient.
  Tensor branch = random_tensor({n, d}, DType::bf16, 1.0, rng);
  Tensor sum = Tensor::empty({n, d}, DType::bf16, Device::cuda);
  bench.fused(s, "add_rmsnorm.fwd", 4 * rows * row * kBf16 + rows * kF32 + row * kBf16, [&] {
    cuda::rmsnorm_forward(x.raw(), w.raw(), y.raw(), r, DType::bf16, n, d, 1e-5, branch.raw(),
                          sum.raw());
  });
  bench.fused(s, "add_rmsnorm.bwd", 4 * rows * row * kBf16 + rows * kF32 + 2 * row * kBf16, [&] {
    cuda::rmsnorm_backward(sum.raw(), w.raw(), dy.raw(), r, dx.raw(), dw.raw(), DType::bf16, n, d,
                           branch.raw());
  });
}

// On the queries, as a training step runs it: the forward reads them from their columns of the
// stacked projection [tokens, (heads + 2·kv_heads)·head_dim + heads] into [tokens, heads,
// head_dim]; the backward writes the inverse rotation back into those columns.
void rope_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t rows = s.tokens * s.heads, half = s.head_dim / 2, q_width = s.heads * s.head_dim;
  const int64_t stacked_width = q_width + 2 * s.kv_heads * s.head_dim + s.heads;
  Tensor stacked = random_tensor({s.tokens, stacked_width}, DType::bf16, 1.0, rng);
  Tensor q = Tensor::empty({s.tokens, q_width}, DType::bf16, Device::cuda);
  const RopeTable table = rope_table(s.seq_len, s.head_dim, s.rope_theta, DType::f32, Device::cuda);
  const double bytes = 2 * static_cast<double>(q.numel()) * kBf16 +
                       2 * static_cast<double>(table.cos.numel()) * kF32;
  auto rotate = [&](const Tensor& from, int64_t from_stride, const Tensor& to, int64_t to_stride,
                    float direction) {
    const cuda::RopeDims dims{rows, s.seq_len, s.heads, half, 0, from_stride, to_stride};
    return [&, dims, direction] {
      cuda::rope(from.raw(), to.raw(), DType::bf16, table.cos.raw(), table.sin.raw(), DType::f32,
                 dims, direction);
    };
  };
  bench.fused(s, "rope.fwd", bytes, rotate(stacked, stacked_width, q, q_width, 1));
  bench.fused(s, "rope.bwd", bytes, rotate(q, q_width, stacked, stacked_width, -1));
}

void swiglu_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens * s.ffn;
  Tensor a = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor b = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor g = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor out = Tensor::empty({n}, DType::bf16, Device::cuda);
  Tensor db = Tensor::empty({n}, DType::bf16, Device::cuda);
  const double elements = static_cast<double>(n);
  bench.fused(s, "swiglu.fwd", 3 * elements * kBf16,
              [&] { cuda::swiglu_forward(a.raw(), b.raw(), out.raw(), DType::bf16, n); });
  // As training runs it (swiglu_linear): da over g, and the product again.
  bench.fused(s, "swiglu.bwd", 6 * elements * kBf16, [&] {
    cuda::swiglu_backward(a.raw(), b.raw(), g.raw(), g.raw(), db.raw(), out.raw(), DType::bf16, n);
  });
}

void gate_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t rows = s.tokens * s.heads;
  Tensor o = random_tensor({rows, s.head_dim}, DType::bf16, 1.0, rng);
  Tensor logits = random_tensor({rows}, DType::bf16, 1.0, rng);
  Tensor dout = random_tensor({rows, s.head_dim}, DType::bf16, 1.0, rng);
  Tensor out = Tensor::empty({rows, s.head_dim}, DType::bf16, Device::cuda);
  Tensor d_logits = Tensor::empty({rows}, DType::bf16, Device::cuda);
  const double values = static_cast<double>(o.numel()), gates = static_cast<double>(rows);
  bench.fused(s, "head_gate.fwd", (2 * values + gates) * kBf16, [&] {
    cuda::head_gate_forward(o.raw(), logits.raw(), out.raw(), DType::bf16, rows, s.head_dim);
  });
  bench.fused(s, "head_gate.bwd", (3 * values + 2 * gates) * kBf16, [&] {
    cuda::head_gate_backward(o.raw(), logits.raw(), dout.raw(), out.raw(), d_logits.raw(),
                             DType::bf16, rows, s.head_dim);
  });
}

void cross_entropy_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens;
  Tensor logits = random_tensor({n, s.vocab}, DType::bf16, 1.0, rng);
  Tensor targets = random_ids({n}, s.vocab, rng);
  Tensor dlogits = Tensor::empty({n, s.vocab}, DType::bf16, Device::cuda);
  Tensor lse = Tensor::empty({n}, DType::f32, Device::cuda);
  Tensor loss = Tensor::scalar(0, DType::f32, Device::cuda);
  Tensor g = Tensor::scalar(1, DType::f32, Device::cuda);
  const cuda::CrossEntropyDims dims{n, s.vocab, -1};
  const double rows = static_cast<double>(n), values = static_cast<double>(logits.numel());
  bench.fused(s, "cross_entropy.fwd", values * kBf16 + rows * (kI32 + kF32), [&] {
    cuda::cross_entropy_forward(logits.raw(), targets.data<int32_t>(), DType::bf16, dims, rows,
                                lse.data<float>(), loss.raw(), DType::f32);
  });
  bench.fused(s, "cross_entropy.bwd", 2 * values * kBf16 + rows * (kI32 + kF32), [&] {
    cuda::cross_entropy_backward(logits.raw(), targets.data<int32_t>(), lse.data<float>(), g.raw(),
                                 DType::f32, rows, dlogits.raw(), DType::bf16, dims);
  });
}

// Ids drawn with probability ∝ 1 / (rank + 1), as words in text (Zipf's law): a few ids take
// a large share of the tokens.
Tensor zipf_ids(int64_t n, int64_t vocab, Rng& rng) {
  std::vector<double> cumulative(static_cast<size_t>(vocab));
  double total = 0;
  for (int64_t id = 0; id < vocab; ++id)
    cumulative[id] = total += 1.0 / static_cast<double>(id + 1);
  std::vector<double> ids(static_cast<size_t>(n));
  for (double& id : ids) {
    const auto at = std::lower_bound(cumulative.begin(), cumulative.end(), rng.uniform() * total);
    id = static_cast<double>(std::min<int64_t>(at - cumulative.begin(), vocab - 1));
  }
  return Tensor::from(ids, {n}, DType::i32).to(Device::cuda);
}

// The ids' distinct values (the table rows a backward touches).
double distinct_ids(const Tensor& ids, int64_t vocab) {
  const Tensor on_host = ids.to(Device::cpu);
  std::vector<bool> seen(static_cast<size_t>(vocab));
  double distinct = 0;
  for (int64_t t = 0; t < on_host.numel(); ++t)
    if (!seen[on_host.data<int32_t>()[t]]) {
      seen[on_host.data<int32_t>()[t]] = true;
      ++distinct;
    }
  return distinct;
}

// The backward, adding into an f32 gradient as a training step does, with uniform ids, and with
// Zipf ids (rows of the most frequent ids sum over thousands of tokens).
void embedding_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens, d = s.d_model;
  Tensor ids = random_ids({n}, s.vocab, rng);
  Tensor text_ids = zipf_ids(n, s.vocab, rng);
  Tensor table = random_tensor({s.vocab, d}, DType::bf16, 0.02, rng);
  Tensor dout = random_tensor({n, d}, DType::bf16, 1.0, rng);
  Tensor out = Tensor::empty({n, d}, DType::bf16, Device::cuda);
  Tensor grad = Tensor::zeros({s.vocab, d}, DType::f32, Device::cuda);
  const double rows = static_cast<double>(n), values = static_cast<double>(dout.numel());
  bench.fused(s, "embedding.fwd", 2 * values * kBf16 + rows * kI32, [&] {
    cuda::embedding_forward(ids.data<int32_t>(), table.raw(), out.raw(), DType::bf16, n, d);
  });
  for (const auto& [name, token_ids] :
       {std::pair{"embedding.bwd", &ids}, std::pair{"embedding.bwd.zipf", &text_ids}}) {
    const double touched = distinct_ids(*token_ids, s.vocab) * static_cast<double>(d);
    bench.fused(s, name, values * kBf16 + 2 * touched * kF32 + rows * kI32, [&] {
      cuda::embedding_backward(token_ids->data<int32_t>(), dout.raw(), DType::bf16,
                               grad.data<float>(), n, s.vocab, d);
    });
  }
}

// On gated attention outputs [tokens, heads, head_dim], as SSA's alignment loss.
void smooth_l1_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens * s.heads * s.head_dim;
  Tensor a = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor b = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor da = Tensor::empty({n}, DType::bf16, Device::cuda);
  Tensor db = Tensor::empty({n}, DType::bf16, Device::cuda);
  Tensor loss = Tensor::scalar(0, DType::f32, Device::cuda);
  Tensor g = Tensor::scalar(1, DType::f32, Device::cuda);
  const double elements = static_cast<double>(n);
  bench.fused(s, "smooth_l1.fwd", 2 * elements * kBf16, [&] {
    cuda::smooth_l1_forward(a.raw(), b.raw(), DType::bf16, n, 1.0, loss.raw(), DType::f32);
  });
  bench.fused(s, "smooth_l1.bwd", 4 * elements * kBf16, [&] {
    cuda::smooth_l1_backward(a.raw(), b.raw(), g.raw(), DType::f32, da.raw(), db.raw(), DType::bf16,
                             n, 1.0);
  });
  // As ssa mode runs it with the head gate: b gated by its row's logit, the gated side never
  // stored; the backward writes da (the first gradient a gets), d_b and the logits' gradient.
  const int64_t rows = s.tokens * s.heads;
  Tensor logits = random_tensor({rows}, DType::bf16, 1.0, rng);
  Tensor d_logits = Tensor::empty({rows}, DType::bf16, Device::cuda);
  const double gates = static_cast<double>(rows);
  bench.fused(s, "gated_smooth_l1.fwd", (2 * elements + gates) * kBf16, [&] {
    cuda::gated_smooth_l1_forward(a.raw(), b.raw(), logits.raw(), DType::bf16, rows, s.head_dim,
                                  1.0, loss.raw(), DType::f32);
  });
  bench.fused(s, "gated_smooth_l1.bwd", (4 * elements + 2 * gates) * kBf16, [&] {
    cuda::gated_smooth_l1_backward(a.raw(), b.raw(), logits.raw(), g.raw(), DType::f32, da.raw(),
                                   db.raw(), d_logits.raw(), DType::bf16, rows, s.head_dim, 1.0,
                                   false);
  });
}

// The residual stream's x + f(x).
void residual_row(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.tokens * s.d_model;
  Tensor a = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor b = random_tensor({n}, DType::bf16, 1.0, rng);
  Tensor out = Tensor::empty({n}, DType::bf16, Device::cuda);
  bench.fused(s, "add", 3 * static_cast<double>(n) * kBf16,
              [&] { cuda::add(a.raw(), b.raw(), out.raw(), DType::bf16, n); });
}

// Over every parameter: bf16 gradients accumulated into the f32 buffer, its norm, AdamW with
// the bf16 copy.
void optimizer_rows(const Shapes& s, const KernelBench& bench, Rng& rng) {
  const int64_t n = s.params;
  const double count = static_cast<double>(n);
  Tensor grad = random_tensor({n}, DType::f32, 1e-3, rng);
  {
    Tensor bf16_grad = random_tensor({n}, DType::bf16, 1e-3, rng);
    bench.fused(s, "grad_accumulate", count * (2 * kF32 + kBf16),
                [&] { cuda::accumulate(grad.raw(), DType::f32, bf16_grad.raw(), DType::bf16, n); });
  }
  bench.fused(s, "grad_norm", count * kF32, [&] { cuda::sum_squares(grad.data<float>(), n); });
  Tensor param = random_tensor({n}, DType::f32, 0.02, rng);
  Tensor m = random_tensor({n}, DType::f32, 1e-3, rng);
  Tensor v = Tensor::full({n}, 1e-6, DType::f32, Device::cuda);
  Tensor bf16_param = Tensor::empty({n}, DType::bf16, Device::cuda);
  Tensor decay_bits = Tensor::full({(n + 31) / 32}, -1, DType::i32, Device::cuda);
  const int64_t step = 10;
  // The gradient clipped (scaled) in the same pass, as in a step whose norm is over the limit.
  const cuda::AdamWStep update{
      3e-4, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, step), 1 - std::pow(0.95, step), 0.5};
  // Reads parameter, gradient and both moments; writes parameter, moments and the bf16 copy.
  bench.fused(s, "adamw", count * (7 * kF32 + kBf16) + count / 8, [&] {
    cuda::adamw_update(param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(),
                       reinterpret_cast<const uint32_t*>(decay_bits.raw()), n, update,
                       bf16_param.raw());
  });
}

void print_gemm_header() {
  fmt::print("{:<11} {:<22} {:<4} {:<20} {:>9} {:>8}\n", "config", "weights", "pass", "m x n x k",
             "ms", "TFLOP/s");
}

void print_fused_header() {
  fmt::print("\n{:<11} {:<20} {:>10} {:>9} {:>8} {:>8}\n", "config", "kernel", "MB moved", "ms",
             "GB/s", "of copy");
}

}  // namespace

int bench_kernels_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-bench kernels", kAbout);
  line.option("--configs", "LIST",
              "config files (default configs/bench-160m.conf,configs/bench-1b.conf)")
      .option("--json", "PATH", "append one JSON object per row");
  declare_timing_options(line).parse(args);
  std::vector<Shapes> shapes;
  std::vector<ModelConfig> models;
  for (const std::string& path : split_list(
           line.get("--configs", "configs/bench-160m.conf,configs/bench-1b.conf"), "--configs")) {
    BenchConfig config = load_bench_config(path);
    shapes.push_back(shapes_of(config));
    models.push_back(config.settings.model);
  }
  const TimingOptions timing = timing_options(line);
  require_gpu();
  const GpuTimer timer(timing);
  const BenchOutput output(line.get("--json", ""));
  fmt::print("device: {}\n", cuda::current_device_description());
  KernelBench bench(timer, output);
  Rng rng(20261123);
  bench.measure_copy(rng);
  print_gemm_header();
  square_gemm_row(bench, rng);
  for (size_t i = 0; i < shapes.size(); ++i)
    for (const WeightShape& w : weight_shapes(models[i])) gemm_rows(shapes[i], w, bench, rng);
  print_fused_header();
  int failures = 0;
  for (const Shapes& s : shapes)
    for (auto rows : {rmsnorm_rows, rope_rows, swiglu_rows, gate_rows, cross_entropy_rows,
                      embedding_rows, smooth_l1_rows, residual_row, optimizer_rows}) {
      try {
        rows(s, bench, rng);
      } catch (const std::exception& error) {  // report it, measure the others
        fmt::print("{:<11} failed: {}\n", s.config, error.what());
        ++failures;
      }
    }
  return failures == 0 ? 0 : 1;
}

}  // namespace ssa
#endif
