// End to end: the binaries of build/bin on a tiny job — tokenise, train, stop, resume in a new
// process, evaluate, generate — and the errors a user meets.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "eval/jsonl.h"
#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& command) {
  std::string line = fmt::format("{}/{} 2>&1", SSA_BIN_DIR, command);
  std::FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A tiny job in a scratch directory: shards and a config file.
struct Job {
  TempDir dir;
  std::string config;
  explicit Job(const std::string& name) : dir(name), config(dir.file("tiny.conf")) {
    write_tiny_shards(dir);
    std::ofstream(config) << tiny_config_text(dir);
  }
  Result train(const std::string& extra) const {
    return run(fmt::format("ssa-train --config {} {}", config, extra));
  }
};

// The values of `key` in the log records of steps after `first_step`.
std::vector<JsonValue> logged(const std::string& log, const std::string& key, double first_step) {
  std::vector<JsonValue> values;
  for (const JsonRecord& record : read_jsonl(log))
    if (record.count("loss") && std::get<double>(record.at("step")) > first_step)
      values.push_back(record.at(key));
  return values;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a run stopped and resumed in a new process equals the uninterrupted run bit for bit") {
  Job job("e2e_resume");
  const std::string a = job.dir.file("a"), b = job.dir.file("b");
  Result straight = job.train(fmt::format(
      "--train.out_dir={} --train.ckpt_every=3 --train.keep_last=0 --train.sample_every=3", a));
  REQUIRE_MESSAGE(straight.exit_code == 0, straight.output);
  CHECK(contains(straight.output, "val loss"));
  Result resumed =
      job.train(fmt::format("--train.out_dir={} --resume {}/{}", b, a, checkpoint_file_name(3)));
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "resumed from"));
  for (const char* key : {"loss", "grad_norm", "lr"})
    CHECK(logged(a + "/log.jsonl", key, 3) == logged(b + "/log.jsonl", key, 3));
  Checkpoint end_a = read_checkpoint(a + "/" + checkpoint_file_name(6));
  Checkpoint end_b = read_checkpoint(b + "/" + checkpoint_file_name(6));
  REQUIRE(end_a.tensors.size() == end_b.tensors.size());
  for (size_t i = 0; i < end_a.tensors.size(); ++i) {
    CAPTURE(end_a.tensors[i].first);
    CHECK(end_a.tensors[i].second.to_vector() == end_b.tensors[i].second.to_vector());
  }
  for (const auto& [name, value] : end_a.integers) {
    CAPTURE(name);
    CHECK(value == end_b.integers.at(name));
  }
}

TEST_CASE("--resume auto continues from the newest checkpoint; a used out_dir is never overwritten") {
  Job job("e2e_auto");
  const std::string out = job.dir.file("out");
  REQUIRE(job.train("--train.steps=3").exit_code == 0);
  const std::string saved = file_bytes(out + "/" + checkpoint_file_name(3));
  Result again = job.train("--train.steps=3");
  CHECK(again.exit_code != 0);
  CHECK(contains(again.output, "already holds checkpoints"));
  CHECK(file_bytes(out + "/" + checkpoint_file_name(3)) == saved);
  Result resumed = job.train("--resume auto");
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "at step 3"));
  CHECK(std::filesystem::exists(out + "/" + checkpoint_file_name(6)));
}

TEST_CASE("config mistakes end with one message naming the key") {
  Job job("e2e_config");
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--model.d_modle=64", "d_model"},  // the valid keys are listed
           {"--model.d_model=sixty", "model.d_model"},
           {"--train.micro_batch=0", "train.micro_batch"},
           {"--optim.beta1=1.5", "optim.beta1"},
           {"--train.on_nonfinite=ignore", "stop, skip"},
           {"--nosuch.key=1", "nosuch"},
           {"--config /nonexistent.conf", "/nonexistent.conf"},
           {"--model.n_kv_heads=3", "n_kv_heads"},
       }) {
    CAPTURE(c.args);
    Result result = job.train(c.args);
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, c.message));
    CHECK(!std::filesystem::exists(job.dir.file("out")));
  }
}

