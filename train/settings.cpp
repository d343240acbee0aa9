#include "train/settings.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/error.h"

namespace ssa {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Range {
  double min = -kInf;
  double max = kInf;
};

Range at_least(double min) { return {min, kInf}; }
// Sizes (widths, counts, lengths): at most 2^30, so that their products cannot wrap.
Range size_at_least(double min) { return {min, double{1 << 30}}; }

// The config type of a member's type.
template <typename T>
constexpr ConfigType config_type() {
  if constexpr (std::is_same_v<T, bool>)
    return ConfigType::boolean;
  else if constexpr (std::is_integral_v<T>)
    return ConfigType::integer;
  else if constexpr (std::is_floating_point_v<T>)
    return ConfigType::real;
  else
    return ConfigType::string;
}

// The value of the key `name` as a member of type T.
template <typename T>
T read(const Config& config, const std::string& name) {
  if constexpr (std::is_same_v<T, bool>)
    return config.get_bool(name);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(config.get_int(name));
  else if constexpr (std::is_floating_point_v<T>)
    return config.get_float(name);
  else
    return config.get_string(name);
}

// The names a string key takes and the member values they stand for.
template <typename T>
using Names = std::vector<std::pair<std::string, T>>;

template <typename T>
const std::string& name_of(const Names<T>& names, const T& value) {
  auto found = std::find_if(names.begin(), names.end(),
                            [&](const auto& entry) { return entry.second == value; });
  SSA_CHECK(found != names.end(), "a config member holds a value its key has no name for");
  return found->first;
}

// The value a choice stands for (the Config has checked that it is one of the names).
template <typename T>
const T& named(const Names<T>& names, const std::string& name) {
  auto found = std::find_if(names.begin(), names.end(),
                            [&](const auto& entry) { return entry.first == name; });
  SSA_CHECK(found != names.end(), "config value '{}' names no member value", name);
  return found->second;
}

// `member` of the part `part` of a TrainSettings (Owner: Part or a base of it).
template <typename Part, typename Owner, typename T>
struct Member {
  static_assert(std::is_base_of_v<Owner, Part>);
  Part TrainSettings::*part;
  T Owner::*member;
  T& of(TrainSettings& settings) const { return (settings.*part).*member; }
  const T& of(const TrainSettings& settings) const { return (settings.*part).*member; }
};

// Binds `entry` to `member`: `text` writes the member's value as the key's, `parse` reads the
// key's value from a Config. The default is the member's value in a default TrainSettings.
template <typename M, typename Text, typename Parse>
ConfigBinding make_binding(ConfigEntry entry, M member, Text text, Parse parse) {
  entry.default_value = text(member.of(TrainSettings{}));
  const std::string name = entry.section + "." + entry.key;
  return {std::move(entry),
          [member, parse, name](const Config& config, TrainSettings& settings) {
            member.of(settings) = parse(config, name);
          },
          [member, text](const TrainSettings& settings) { return text(member.of(settings)); }};
}

// The keys of one config section that fill members of one part of TrainSettings.
template <typename Part>
struct Section {
  std::string name;
  Part TrainSettings::*part;

  // A key of the member's type: integer, float, bool or string.
  template <typename Owner, typename T>
  ConfigBinding key(std::string key, T Owner::*member, Range range, std::string help) const {
    ConfigEntry entry{name,      std::move(key), config_type<T>(), "", std::move(help),
                      range.min, range.max};
    return make_binding(
        std::move(entry), Member<Part, Owner, T>{part, member},
        [](const T& value) { return fmt::format("{}", value); }, read<T>);
  }
  template <typename Owner, typename T>
  ConfigBinding key(std::string key, T Owner::*member, std::string help) const {
    return this->key(std::move(key), member, Range{}, std::move(help));
  }

