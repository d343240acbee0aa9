#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_data_util.h"
#include "train/config.h"

using namespace ssa;
using namespace ssa::test;

namespace {

std::vector<ConfigEntry> test_schema() {
  return {
      {.section = "model",
       .key = "d_model",
       .type = ConfigType::integer,
       .default_value = "256",
       .help = "width of the residual stream",
       .min = 1,
       .max = 8192},
      {.section = "model",
       .key = "rope_theta",
       .type = ConfigType::real,
       .default_value = "500000",
       .help = "RoPE base",
       .min = 1},
      {.section = "attention",
       .key = "mode",
       .type = ConfigType::string,
       .default_value = "ssa",
       .help = "which paths train",
       .choices = {"full", "sparse", "ssa"}},
      {.section = "train",
       .key = "lr",
       .type = ConfigType::real,
       .default_value = "3e-4",
       .help = "peak learning rate",
       .min = 0,
       .max = 1},
      {.section = "train",
       .key = "compile",
       .type = ConfigType::boolean,
       .default_value = "false",
       .help = "fuse kernels"},
      {.section = "train",
       .key = "out_dir",
       .type = ConfigType::string,
       .default_value = "runs/a",
       .help = "where logs and checkpoints go"},
      {.section = "model",
       .key = "n_layers",
       .type = ConfigType::integer,
       .default_value = "4",
       .help = "decoder layers",
       .min = 1,
       .max = 64},
  };
}

// A file holding `text`, removed at the end of the test.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text)
      : path((std::filesystem::temp_directory_path() /
              ("ssa_config_" + std::to_string(::getpid()) + ".cfg"))
                 .string()) {
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("config: defaults, typed getters, programming errors on misuse") {
  Config config(test_schema());
  CHECK(config.get_int("model.d_model") == 256);
  CHECK(config.get_float("model.rope_theta") == 500000.0);
  CHECK(config.get_float("train.lr") == 3e-4);
  CHECK(config.get_bool("train.compile") == false);
  CHECK(config.get_string("attention.mode") == "ssa");
  CHECK(contains_all(error_of([&] { config.get_int("model.nope"); }),
                     {"check failed", "model.nope"}));
  CHECK(contains_all(error_of([&] { config.get_float("model.d_model"); }),
                     {"check failed", "model.d_model", "integer", "float"}));
  auto bad_default = test_schema();
  bad_default[0].min = 300;  // the default 256 is now out of range
  CHECK(contains_all(error_of([&] { Config{bad_default}; }), {"check failed", "model.d_model"}));
}

TEST_CASE("config: file with comments, quotes and blank lines; overrides win") {
  Config config(test_schema());
  config.load_text(R"(# a run
[model]
d_model = 512   # wider
  n_layers=8

[attention]
mode = "full"    # quoted
[train]
out_dir = "runs/#1 \"x\" "
lr = 0.001
compile = true
)",
                   "run.cfg");
  CHECK(config.get_int("model.d_model") == 512);
  CHECK(config.get_int("model.n_layers") == 8);
  CHECK(config.get_string("attention.mode") == "full");
  CHECK(config.get_string("train.out_dir") == "runs/#1 \"x\" ");
  CHECK(config.get_float("train.lr") == 0.001);
  CHECK(config.get_bool("train.compile"));

  const char* argv[] = {"ssa-train", "--model.d_model=1024", "--resume",
                        "ckpt.h5",   "--train.out_dir=a b",  "--help"};
  std::vector<std::string> rest = config.apply_overrides(6, argv);
  CHECK(rest == std::vector<std::string>{"--resume", "ckpt.h5", "--help"});
  CHECK(config.get_int("model.d_model") == 1024);
  CHECK(config.get_string("train.out_dir") == "a b");
  config.set("model.n_layers", "2");
  CHECK(config.get_int("model.n_layers") == 2);
}

TEST_CASE("config: a UTF-8 byte order mark before the first line is skipped") {
  Config config(test_schema());
  config.load_text("\xEF\xBB\xBF[model]\nd_model = 128\n", "bom.conf");
  CHECK(config.get_int("model.d_model") == 128);
}

TEST_CASE("config: load_file reads a file and names it in errors") {
  TempFile file("[model]\nd_model = 128\n[train]\nlr = 2\n");
  Config config(test_schema());
  std::string message = error_of([&] { config.load_file(file.path); });
  CHECK(contains_all(message, {file.path.c_str(), ":4", "train.lr", "'2'", "float in [0, 1]"}));
  CHECK(config.get_int("model.d_model") == 256);  // a file with an error changes nothing
  std::ofstream(file.path) << "[model]\nd_model = 128\n";
  config.load_file(file.path);
  CHECK(config.get_int("model.d_model") == 128);
  CHECK(contains_all(error_of([&] { config.load_file("/nonexistent/x.cfg"); }),
                     {"/nonexistent/x.cfg"}));
  const std::string directory = std::filesystem::path(file.path).parent_path().string();
  CHECK(contains_all(error_of([&] { config.load_file(directory); }),
                     {"config file", directory, "is not a regular file"}));
  CHECK(contains_all(error_of([&] { config.load_file(""); }), {"cannot open config file ''"}));
}

TEST_CASE("config: every user error names the key, the value and what is allowed") {
  Config config(test_schema());
  auto load = [&](const std::string& text) {
    return error_of([&] { config.load_text(text, "f.cfg"); });
  };
  CHECK(contains_all(load("[modle]\n"),
                     {"f.cfg:1", "[modle]", "valid sections: model, attention, train"}));
  CHECK(contains_all(load("[model]\nwidth = 3\n"),
                     {"f.cfg:2", "model.width", "keys of [model]: d_model, rope_theta, n_layers"}));
  CHECK(contains_all(load("[model]\nd_model = abc\n"),
                     {"model.d_model", "'abc'", "integer in [1, 8192]"}));
  CHECK(contains_all(load("[model]\nd_model = 9000\n"), {"model.d_model", "'9000'", "[1, 8192]"}));
  CHECK(contains_all(load("[model]\nd_model = 1.5\n"), {"model.d_model", "'1.5'", "integer"}));
  CHECK(contains_all(load("[model]\nd_model = 99999999999999999999\n"),
                     {"model.d_model", "integer in [1, 8192] (it is beyond the 64-bit range)"}));
  CHECK(!contains_all(load("[model]\nd_model = 9000\n"), {"64-bit"}));
  CHECK(contains_all(load("[model]\nrope_theta = 0.5\n"), {"model.rope_theta", "float >= 1"}));
  CHECK(contains_all(load("[train]\ncompile = maybe\n"), {"train.compile", "'maybe'", "bool"}));
  CHECK(contains_all(load("[train]\nlr = nan\n"), {"train.lr", "'nan'", "float in [0, 1]"}));
  CHECK(contains_all(load("[attention]\nmode = dense\n"),
                     {"attention.mode", "'dense'", "one of: full, sparse, ssa"}));
  CHECK(contains_all(load("d_model = 3\n"), {"f.cfg:1", "before any [section]"}));
  CHECK(contains_all(load("[model]\nd_model 3\n"), {"f.cfg:2", "key = value"}));
  CHECK(contains_all(load("[model\n"), {"f.cfg:1", "[section]"}));
  CHECK(contains_all(load("[train]\nout_dir = \"abc\n"), {"f.cfg:2", "no closing quote"}));
  CHECK(contains_all(load("[train]\nout_dir = \"a\" b\n"), {"f.cfg:2", "after the closing quote"}));
  CHECK(contains_all(load("[model]\nd_model = 8\nd_model = 16\n"),
                     {"f.cfg:3", "model.d_model", "twice", "line 2"}));

  CHECK(contains_all(error_of([&] { config.apply_override("--model.d_model=x"); }),
                     {"--model.d_model=x", "model.d_model", "'x'", "integer in [1, 8192]"}));
  CHECK(contains_all(error_of([&] { config.apply_override("--model.depth=3"); }),
                     {"model.depth", "valid keys of [model]"}));
  CHECK(contains_all(error_of([&] { config.apply_override("--optim.lr=3"); }),
                     {"[optim]", "valid sections: model, attention, train"}));
  CHECK(contains_all(error_of([&] { config.apply_override("--model.d_model"); }),
                     {"--section.key=value"}));
  CHECK(contains_all(error_of([&] { config.set("train.lr", "-1"); }),
                     {"train.lr", "'-1'", "[0, 1]"}));
  CHECK(config.get_int("model.d_model") == 256);  // nothing above changed a value
}

TEST_CASE("config: to_text round trip") {
  Config config(test_schema());
  config.set("train.lr", "0.1");
  config.set("model.rope_theta", "12345.678901234567");
  config.set("train.out_dir", "we \"quote\" \\ and # hash ");
  config.set("train.compile", "true");
  std::string text = config.to_text();
  CHECK(text.find("[model]\nd_model = 256\nrope_theta = 12345.678901234567\nn_layers = 4\n\n"
                  "[attention]\nmode = \"ssa\"\n") == 0);
  Config reread(test_schema());
  reread.load_text(text, "text");
  CHECK(reread == config);
  CHECK(reread.get_string("train.out_dir") == "we \"quote\" \\ and # hash ");
  CHECK(reread.to_text() == text);
  CHECK(!(Config(test_schema()) == config));
}

TEST_CASE("config: help lists every key with type, default, range and meaning") {
  std::string help = Config(test_schema()).help_text();
  for (const ConfigEntry& entry : test_schema())
    CHECK(contains_all(help, {"--" + entry.section + "." + entry.key + " ", entry.help}));
  CHECK(contains_all(help, {"[model]", "--model.d_model (integer in [1, 8192]; default 256)",
                            "--train.lr (float in [0, 1]; default 0.0003)",
                            "--attention.mode (string, one of: full, sparse, ssa; default \"ssa\")",
                            "--train.compile (bool; default false)"}));
  CHECK(help.find("[model]") < help.find("[attention]"));
  CHECK(help.find("--model.n_layers") < help.find("[attention]"));
}
