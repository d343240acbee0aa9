#include "train/settings.h"

#include "core/error.h"

namespace ssa {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

ConfigEntry integer(std::string section, std::string key, int64_t value, double min, double max,
                    std::string help) {
  return {std::move(section), std::move(key), ConfigType::integer, std::to_string(value),
          std::move(help), min, max};
}

ConfigEntry real(std::string section, std::string key, std::string value, double min,
                 double max, std::string help) {
  return {std::move(section), std::move(key), ConfigType::real, std::move(value),
          std::move(help), min, max};
}

ConfigEntry boolean(std::string section, std::string key, bool value, std::string help) {
  return {std::move(section), std::move(key), ConfigType::boolean, value ? "true" : "false",
          std::move(help)};
}

ConfigEntry text(std::string section, std::string key, std::string value, std::string help,
                 std::vector<std::string> choices = {}) {
  return {std::move(section), std::move(key), ConfigType::string,  std::move(value),
          std::move(help),    -kInf,          kInf,                std::move(choices)};
}

std::vector<ConfigEntry> model_entries() {
  return {
      integer("model", "vocab_size", 4096, 2, 1 << 30, "vocabulary size (tokenizer's or larger)"),
      integer("model", "d_model", 256, 1, kInf, "residual stream width"),
      integer("model", "n_layers", 4, 1, kInf, "decoder layers"),
      integer("model", "n_heads", 4, 1, kInf, "query heads"),
      integer("model", "n_kv_heads", 2, 1, kInf, "key/value heads (must divide n_heads)"),
      integer("model", "head_dim", 64, 2, kInf, "width of one head (even, for RoPE)"),
      integer("model", "ffn_dim", 704, 1, kInf, "SwiGLU hidden width"),
      integer("model", "max_seq_len", 256, 1, kInf, "longest training sequence"),
      real("model", "rope_theta", "500000", 1, kInf, "RoPE base"),
      real("model", "norm_eps", "1e-05", 0, 1, "RMSNorm epsilon"),
      boolean("model", "tie_embeddings", true, "share the embedding with the output head"),
  };
}

std::vector<ConfigEntry> attention_entries() {
  return {
      boolean("attention", "gate", true, "per-head sigmoid gate on the attention output"),
      text("attention", "mode", "full",
           "training attention: full, sparse (top-k blocks), or ssa (both, aligned)",
           {"full", "sparse", "ssa"}),
      integer("attention", "block_size", 16, 1, kInf, "sparse path: tokens per key block"),
      integer("attention", "top_k", 16, 1, kInf, "sparse path: blocks per query, its own included"),
      real("attention", "p_full", "0.5", 0, 1, "ssa: probability that a step passes on full attention"),
      real("attention", "align_weight", "10", 0, kInf, "ssa: alpha, the alignment loss weight"),
      real("attention", "align_beta", "1", 0, kInf, "ssa: SmoothL1 beta of the alignment loss"),
  };
}

std::vector<ConfigEntry> data_entries() {
  return {
      text("data", "train", "data/shards/train_*.bin", "glob of training shards"),
      text("data", "val", "data/shards/val_*.bin", "glob of validation shards (\"\": none)"),
      text("data", "tokenizer", "", "tokenizer file, to print samples as text (\"\": ids)"),
      integer("data", "seq_len", 256, 1, kInf, "tokens per training sequence (T)"),
  };
}

std::vector<ConfigEntry> optim_entries() {
  return {
      real("optim", "lr", "0.0003", 0, kInf, "peak learning rate"),
      real("optim", "min_lr", "3e-05", 0, kInf, "learning rate at the end of the cosine"),
      integer("optim", "warmup_steps", 100, 0, kInf, "linear warmup steps"),
      real("optim", "weight_decay", "0.1", 0, kInf, "AdamW decoupled decay (matrices only)"),
      real("optim", "beta1", "0.9", 0, 1, "AdamW beta1"),
      real("optim", "beta2", "0.95", 0, 1, "AdamW beta2"),
      real("optim", "eps", "1e-08", 0, kInf, "AdamW epsilon"),
      real("optim", "grad_clip", "1", 0, kInf, "global gradient-norm clip (0: none)"),
  };
}

std::vector<ConfigEntry> train_entries() {
  return {
      integer("train", "steps", 1000, 1, kInf, "optimizer steps (also the cosine's length)"),
      integer("train", "micro_batch", 8, 1, kInf, "sequences per micro-step (per rank)"),
      integer("train", "grad_accum", 1, 1, kInf, "micro-steps per optimizer step"),
      integer("train", "seed", 1337, 0, kInf, "seed of init, data order and sampling"),
      text("train", "device", "cpu", "where to train: cpu, or cuda (one GPU per rank)",
           {"cpu", "cuda"}),
      text("train", "dtype", "f32",
           "compute type: f32, f64 (cpu), or bf16 (cuda: bf16 compute over f32 master weights)",
           {"f32", "f64", "bf16"}),
      text("train", "out_dir", "out", "log.jsonl and checkpoints go here"),
      integer("train", "log_every", 1, 1, kInf, "steps between log lines"),
      integer("train", "val_every", 0, 0, kInf, "steps between validations (0: at the end only)"),
      integer("train", "val_batches", 8, 1, kInf, "micro-batches per validation"),
      integer("train", "sample_every", 0, 0, kInf, "steps between text samples (0: never)"),
      integer("train", "sample_tokens", 64, 1, kInf, "tokens per sample"),
      integer("train", "ckpt_every", 0, -1, kInf,
              "steps between checkpoints (0: at the end only; -1: none, for benchmarks)"),
      integer("train", "keep_last", 3, 0, kInf, "checkpoints kept (0: all)"),
      text("train", "on_nonfinite", "stop", "non-finite loss or gradient: stop, or skip the step",
           {"stop", "skip"}),
      integer("train", "zero", 0, 0, 1,
              "data parallel: 1 shards the AdamW state over the ranks (ZeRO-1), 0 does not"),
      real("train", "comm_timeout_s", "600", 0.001, kInf,
           "data parallel: a collective unfinished after this many seconds aborts the job"),
      real("train", "bucket_mb", "25", 0.001, 1024,
           "data parallel: MiB of gradients per all-reduce bucket"),
  };
}

// train.device and train.dtype into the run's device, master dtype and compute dtype.
void set_precision(const Config& c, RunSettings& r) {
  const std::string device = c.get_string("train.device"), dtype = c.get_string("train.dtype");
  r.device = device == "cuda" ? Device::cuda : Device::cpu;
  if (dtype == "f64" && r.device == Device::cuda)
    fail("train.dtype = f64 runs on train.device = cpu only (cuda trains in f32 or bf16)");
  if (dtype == "bf16" && r.device == Device::cpu)
    fail("train.dtype = bf16 (mixed precision) needs train.device = cuda; use f32 on cpu");
  r.dtype = dtype == "f64" ? DType::f64 : DType::f32;
  r.compute_dtype = dtype == "bf16" ? DType::bf16 : r.dtype;
}

}  // namespace

