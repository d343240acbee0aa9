// End to end: what ssa-train does when things go wrong. A mistake in the run's files ends it
// before step 1; a validation that fails later writes a checkpoint first; a tokenizer smaller
// than the vocabulary only limits what samples draw; SIGTERM or Ctrl-C stop after the current
// step with a checkpoint and the command that resumes; memory that runs out names what to lower.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "data/tokenizer.h"
#include "e2e_util.h"
#include "eval/jsonl.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// The line of `output` that starts with "ssa-train: error: ", or "" when there is none.
std::string error_line(const std::string& output) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("ssa-train: error: ")) return line;
  return "";
}

// The losses (as logged) of the steps after `first_step`.
std::vector<JsonValue> losses_after(const std::string& out_dir, double first_step) {
  std::vector<JsonValue> losses;
  for (const JsonRecord& record : read_jsonl(out_dir + "/log.jsonl"))
    if (record.count("loss") && std::get<double>(record.at("step")) > first_step)
      losses.push_back(record.at("loss"));
  return losses;
}

// `pattern`'s first group in `text`, which must match.
std::string captured(const std::string& text, const std::string& pattern) {
  std::smatch match;
  REQUIRE_MESSAGE(std::regex_search(text, match, std::regex(pattern)), text);
  return match[1].str();
}

// Writes merges-free tokenizer files: 257 ids (the bytes and <|endoftext|>).
std::string byte_tokenizer(const TempDir& dir) {
  const std::string path = dir.file("bytes.tok");
  Tokenizer().save(path);
  return path;
}

// Shell `command` run in the foreground (the command as printed, a program path first).
Result shell(const std::string& command) {
  std::FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace

TEST_CASE("a mistake in the run's files ends it before step 1 with one line naming the key") {
  TinyJob job("e2e_startup");
  const std::string out = job.dir.file("out");
  std::ofstream(job.dir.file("not_a_dir")) << "a file";
  std::vector<uint32_t> beyond_vocab(100, kTinyVocab);  // ids the vocabulary does not have
  write_shard(job.dir.file("bad_val_000000.bin"), beyond_vocab);
  std::vector<uint32_t> beyond_bytes(1000, 300);  // ids a byte tokenizer (257 ids) cannot decode
  write_shard(job.dir.file("wide_000000.bin"), beyond_bytes);
  // The tiny config without its data.val line: the default pattern, which matches nothing here.
  std::string no_val = tiny_config_text(job.dir);
  no_val.erase(no_val.find("val = "),
               no_val.find('\n', no_val.find("val = ")) + 1 - no_val.find("val = "));
  std::ofstream(job.dir.file("no_val.conf")) << no_val;
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--data.train=" + job.dir.file("missing_*.bin"),
            "data.train: no files match the pattern '" + job.dir.file("missing_*.bin") + "'"},
           {"--data.val=" + job.dir.file("missing_*.bin"),
            "data.val: no files match the pattern '" + job.dir.file("missing_*.bin") +
                "' (validation runs after the last step; set data.val = \"\" to train without it)"},
           {"--config " + job.dir.file("no_val.conf"),
            "data.val: no files match the pattern 'data/shards/val_*.bin'"},
           {"--data.val=" + job.dir.file("bad_val_*.bin"),
            "data.val: token shard " + job.dir.file("bad_val_000000.bin") + " has token id 48"},
           {"--data.tokenizer=" + job.dir.file("missing.tok"),
            "data.tokenizer: cannot open tokenizer file " + job.dir.file("missing.tok")},
           {"--data.tokenizer=" + byte_tokenizer(job.dir),
            "data.tokenizer: " + job.dir.file("bytes.tok") +
                " has 257 ids, more than model.vocab_size = 48; set model.vocab_size to at least "
                "257"},
           {"--model.vocab_size=512 --data.train=" + job.dir.file("wide_000000.bin") +
                " --data.tokenizer=" + byte_tokenizer(job.dir),
            "data.train: token shard " + job.dir.file("wide_000000.bin") +
                " holds id 300, but the tokenizer " + job.dir.file("bytes.tok") +
                " (data.tokenizer) has 257 ids"},
           {"--train.out_dir=" + job.dir.file("not_a_dir/out"),
            "train.out_dir: cannot create '" + job.dir.file("not_a_dir/out") + "'"},
           {"--train.out_dir=/sys", "train.out_dir: cannot write a file in '/sys'"},
           {"--train.out_dir=" + job.dir.file("not_a_dir"),
            "train.out_dir: cannot list checkpoint directory " + job.dir.file("not_a_dir")},
       }) {
    CAPTURE(c.args);
    Result result = c.args.starts_with("--config")
                        ? run("ssa-train " + c.args + " --train.out_dir=" + out)
                        : job.train(c.args);
    CHECK(result.exit_code == 1);
    CHECK_MESSAGE(contains(error_line(result.output), c.message), result.output);
    CHECK(!contains(result.output, "step      1/"));
    CHECK(!std::filesystem::exists(out));
  }
}

