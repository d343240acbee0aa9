// End to end: the binaries of build/bin on a tiny job — tokenise, train, stop, resume in a new
// process, evaluate, generate — and the errors a user meets.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "e2e_util.h"
#include "eval/jsonl.h"
#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

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
  TinyJob job("e2e_resume");
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

TEST_CASE("an f64 run resumes bit for bit too: its checkpoints hold float64") {
  TinyJob job("e2e_resume_f64");
  const std::string a = job.dir.file("a"), b = job.dir.file("b"), f64 = "--train.dtype=f64 ";
  REQUIRE(job.train(f64 +
                    "--train.steps=4 --train.ckpt_every=2 --train.keep_last=0 "
                    "--train.out_dir=" +
                    a)
              .exit_code == 0);
  Result resumed = job.train(fmt::format("{}--train.steps=4 --train.out_dir={} --resume {}/{}", f64,
                                         b, a, checkpoint_file_name(2)));
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(logged(a + "/log.jsonl", "loss", 2) == logged(b + "/log.jsonl", "loss", 2));
  Checkpoint end_a = read_checkpoint(a + "/" + checkpoint_file_name(4));
  Checkpoint end_b = read_checkpoint(b + "/" + checkpoint_file_name(4));
  CHECK(end_a.tensor("params/embedding", a).dtype() == DType::f64);
  for (size_t i = 0; i < end_a.tensors.size(); ++i) {
    CAPTURE(end_a.tensors[i].first);
    CHECK(end_a.tensors[i].second.to_vector() == end_b.tensors[i].second.to_vector());
  }
}

TEST_CASE(
    "--resume auto continues from the newest checkpoint; a used out_dir is never overwritten") {
  TinyJob job("e2e_auto");
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

TEST_CASE("a run resumed after it stopped past its last checkpoint logs each step once") {
  TinyJob job("e2e_log_once");
  const std::string out = job.dir.file("out");
  REQUIRE(job.train("--train.steps=5 --train.ckpt_every=3 --train.keep_last=0").exit_code == 0);
  std::filesystem::remove(out + "/" + checkpoint_file_name(5));  // as if killed after step 5
  Result resumed = job.train("--train.steps=5 --resume auto");
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "dropped 3 line(s) of steps past 3, which this run repeats"));
  std::vector<double> steps;
  for (const JsonRecord& record : read_jsonl(out + "/log.jsonl"))
    if (record.count("loss")) steps.push_back(std::get<double>(record.at("step")));
  CHECK(steps == std::vector<double>{1, 2, 3, 4, 5});
}

TEST_CASE("a fresh run into an out_dir whose earlier run left no checkpoint logs each step once") {
  TinyJob job("e2e_log_fresh");
  const std::string out = job.dir.file("out");
  REQUIRE(job.train("--train.steps=4 --train.ckpt_every=-1").exit_code == 0);
  Result again = job.train("--train.steps=2 --train.ckpt_every=-1 --data.val=");
  REQUIRE_MESSAGE(again.exit_code == 0, again.output);
  CHECK(contains(again.output, "dropped 5 line(s) of an earlier run that left no checkpoint"));
  std::vector<double> steps;
  for (const JsonRecord& record : read_jsonl(out + "/log.jsonl"))
    steps.push_back(std::get<double>(record.at("step")));
  CHECK(steps == std::vector<double>{1, 2});
}

TEST_CASE("a run resumed at its last step runs the final validation when its log has none") {
  TinyJob job("e2e_final_val");
  const std::string out = job.dir.file("out"), log = out + "/log.jsonl";
  REQUIRE(job.train("--train.steps=3").exit_code == 0);
  std::vector<JsonRecord> records = read_jsonl(log);
  REQUIRE(records.back().count("val_loss") == 1);
  std::string without_validation;  // as if stopped by a signal in step 3, or validation failed
  std::istringstream lines(file_bytes(log));
  for (std::string line; std::getline(lines, line);)
    if (!contains(line, "val_loss")) without_validation += line + "\n";
  std::ofstream(log, std::ios::trunc) << without_validation;
  Result resumed = job.train("--train.steps=3 --resume auto");
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CHECK(contains(resumed.output, "its final validation, not yet run, runs now"));
  const std::vector<JsonRecord> after = read_jsonl(log);
  CHECK(after.back().at("val_loss") == records.back().at("val_loss"));
}

