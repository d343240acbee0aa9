#pragma once
// Running the binaries of build/bin from end-to-end tests, on a tiny job in a scratch directory.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "train_test_util.h"

namespace ssa::test {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline Result run(const std::string& command) {
  std::string line = fmt::format("{}/{} 2>&1", SSA_BIN_DIR, command);
  std::FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

inline bool contains(const std::string& text, const std::string& part) {
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

}  // namespace ssa::test