TEST_CASE("bad shards and bad checkpoints are refused by name") {
  Job job("e2e_bad");
  REQUIRE(job.train("--train.steps=2").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(2));

  SUBCASE("a token id beyond the vocabulary") {
    Result result = job.train(fmt::format("--model.vocab_size=40 --train.out_dir={}",
                                          job.dir.file("small_vocab")));
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, "train_000000.bin"));
  }
  SUBCASE("a model-config mismatch on resume lists the differing fields") {
    Result result = job.train(fmt::format("--model.ffn_dim=64 --resume {}", ckpt));
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, "ffn_dim: 48 vs 64"));
  }
  SUBCASE("a truncated checkpoint") {
    std::string bytes = file_bytes(ckpt);
    std::ofstream(ckpt, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    Result result = job.train(fmt::format("--resume {}", ckpt));
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, ckpt));
  }
  SUBCASE("a bit flipped in a checkpoint's data") {
    std::string bytes = file_bytes(ckpt);
    bytes[bytes.size() / 2] ^= 0x10;
    std::ofstream(ckpt, std::ios::binary) << bytes;
    Result result = run(fmt::format("ssa-eval --checkpoint {}", ckpt));
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, ckpt));
  }
}

TEST_CASE("tokenise, train, evaluate and generate from text") {
  TempDir dir("e2e_text");
  {
    std::ofstream doc(dir.file("doc.txt"));
    for (int i = 0; i < 400; ++i) doc << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  REQUIRE(run(fmt::format("ssa-tokenize train --out {} --vocab-size 300 {}", dir.file("tok.bin"),
                          dir.file("doc.txt")))
              .exit_code == 0);
  for (const char* part : {"a", "b"}) {
    std::ofstream doc(dir.file(fmt::format("split_{}.txt", part)));
    for (int i = 0; i < 200; ++i) doc << "the lazy dog sleeps " << i << "\n";
  }
  Result encoded = run(fmt::format("ssa-tokenize encode --tokenizer {} --out-dir {} --val-fraction 0.5 {} {} {}",
                                   dir.file("tok.bin"), dir.file("shards"), dir.file("doc.txt"),
                                   dir.file("split_a.txt"), dir.file("split_b.txt")));
  REQUIRE_MESSAGE(encoded.exit_code == 0, encoded.output);
  Result trained = run(fmt::format(
      "ssa-train --model.vocab_size=300 --model.d_model=32 --model.n_layers=1 --model.n_heads=2 "
      "--model.n_kv_heads=1 --model.head_dim=16 --model.ffn_dim=64 --model.max_seq_len=32 "
      "--data.seq_len=32 --data.train='{0}/shards/train_*.bin' --data.val='{0}/shards/val_*.bin' "
      "--data.tokenizer={0}/tok.bin --train.steps=4 --train.micro_batch=2 --train.out_dir={0}/out",
      dir.file("")));
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  const std::string ckpt = dir.file("out/" + checkpoint_file_name(4));
  Result evaluated = run(fmt::format("ssa-eval --checkpoint {}", ckpt));
  REQUIRE_MESSAGE(evaluated.exit_code == 0, evaluated.output);
  CHECK(contains(evaluated.output, "perplexity"));
  JsonRecord json = read_jsonl(ckpt + ".eval.json").at(0);
  CHECK(std::get<double>(json.at("perplexity")) > 1);
  Result generated =
      run(fmt::format("ssa-generate --checkpoint {} --prompt 'the lazy' --tokens 8", ckpt));
  REQUIRE_MESSAGE(generated.exit_code == 0, generated.output);
  CHECK(generated.output.starts_with("the lazy"));
}

TEST_CASE("a checkpoint reads with standard HDF5 tools, by readable names") {
  Job job("e2e_h5");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(1));
  if (std::system("command -v h5dump >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: h5dump not installed (scripts/setup.sh installs hdf5-tools)");
    return;
  }
  Result listing{0, ""};
  std::FILE* pipe = popen(fmt::format("h5dump -n {} 2>&1", ckpt).c_str(), "r");
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) listing.output.append(buffer, n);
  CHECK(pclose(pipe) == 0);
  CHECK(contains(listing.output, "/params/layers.0.attn.wq"));
  CHECK(contains(listing.output, "/adam_m/embedding"));
}
