#pragma once
// Running the binaries of build/bin from end-to-end tests, on a tiny job in a scratch directory,
// in the foreground or in the background (to signal them while they run).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "train/checkpoint.h"
#include "train_test_util.h"

namespace ssa::test {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// A report of AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer in a binary's
// output (the checking build of scripts/checks.sh) fails the test, also where the binary was
// expected to fail.
inline void check_no_sanitizer_report(const std::string& output) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: "})
    CHECK_MESSAGE(output.find(marker) == std::string::npos, output);
}

// Runs a shell command line, stdout and stderr together.
inline Result run_shell(const std::string& line) {
  std::FILE* pipe = popen(fmt::format("{} 2>&1", line).c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  check_no_sanitizer_report(output);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// Runs `command` of build/bin ("ssa-train --config ...").
inline Result run(const std::string& command) {
  return run_shell(fmt::format("{}/{}", SSA_BIN_DIR, command));
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The whole text of a file ("" when it cannot be read).
inline std::string text_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A command of the shell started in the background, its stdout and stderr going to a file.
class Background {
 public:
  Background(const std::string& command, std::string output_path)
      : output_path_(std::move(output_path)) {
    // exec: the pid is the command's own, so signals reach it and not a shell.
    const std::string line = fmt::format("exec {} >{} 2>&1", command, output_path_);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Background() {
    if (running_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int number) const { REQUIRE(::kill(pid_, number) == 0); }

  struct Ended {
    int exit_code;  // -1 when a signal ended it
    int signal;     // the signal that ended it, 0 when it exited
    std::string output;
  };
  Ended wait() {
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    running_ = false;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0, text_of(output_path_)};
  }

 private:
  std::string output_path_;
  pid_t pid_ = -1;
  bool running_ = true;
};

// Waits (up to a minute) until `path` holds a line containing `part`.
inline void wait_for_line(const std::string& path, const std::string& part) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (text_of(path).find(part) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) FAIL(path << " never held " << part);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// A tiny job in a scratch directory: shards and a config file.
struct TinyJob {
  TempDir dir;
  std::string config;
  explicit TinyJob(const std::string& name) : dir(name), config(dir.file("tiny.conf")) {
    write_tiny_shards(dir);
    std::ofstream(config) << tiny_config_text(dir);
  }
  Result train(const std::string& extra) const {
    return run(fmt::format("ssa-train --config {} {}", config, extra));
  }
};

// Writes `lines` numbered sentences to dir/doc.txt and trains dir/tok.bin on it.
inline void write_doc_and_tokenizer(const TempDir& dir, int lines, int vocab_size) {
  {
    std::ofstream doc(dir.file("doc.txt"));
    for (int i = 0; i < lines; ++i) doc << "The grass is green. The pass key is " << i << ".\n";
  }
  REQUIRE(run(fmt::format("ssa-tokenize train --out {} --vocab-size {} {}", dir.file("tok.bin"),
                          vocab_size, dir.file("doc.txt")))
              .exit_code == 0);
}

// Tokenises text (tok.bin, shards/) and trains a 1-layer model 4 steps at seq_len 32 and block
// size 8 in `dir` (out/); the final checkpoint's path.
inline std::string train_text_job(const TempDir& dir) {
  for (const char* name : {"doc_a.txt", "doc_b.txt"}) {
    std::ofstream doc(dir.file(name));
    for (int i = 0; i < 300; ++i)
      doc << "The grass is green. The pass key is " << 10000 + i << ".\n";
  }
  Result tokenized = run(fmt::format("ssa-tokenize train --out {} --vocab-size 300 {}",
                                     dir.file("tok.bin"), dir.file("doc_a.txt")));
  REQUIRE_MESSAGE(tokenized.exit_code == 0, tokenized.output);
  Result encoded = run(fmt::format(
      "ssa-tokenize encode --tokenizer {} --out-dir {} --val-fraction 0.5 {} {}",
      dir.file("tok.bin"), dir.file("shards"), dir.file("doc_a.txt"), dir.file("doc_b.txt")));
  REQUIRE_MESSAGE(encoded.exit_code == 0, encoded.output);
  Result trained = run(fmt::format(
      "ssa-train --model.vocab_size=300 --model.d_model=32 --model.n_layers=1 --model.n_heads=2 "
      "--model.n_kv_heads=1 --model.head_dim=16 --model.ffn_dim=64 --model.max_seq_len=32 "
      "--data.seq_len=32 --data.train='{0}/shards/train_*.bin' --data.val='{0}/shards/val_*.bin' "
      "--data.tokenizer={0}/tok.bin --attention.block_size=8 --train.steps=4 "
      "--train.micro_batch=2 --train.out_dir={0}/out",
      dir.file("")));
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  return dir.file("out/" + checkpoint_file_name(4));
}

}  // namespace ssa::test