TEST_CASE("resuming a finished run trains nothing and rewrites nothing; fewer steps are refused") {
  TinyJob job("e2e_finished");
  const std::string out = job.dir.file("out");
  REQUIRE(job.train("--train.steps=3").exit_code == 0);
  const std::string last = out + "/" + checkpoint_file_name(3);
  const std::string checkpoint = file_bytes(last), log = file_bytes(out + "/log.jsonl");
  Result again = job.train("--train.steps=3 --resume auto");
  REQUIRE_MESSAGE(again.exit_code == 0, again.output);
  CHECK(contains(again.output, "nothing to train: the run is at step 3 = train.steps"));
  Result fewer = job.train("--train.steps=2 --resume auto");
  CHECK(fewer.exit_code == 1);
  CHECK(contains(fewer.output, "train.steps = 2 is below step 3 of " + last));
  CHECK(file_bytes(last) == checkpoint);
  CHECK(file_bytes(out + "/log.jsonl") == log);
}

TEST_CASE("resuming from an earlier checkpoint into a dir with later ones is refused") {
  TinyJob job("e2e_rewind");
  const std::string out = job.dir.file("out");
  REQUIRE(job.train("--train.steps=6 --train.ckpt_every=3 --train.keep_last=0").exit_code == 0);
  const std::string earlier = out + "/" + checkpoint_file_name(3);
  const std::string later = out + "/" + checkpoint_file_name(6);
  const std::string saved = file_bytes(later);
  Result rewound = job.train("--train.steps=9 --resume " + earlier);
  CHECK(rewound.exit_code == 1);
  CHECK_MESSAGE(contains(rewound.output, "holds checkpoints past step 3, where " + earlier +
                                             " resumes (" + later + ")"),
                rewound.output);
  CHECK(file_bytes(later) == saved);
  CHECK(std::filesystem::exists(earlier));
}

TEST_CASE("a checkpoint that cannot be resumed is refused before anything is written") {
  TinyJob job("e2e_resume_refused");
  REQUIRE(job.train("--train.steps=2").exit_code == 0);
  const std::string checkpoint = job.dir.file("out/" + checkpoint_file_name(2));
  const std::string fresh = job.dir.file("fresh");
  for (const std::string& mistake :
       {"--resume " + job.dir.file("none.h5"), "--resume " + checkpoint + " --model.d_model=48",
        "--resume " + checkpoint + " --train.steps=1"}) {
    CAPTURE(mistake);
    Result refused = job.train(mistake + " --train.out_dir=" + fresh);
    CHECK(refused.exit_code == 1);
    CHECK_MESSAGE(!contains(refused.output, "parameters"), refused.output);  // no start-up table
    CHECK(!std::filesystem::exists(fresh));
  }
}

TEST_CASE("a resume that changes the data order says so; a plain resume does not") {
  TinyJob job("e2e_resume_note");
  REQUIRE(job.train("--train.steps=2").exit_code == 0);
  Result plain = job.train("--train.steps=4 --resume auto");
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.output);
  CHECK_MESSAGE(!contains(plain.output, "note:"), plain.output);
  Result reseeded = job.train("--train.steps=6 --resume auto --train.seed=7");
  REQUIRE_MESSAGE(reseeded.exit_code == 0, reseeded.output);
  CHECK_MESSAGE(contains(reseeded.output,
                         "note: train.seed = 7 here, 1337 in the checkpoint's "
                         "run: from here on the run reads other windows"),
                reseeded.output);
}

TEST_CASE("config mistakes end with one message naming the key") {
  TinyJob job("e2e_config");
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--model.d_modle=64", "d_model"},  // the valid keys are listed
           {"--model.d_model=sixty", "model.d_model"},
           {"--train.micro_batch=0", "train.micro_batch"},
           {"--attention.block_size=9223372036854775807", "attention.block_size"},
           {"--optim.beta1=1.5", "optim.beta1"},
           {"--optim.beta2=1", "optim.beta2 = 1 must be below 1"},
           {"--optim.eps=0", "optim.eps = 0 must be above 0"},
           {"--train.on_nonfinite=ignore", "stop, skip"},
           {"--nosuch.key=1", "nosuch"},
           {"--config /nonexistent.conf", "/nonexistent.conf"},
           {"--config " + job.dir.path(), "is not a regular file"},
           {"--config ''", "cannot open config file ''"},
           {"--model.n_kv_heads=3", "n_kv_heads"},
           {"--train.dtype=bf16", "train.dtype = bf16 (mixed precision) needs train.device = cuda"},
           {"--train.device=tpu", "cpu, cuda"},
       }) {
    CAPTURE(c.args);
    // A bad --config in place of the job's (a second --config is a mistake of its own).
    Result result = c.args.starts_with("--config") ? run("ssa-train " + c.args) : job.train(c.args);
    CHECK(result.exit_code != 0);
    CHECK_MESSAGE(contains(result.output, c.message), result.output);
    CHECK(!std::filesystem::exists(job.dir.file("out")));
  }
}

TEST_CASE("every config in configs/ resolves") {
  for (const auto& entry : std::filesystem::directory_iterator(SSA_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".conf") continue;
    CAPTURE(entry.path().string());
    Result resolved = run("ssa-train --print-config --config " + entry.path().string());
    CHECK_MESSAGE(resolved.exit_code == 0, resolved.output);
    CHECK(contains(resolved.output, "[model]"));
  }
}