TEST_CASE("a validation that fails after start-up writes a checkpoint before it ends the run") {
  TinyJob job("e2e_val_fails");
  const std::string out = job.dir.file("out");
  Background training(fmt::format("{}/ssa-train --config {} --train.steps=400 "
                                  "--train.val_every=200",
                                  SSA_BIN_DIR, job.config),
                      job.dir.file("output.txt"));
  wait_for_line(out + "/log.jsonl", "\"loss\"");
  training.signal(SIGSTOP);  // the validation at step 200 is still to come
  REQUIRE(losses_after(out, 0).size() < 200);
  std::filesystem::remove(job.dir.file("val_000000.bin"));
  training.signal(SIGCONT);
  Background::Ended ended = training.wait();
  CHECK(ended.exit_code == 1);
  const std::string checkpoint = out + "/" + checkpoint_file_name(200);
  CHECK_MESSAGE(contains(error_line(ended.output),
                         "validation at step 200 failed: data.val: no files match the pattern"),
                ended.output);
  CHECK(contains(error_line(ended.output), "the trained state is saved in " + checkpoint));
  CHECK(std::filesystem::exists(checkpoint));
  write_tiny_shards(job.dir);
  Result resumed = job.train("--train.steps=400 --train.val_every=200 --resume auto");
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "resumed from " + checkpoint));
}

TEST_CASE("a tokenizer with fewer ids than the vocabulary: samples and ssa-generate draw its ids") {
  TempDir dir("e2e_small_tokenizer");
  // 257 ids (bytes and <|endoftext|>) under a vocabulary of 512: every other id is undecodable.
  const std::string tokenizer = byte_tokenizer(dir);
  std::vector<uint32_t> text = Tokenizer().encode(std::string(3000, 'a') + " the grass is green");
  write_shard(dir.file("train_000000.bin"), text);
  Result trained = run(fmt::format(
      "ssa-train --model.vocab_size=512 --model.d_model=32 --model.n_layers=1 --model.n_heads=2 "
      "--model.n_kv_heads=1 --model.head_dim=16 --model.ffn_dim=64 --model.max_seq_len=32 "
      "--data.seq_len=32 --data.train={} --data.val= --data.tokenizer={} --train.steps=2 "
      "--train.micro_batch=2 --train.sample_every=1 --train.sample_tokens=200 "
      "--train.out_dir={}",
      dir.file("train_000000.bin"), tokenizer, dir.file("out")));
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  CHECK(contains(trained.output, "step      2 | sample:"));
  CHECK(!contains(trained.output, "sample skipped"));
  Result generated =
      run(fmt::format("ssa-generate --checkpoint {} --tokens 200 --temperature 1 --sample-top-k 0",
                      dir.file("out/" + checkpoint_file_name(2))));
  CHECK_MESSAGE(generated.exit_code == 0, generated.output);
}

TEST_CASE("SIGTERM stops after the current step with a checkpoint; the printed command resumes") {
  TinyJob job("e2e_sigterm");
  const std::string steps = "--train.steps=500";
  Result straight = job.train(steps + " --train.out_dir=" + job.dir.file("straight"));
  REQUIRE_MESSAGE(straight.exit_code == 0, straight.output);
  const std::string out = job.dir.file("out");
  Background training(fmt::format("{}/ssa-train --config {} {}", SSA_BIN_DIR, job.config, steps),
                      job.dir.file("output.txt"));
  wait_for_line(out + "/log.jsonl", "\"loss\"");
  training.signal(SIGTERM);
  Background::Ended ended = training.wait();
  REQUIRE_MESSAGE(ended.exit_code == 0, ended.output);
  const std::string step = captured(ended.output, "ssa-train: stopped by SIGTERM at step (\\d+);");
  CAPTURE(step);
  REQUIRE(std::stoi(step) < 500);
  const std::string checkpoint = out + "/" + checkpoint_file_name(std::stoi(step));
  CHECK(contains(ended.output, "; checkpoint " + checkpoint + "; resume with: "));
  CHECK(std::filesystem::exists(checkpoint));
  CHECK(list_checkpoints(out).size() == 1);
  const std::string command = captured(ended.output, "; resume with: (.*)\n");
  CHECK(command.ends_with(" --resume auto"));
  Result resumed = shell(command);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "resumed from " + checkpoint));
  const std::vector<JsonValue> expected = losses_after(job.dir.file("straight"), std::stoi(step));
  CHECK(expected.size() == static_cast<size_t>(500 - std::stoi(step)));
  CHECK(losses_after(out, std::stoi(step)) == expected);
}