std::vector<ConfigEntry> train_config_schema() {
  std::vector<ConfigEntry> schema;
  for (auto part : {model_entries(), attention_entries(), data_entries(), optim_entries(),
                    train_entries()})
    schema.insert(schema.end(), part.begin(), part.end());
  return schema;
}

Config default_train_config() { return Config(train_config_schema()); }

ModelConfig model_config_from(const Config& c) {
  ModelConfig m;
  m.vocab_size = c.get_int("model.vocab_size");
  m.d_model = c.get_int("model.d_model");
  m.n_layers = c.get_int("model.n_layers");
  m.n_heads = c.get_int("model.n_heads");
  m.n_kv_heads = c.get_int("model.n_kv_heads");
  m.head_dim = c.get_int("model.head_dim");
  m.ffn_dim = c.get_int("model.ffn_dim");
  m.max_seq_len = c.get_int("model.max_seq_len");
  m.rope_theta = c.get_float("model.rope_theta");
  m.norm_eps = c.get_float("model.norm_eps");
  m.tie_embeddings = c.get_bool("model.tie_embeddings");
  m.attention_gate = c.get_bool("attention.gate");
  m.validate();
  return m;
}

TrainSettings train_settings_from(const Config& c) {
  TrainSettings s;
  s.model = model_config_from(c);
  s.adamw = {c.get_float("optim.beta1"), c.get_float("optim.beta2"), c.get_float("optim.eps"),
             c.get_float("optim.weight_decay")};
  s.schedule = {c.get_float("optim.lr"), c.get_float("optim.min_lr"),
                c.get_int("optim.warmup_steps"), c.get_int("train.steps")};
  TrainAttention& a = s.attention;
  const std::string mode = c.get_string("attention.mode");
  a.mode = mode == "full" ? TrainAttention::Mode::full
                          : mode == "sparse" ? TrainAttention::Mode::sparse
                                             : TrainAttention::Mode::ssa;
  a.block_size = c.get_int("attention.block_size");
  a.top_k = c.get_int("attention.top_k");
  a.p_full = c.get_float("attention.p_full");
  a.align_weight = c.get_float("attention.align_weight");
  a.align_beta = c.get_float("attention.align_beta");
  RunSettings& r = s.run;
  r.train_glob = c.get_string("data.train");
  r.val_glob = c.get_string("data.val");
  r.tokenizer_path = c.get_string("data.tokenizer");
  r.seq_len = c.get_int("data.seq_len");
  r.out_dir = c.get_string("train.out_dir");
  r.steps = c.get_int("train.steps");
  r.micro_batch = c.get_int("train.micro_batch");
  r.grad_accum = c.get_int("train.grad_accum");
  r.seed = static_cast<uint64_t>(c.get_int("train.seed"));
  r.grad_clip = c.get_float("optim.grad_clip");
  r.skip_nonfinite = c.get_string("train.on_nonfinite") == "skip";
  r.log_every = c.get_int("train.log_every");
  r.val_every = c.get_int("train.val_every");
  r.val_batches = c.get_int("train.val_batches");
  r.sample_every = c.get_int("train.sample_every");
  r.sample_tokens = c.get_int("train.sample_tokens");
  r.ckpt_every = c.get_int("train.ckpt_every");
  r.keep_last = c.get_int("train.keep_last");
  r.zero = c.get_int("train.zero") == 1;
  r.comm_timeout_s = c.get_float("train.comm_timeout_s");
  r.bucket_mb = c.get_float("train.bucket_mb");
  set_precision(c, r);
  if (r.seq_len > s.model.max_seq_len)
    fail("data.seq_len ({}) exceeds model.max_seq_len ({})", r.seq_len, s.model.max_seq_len);
  s.config_text = c.to_text();
  return s;
}

}  // namespace ssa