  // A string key, one of `names`, each standing for a value of the member.
  template <typename Owner, typename T>
  ConfigBinding choice(std::string key, T Owner::*member, Names<T> names, std::string help) const {
    ConfigEntry entry{name, std::move(key), ConfigType::string, "", std::move(help)};
    for (const auto& [choice, value] : names) entry.choices.push_back(choice);
    return make_binding(
        std::move(entry), Member<Part, Owner, T>{part, member},
        [names](const T& value) { return name_of(names, value); },
        [names](const Config& config, const std::string& full_name) {
          return named(names, config.get_string(full_name));
        });
  }
};

std::vector<ConfigBinding> bindings() {
  using M = ModelConfig;
  using A = TrainAttention;
  using R = RunSettings;
  const Section<M> model{"model", &TrainSettings::model};
  const Section<M> gate{"attention", &TrainSettings::model};  // the gate adds parameters
  const Section<A> attention{"attention", &TrainSettings::attention};
  const Section<R> data{"data", &TrainSettings::run};
  const Section<ScheduleConfig> schedule{"optim", &TrainSettings::schedule};
  const Section<AdamWConfig> adamw{"optim", &TrainSettings::adamw};
  const Section<R> clip{"optim", &TrainSettings::run};
  const Section<R> train{"train", &TrainSettings::run};
  return {
      model.key("vocab_size", &M::vocab_size, {2, 1 << 30},
                "vocabulary size (tokenizer's or larger)"),
      model.key("d_model", &M::d_model, size_at_least(1), "residual stream width"),
      model.key("n_layers", &M::n_layers, size_at_least(1), "decoder layers"),
      model.key("n_heads", &M::n_heads, size_at_least(1), "query heads"),
      model.key("n_kv_heads", &M::n_kv_heads, size_at_least(1),
                "key/value heads (must divide n_heads)"),
      model.key("head_dim", &M::head_dim, size_at_least(2), "width of one head (even, for RoPE)"),
      model.key("ffn_dim", &M::ffn_dim, size_at_least(1), "SwiGLU hidden width"),
      model.key("max_seq_len", &M::max_seq_len, size_at_least(1), "longest training sequence"),
      model.key("rope_theta", &M::rope_theta, at_least(1), "RoPE base"),
      model.key("norm_eps", &M::norm_eps, {0, 1}, "RMSNorm epsilon"),
      model.key("tie_embeddings", &M::tie_embeddings, "share the embedding with the output head"),

      gate.key("gate", &M::attention_gate, "per-head sigmoid gate on the attention output"),
      attention.choice(
          "mode", &A::mode,
          {{"full", A::Mode::full}, {"sparse", A::Mode::sparse}, {"ssa", A::Mode::ssa}},
          "training attention: full, sparse (top-k blocks), or ssa (both, aligned)"),
      attention.key("block_size", &A::block_size, size_at_least(1),
                    "sparse path: tokens per key block"),
      attention.key("top_k", &A::top_k, size_at_least(1),
                    "sparse path: blocks per query, its own included"),
      attention.key("p_full", &A::p_full, {0, 1},
                    "ssa: probability that a step passes on full attention"),
      attention.key("align_weight", &A::align_weight, at_least(0),
                    "ssa: alpha, the alignment loss weight"),
      attention.key("align_beta", &A::align_beta, at_least(0),
                    "ssa: SmoothL1 beta of the alignment loss"),

      data.key("train", &R::train_glob, "glob of training shards"),
      data.key("val", &R::val_glob, "glob of validation shards (\"\": none)"),
      data.key("tokenizer", &R::tokenizer_path,
               "tokenizer file, to print samples as text (\"\": ids)"),
      data.key("seq_len", &R::seq_len, size_at_least(1), "tokens per training sequence (T)"),

      schedule.key("lr", &ScheduleConfig::lr, at_least(0), "peak learning rate"),
      schedule.key("min_lr", &ScheduleConfig::min_lr, at_least(0),
                   "learning rate at the end of the cosine"),
      schedule.key("warmup_steps", &ScheduleConfig::warmup_steps, at_least(0),
                   "linear warmup steps"),
      adamw.key("weight_decay", &AdamWConfig::weight_decay, at_least(0),
                "AdamW decoupled decay (matrices only)"),
      adamw.key("beta1", &AdamWConfig::beta1, {0, 1}, "AdamW beta1 (below 1)"),
      adamw.key("beta2", &AdamWConfig::beta2, {0, 1}, "AdamW beta2 (below 1)"),
      adamw.key("eps", &AdamWConfig::eps, at_least(0), "AdamW epsilon (above 0)"),
      clip.key("grad_clip", &R::grad_clip, at_least(0), "global gradient-norm clip (0: none)"),

      train.key("steps", &R::steps, at_least(1), "optimizer steps (also the cosine's length)"),
      train.key("micro_batch", &R::micro_batch, at_least(1), "sequences per micro-step (per rank)"),
      train.key("grad_accum", &R::grad_accum, size_at_least(1), "micro-steps per optimizer step"),
      train.key("seed", &R::seed, at_least(0), "seed of init, data order and sampling"),
      train.choice("device", &R::device, {{"cpu", Device::cpu}, {"cuda", Device::cuda}},
                   "where to train: cpu, or cuda (one GPU per rank)"),
      train.choice(
          "dtype", &R::compute_dtype,
          {{"f32", DType::f32}, {"f64", DType::f64}, {"bf16", DType::bf16}},
          "compute type: f32, f64 (cpu), or bf16 (cuda: bf16 compute over f32 master weights)"),
      train.key("out_dir", &R::out_dir, "log.jsonl and checkpoints go here"),
      train.key("log_every", &R::log_every, at_least(1), "steps between log lines"),
      train.key("val_every", &R::val_every, at_least(0),
                "steps between validations (0: at the end only)"),
      train.key("val_batches", &R::val_batches, size_at_least(1), "micro-batches per validation"),
      train.key("sample_every", &R::sample_every, at_least(0),
                "steps between text samples (0: never)"),
      train.key("sample_tokens", &R::sample_tokens, size_at_least(1), "tokens per sample"),
      train.key("ckpt_every", &R::ckpt_every, at_least(-1),
                "steps between checkpoints (0: at the end only; -1: none, for benchmarks)"),
      train.key("keep_last", &R::keep_last, at_least(0), "checkpoints kept (0: all)"),
      train.choice(
          "recompute", &R::recompute_ffn, {{"none", false}, {"ffn", true}},
          "none, or ffn: each layer's feed-forward block runs again in backward (less memory)"),
      train.choice("on_nonfinite", &R::skip_nonfinite, {{"stop", false}, {"skip", true}},
                   "non-finite loss or gradient: stop, or skip the step"),
      train.key("zero", &R::zero, {0, 1},
                "data parallel: 1 shards the AdamW state over the ranks (ZeRO-1), 0 does not"),
      train.key("comm_timeout_s", &R::comm_timeout_s, at_least(0.001),
                "data parallel: a collective unfinished after this many seconds aborts the job "
                "(it must cover rank 0 writing a checkpoint, which the others wait for)"),
      train.key("bucket_mb", &R::bucket_mb, {0.001, 1024},
                "data parallel: MiB of gradients per all-reduce bucket"),
  };
}

// Every bound member from `config`; the others at their defaults.
TrainSettings filled_from(const Config& config) {
  TrainSettings settings;
  for (const ConfigBinding& binding : train_config_bindings()) binding.fill(config, settings);
  return settings;
}

// The master dtype from train.dtype (the compute dtype) and train.device.
void set_master_dtype(RunSettings& r) {
  if (r.compute_dtype == DType::f64 && r.device == Device::cuda)
    fail("train.dtype = f64 runs on train.device = cpu only (cuda trains in f32 or bf16)");
  if (r.compute_dtype == DType::bf16 && r.device == Device::cpu)
    fail("train.dtype = bf16 (mixed precision) needs train.device = cuda; use f32 on cpu");
  r.dtype = r.compute_dtype == DType::bf16 ? DType::f32 : r.compute_dtype;
}

// The ends the schema's closed ranges cannot exclude: AdamW divides by 1 − beta^t, and by
// sqrt(v) + eps where a parameter gets no gradient (v = 0).
void check_adamw(const AdamWConfig& a) {
  if (a.beta1 >= 1)
    fail("optim.beta1 = {} must be below 1 (AdamW divides by 1 - beta1^t)", a.beta1);
  if (a.beta2 >= 1)
    fail("optim.beta2 = {} must be below 1 (AdamW divides by 1 - beta2^t)", a.beta2);
  if (a.eps <= 0)
    fail(
        "optim.eps = {} must be above 0 (AdamW divides by sqrt(v) + eps, and v is 0 where a "
        "parameter gets no gradient)",
        a.eps);
}

}  // namespace

const std::vector<ConfigBinding>& train_config_bindings() {
  static const std::vector<ConfigBinding> all = bindings();
  return all;
}

Config default_train_config() {
  std::vector<ConfigEntry> schema;
  for (const ConfigBinding& binding : train_config_bindings()) schema.push_back(binding.entry);
  return Config(std::move(schema));
}

ModelConfig model_config_from(const Config& config) {
  ModelConfig model = filled_from(config).model;
  model.validate();
  return model;
}

TrainSettings train_settings_from(const Config& config) {
  TrainSettings s = filled_from(config);
  s.model.validate();
  set_master_dtype(s.run);
  check_adamw(s.adamw);
  if (s.run.seq_len > s.model.max_seq_len)
    fail("data.seq_len ({}) exceeds model.max_seq_len ({})", s.run.seq_len, s.model.max_seq_len);
  s.schedule.total_steps = s.run.steps;
  s.config_text = config.to_text();
  return s;
}

}  // namespace ssa