TEST_CASE("bad shards and bad checkpoints are refused by name") {
  TinyJob job("e2e_bad");
  REQUIRE(job.train("--train.steps=2").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(2));

  SUBCASE("a token id beyond the vocabulary") {
    Result result = job.train(
        fmt::format("--model.vocab_size=40 --train.out_dir={}", job.dir.file("small_vocab")));
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
    Result result = run(fmt::format("ssa-eval --checkpoint {} --top-k 1,2", ckpt));
    CHECK(result.exit_code != 0);
    CHECK(contains(result.output, ckpt));
  }
}

TEST_CASE("ssa-tokenize encode: a single document goes to train whatever --val-fraction says") {
  TempDir dir("e2e_one_document");
  std::ofstream(dir.file("doc.txt")) << "one document, the only one";
  Result tokenizer = run(fmt::format("ssa-tokenize train --out {} --vocab-size 260 {}",
                                     dir.file("tok.bin"), dir.file("doc.txt")));
  REQUIRE_MESSAGE(tokenizer.exit_code == 0, tokenizer.output);
  Result encoded =
      run(fmt::format("ssa-tokenize encode --tokenizer {} --out-dir {} --val-fraction 0.9 {}",
                      dir.file("tok.bin"), dir.file("shards"), dir.file("doc.txt")));
  REQUIRE_MESSAGE(encoded.exit_code == 0, encoded.output);
  CHECK_MESSAGE(contains(encoded.output, "in 1 shards, val 0 tokens in 0 shards"), encoded.output);
}

TEST_CASE("ssa-tokenize encode that fails part-way leaves none of its shards; the rerun starts") {
  TempDir dir("e2e_encode_fails");
  write_doc_and_tokenizer(dir, 400, 260);
  // The third train shard cannot be created: its temporary name is taken by a directory.
  std::filesystem::create_directories(dir.file("shards/train_000002.bin.tmp"));
  const std::string encode =
      fmt::format("ssa-tokenize encode --tokenizer {} --out-dir {} --shard-tokens 1000 {}",
                  dir.file("tok.bin"), dir.file("shards"), dir.file("doc.txt"));
  Result failed = run(encode);
  CHECK(failed.exit_code == 1);
  CHECK_MESSAGE(contains(failed.output, "train_000002.bin.tmp"), failed.output);
  CHECK_MESSAGE(contains(failed.output,
                         "; removed the 2 shards this run had written to " + dir.file("shards")),
                failed.output);
  CHECK(!std::filesystem::exists(dir.file("shards/train_000000.bin")));
  CHECK(!std::filesystem::exists(dir.file("shards/train_000001.bin")));
  std::filesystem::remove(dir.file("shards/train_000002.bin.tmp"));
  Result rerun = run(encode);
  CHECK_MESSAGE(rerun.exit_code == 0, rerun.output);
  CHECK(std::filesystem::exists(dir.file("shards/train_000002.bin")));
}

TEST_CASE("tokenise, train, evaluate and generate from text") {
  TempDir dir("e2e_text");
  const std::string ckpt = train_text_job(dir);
  Result evaluated = run(fmt::format("ssa-eval --checkpoint {} --top-k 1,2", ckpt));
  REQUIRE_MESSAGE(evaluated.exit_code == 0, evaluated.output);
  CHECK(contains(evaluated.output, "perplexity"));
  std::vector<JsonRecord> rows = read_jsonl(ckpt + ".ppl.json");
  REQUIRE(rows.size() == 3);  // full, sparse top-1, sparse top-2
  CHECK(std::get<std::string>(rows[1].at("attention")) == "sparse");
  CHECK(std::get<double>(rows[0].at("perplexity")) > 1);
  CHECK(std::filesystem::exists(ckpt + ".ppl.svg"));
  Result generated =
      run(fmt::format("ssa-generate --checkpoint {} --prompt 'The grass' --tokens 8", ckpt));
  REQUIRE_MESSAGE(generated.exit_code == 0, generated.output);
  CHECK(generated.output.starts_with("The grass"));
}

TEST_CASE("a checkpoint reads with standard HDF5 tools, by readable names") {
  TinyJob job("e2e_h5");
  REQUIRE(job.train("--train.steps=1").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(1));
  if (std::system("command -v h5dump >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: h5dump not installed (scripts/test.sh installs hdf5-tools)");
    return;
  }
  const Result listing = run_shell(fmt::format("h5dump -n {}", ckpt));
  CHECK(listing.exit_code == 0);
  CHECK(contains(listing.output, "/params/layers.0.attn.wq"));
  CHECK(contains(listing.output, "/adam_m/embedding"));
}
