#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_data_util.h"
#include "train/settings.h"

using namespace ssa;
using namespace ssa::test;

namespace {

std::string full_name(const ConfigEntry& entry) { return entry.section + "." + entry.key; }

// A valid value of `entry` other than its default.
std::string other_value(const ConfigEntry& entry) {
  const std::string& value = entry.default_value;
  switch (entry.type) {
    case ConfigType::boolean:
      return value == "true" ? "false" : "true";
    case ConfigType::integer: {
      const int64_t v = std::stoll(value);
      return fmt::format("{}", static_cast<double>(v + 1) <= entry.max ? v + 1 : v - 1);
    }
    case ConfigType::real: {
      const double v = std::stod(value);
      return fmt::format("{}", std::isfinite(entry.max) ? (v + entry.max) / 2 : v + 1);
    }
    case ConfigType::string:
      for (const std::string& choice : entry.choices)
        if (choice != value) return choice;
      return value + "_other";
  }
  return value;
}

}  // namespace

TEST_CASE("settings: every key's default is what its member holds, before and after filling") {
  const TrainSettings defaults;
  const TrainSettings filled = train_settings_from(default_train_config());
  for (const ConfigBinding& binding : train_config_bindings()) {
    CAPTURE(full_name(binding.entry));
    CHECK(binding.value(defaults) == binding.entry.default_value);
    CHECK(binding.value(filled) == binding.entry.default_value);
  }
  // The members no key fills directly: the cosine's length and the master dtype.
  CHECK(filled.schedule.total_steps == defaults.schedule.total_steps);
  CHECK(filled.run.dtype == defaults.run.dtype);
}

TEST_CASE("settings: each key fills its own member and no other") {
  const std::vector<ConfigBinding>& bindings = train_config_bindings();
  CHECK(bindings.size() == default_train_config().schema().size());
  for (const ConfigBinding& changed : bindings) {
    const std::string value = other_value(changed.entry);
    CAPTURE(full_name(changed.entry));
    CAPTURE(value);
    Config config = default_train_config();
    config.set(full_name(changed.entry), value);
    TrainSettings settings;
    for (const ConfigBinding& binding : bindings) binding.fill(config, settings);
    std::vector<std::string> wrong;
    for (const ConfigBinding& binding : bindings) {
      const std::string& expected = &binding == &changed ? value : binding.entry.default_value;
      if (binding.value(settings) != expected) wrong.push_back(full_name(binding.entry));
    }
    CHECK_MESSAGE(wrong.empty(), fmt::format("members off their value: {}", fmt::join(wrong, ",")));
  }
}

TEST_CASE("settings: the keys that fill two members, and the rules across keys") {
  Config config = default_train_config();
  config.set("train.steps", "7");
  config.set("train.device", "cuda");
  config.set("train.dtype", "bf16");
  const TrainSettings mixed = train_settings_from(config);
  CHECK(mixed.run.steps == 7);
  CHECK(mixed.schedule.total_steps == 7);
  CHECK(mixed.run.compute_dtype == DType::bf16);
  CHECK(mixed.run.dtype == DType::f32);
  CHECK(mixed.config_text == config.to_text());

  auto error_with = [](const std::string& text) {
    Config bad = default_train_config();
    bad.load_text(text, "test");
    return error_of([&] { train_settings_from(bad); });
  };
  CHECK(contains_all(error_with("[train]\ndtype = bf16\n"),
                     {"train.dtype = bf16 (mixed precision) needs train.device = cuda"}));
  CHECK(contains_all(error_with("[train]\ndevice = cuda\ndtype = f64\n"),
                     {"train.dtype = f64 runs on train.device = cpu only"}));
  CHECK(contains_all(error_with("[model]\nn_kv_heads = 3\n"),
                     {"model.n_kv_heads (3) must divide model.n_heads (4)"}));
  CHECK(contains_all(error_with("[data]\nseq_len = 512\n"),
                     {"data.seq_len (512) exceeds model.max_seq_len (256)"}));
  CHECK(contains_all(error_of([] {
                       Config odd = default_train_config();
                       odd.set("model.head_dim", "3");
                       model_config_from(odd);
                     }),
                     {"model.head_dim must be even"}));
}