TEST_CASE("a second signal ends ssa-train at once, without a checkpoint") {
  TinyJob job("e2e_second_signal");
  const std::string out = job.dir.file("out");
  Background training(
      fmt::format("{}/ssa-train --config {} --train.steps=100000", SSA_BIN_DIR, job.config),
      job.dir.file("output.txt"));
  wait_for_line(out + "/log.jsonl", "\"loss\"");
  // Both are pending when it continues, so both arrive before it finishes its step.
  training.signal(SIGSTOP);
  training.signal(SIGINT);
  training.signal(SIGTERM);
  training.signal(SIGCONT);
  Background::Ended ended = training.wait();
  CHECK(ended.exit_code == -1);
  CHECK((ended.signal == SIGINT || ended.signal == SIGTERM));
  CHECK(!contains(ended.output, "stopped by"));
  CHECK(list_checkpoints(out).empty());
}

TEST_CASE("a model too large for memory names its state and what to change") {
  TinyJob job("e2e_model_too_large");
  // 2^30 ids x 2^17 wide: an embedding of 2^47 floats (512 TiB). No checkpoints, so the
  // start-up's free-space check (which would refuse it first) does not apply.
  Result result = job.train(
      "--model.vocab_size=1073741824 --model.d_model=131072 --train.ckpt_every=-1 --data.val=");
  CHECK(result.exit_code == 1);
  CHECK_MESSAGE(contains(error_line(result.output),
                         "ssa-train: error: out of host memory: could not allocate "),
                result.output);
  CHECK_MESSAGE(
      contains(error_line(result.output),
               "; the model's state alone (parameters, gradients, AdamW moments of "
               "140737552973824 parameters) takes about 2048.00 TiB per rank: choose a "
               "smaller model, or spread the moments over more ranks with train.zero = 1"),
      result.output);
}

TEST_CASE("memory that runs out in a step names the allocation and what to lower") {
  TinyJob job("e2e_out_of_memory");
  const std::string lower =
      "; lower train.micro_batch (raise train.grad_accum to keep the batch) or data.seq_len";
  struct Case {
    std::string micro_batch, cause;
  };
  for (const Case& c : std::vector<Case>{
           // A token batch (2^43 x 16 int32) larger than any address space.
           {"8796093022208", "out of host memory: could not allocate 512.00 TiB"},
           // 2^57 x 16 elements: more than 2^60, refused before a byte count could wrap.
           {"144115188075855872",
            "a tensor of shape [144115188075855872, 16] holds more than 2^60 elements"},
       }) {
    Result result = job.train("--train.micro_batch=" + c.micro_batch);
    CHECK(result.exit_code == 1);
    CHECK_MESSAGE(error_line(result.output) == "ssa-train: error: step 1: " + c.cause + lower,
                  result.output);
  }
}

TEST_CASE("eval commands refuse what would lose the checkpoint or decode with another vocabulary") {
  TinyJob job("e2e_eval_refusals");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string checkpoint = job.dir.file("out/" + checkpoint_file_name(1));
  const std::string saved = text_of(checkpoint);
  Result over = run(fmt::format("ssa-eval grads --checkpoint {} --out {}", checkpoint, checkpoint));
  CHECK(over.exit_code == 2);
  CHECK(contains(over.output, "--out " + checkpoint + " is the checkpoint itself"));
  CHECK(text_of(checkpoint) == saved);
  // A results prefix whose .json would be the checkpoint: refused too.
  const std::string json = job.dir.file("ck.json");
  std::filesystem::copy_file(checkpoint, json);
  Result prefix =
      run(fmt::format("ssa-eval ppl --checkpoint {} --out {}", json, job.dir.file("ck")));
  CHECK(prefix.exit_code == 2);
  CHECK(contains(prefix.output, "--out " + json + " is the checkpoint itself"));
  CHECK(text_of(json) == saved);
  Result wider = run(fmt::format("ssa-generate --checkpoint {} --tokenizer {} --tokens 2",
                                 checkpoint, byte_tokenizer(job.dir)));
  CHECK(wider.exit_code == 1);
  CHECK(contains(wider.output, "has 257 ids, more than the model's vocab_size 48"));
  Result budgets = run(fmt::format("ssa-eval ppl --checkpoint {} --top-k 0", checkpoint));
  CHECK(budgets.exit_code == 2);
  CHECK(contains(budgets.output, "--top-k values must be at least 1, got 0"));
  // Validation shards that moved after training: the error says the pattern was the checkpoint's.
  std::filesystem::rename(job.dir.file("val_000000.bin"), job.dir.file("moved.bin"));
  Result moved = run(fmt::format("ssa-eval ppl --checkpoint {}", checkpoint));
  CHECK(moved.exit_code == 1);
  CHECK_MESSAGE(contains(moved.output,
                         "(the checkpoint's data.val; pass --data GLOB to read "
                         "shards elsewhere)"),
                moved.output);
}
