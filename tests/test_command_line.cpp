#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <new>
#include <string>

#include "core/command_line.h"

using namespace ssa;

namespace {

// What a call printed on stdout and stderr, and what it returned.
struct Printed {
  int result;
  std::string out, err;
};

// The text written to file descriptor `fd` while `action` runs.
std::string captured(int fd, std::FILE* stream, const std::function<void()>& action) {
  std::FILE* sink = std::tmpfile();
  REQUIRE(sink != nullptr);
  std::fflush(stream);
  const int saved = ::dup(fd);
  ::dup2(::fileno(sink), fd);
  action();
  std::fflush(stream);
  ::dup2(saved, fd);
  ::close(saved);
  std::string text;
  std::rewind(sink);
  for (int c; (c = std::fgetc(sink)) != EOF;) text += static_cast<char>(c);
  std::fclose(sink);
  return text;
}

Printed run_printing(const std::function<int()>& body) {
  Printed printed{};
  printed.err = captured(STDERR_FILENO, stderr, [&] {
    printed.out = captured(STDOUT_FILENO, stdout, [&] { printed.result = run_tool("tool", body); });
  });
  return printed;
}

// What run_tool printed on stderr and returned, its stdout being /dev/full (a full disk).
Printed run_on_full_disk(const std::function<int()>& body) {
  Printed printed{};
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  const int full = ::open("/dev/full", O_WRONLY);
  REQUIRE(full >= 0);
  ::dup2(full, STDOUT_FILENO);
  printed.err = captured(STDERR_FILENO, stderr, [&] { printed.result = run_tool("tool", body); });
  std::fflush(stdout);  // drops what the full disk refused
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  ::close(full);
  std::clearerr(stdout);
  return printed;
}

// The UsageError message of parsing `args` with `line`, or "" when it parses.
std::string usage_error_of(CommandLine& line, const std::vector<std::string>& args) {
  try {
    line.parse(args);
  } catch (const UsageError& error) {
    return error.what();
  }
  return "";
}

CommandLine& declare(CommandLine& line) {
  return line.required("--out", "PATH", "where it goes")
      .option("--batch", "B", "windows per pass (default 8)")
      .option("--top-k", "LIST", "budgets (default 1,2)")
      .flag("--no-cache", "recompute everything")
      .positionals("INPUT", "files to read");
}

}  // namespace

TEST_CASE("run_tool: the body's exit code; 0 after help, 2 after a usage error, 1 after an error") {
  Printed ok = run_printing([] { return 3; });
  CHECK(ok.result == 3);
  CHECK(ok.out.empty());
  CHECK(ok.err.empty());

  Printed help = run_printing([]() -> int { throw HelpRequested("usage: tool [OPTIONS]\n"); });
  CHECK(help.result == 0);
  CHECK(help.out == "usage: tool [OPTIONS]\n");
  CHECK(help.err.empty());

  Printed usage = run_printing([]() -> int { usage_error("--top-k must be at least 1, got 0"); });
  CHECK(usage.result == 2);
  CHECK(usage.err == "tool: --top-k must be at least 1, got 0\nrun 'tool --help' for usage\n");

  Printed failed = run_printing([]() -> int { fail("cannot open {}", "/nowhere/log.jsonl"); });
  CHECK(failed.result == 1);
  CHECK(failed.err == "tool: error: cannot open /nowhere/log.jsonl\n");
  CHECK(failed.out.empty());

  Printed no_memory = run_printing([]() -> int { throw std::bad_alloc(); });
  CHECK(no_memory.result == 1);
  CHECK(no_memory.err ==
        "tool: error: out of host memory (an allocation failed); lower the sizes this command "
        "asks for\n");
}

TEST_CASE("run_tool: output that cannot be written is an error, not a silent exit 0") {
  const std::string refused =
      "tool: error: cannot write standard output: No space left on device\n";
  Printed buffered = run_on_full_disk([] {
    fmt::print("perplexity 12.5\n");  // held in the buffer until run_tool flushes it
    return 0;
  });
  CHECK(buffered.result == 1);
  CHECK(buffered.err == refused);
  Printed long_output = run_on_full_disk([] {
    fmt::print("{}\n", std::string(1 << 16, 'x'));  // past the buffer: fmt::print throws
    return 0;
  });
  CHECK(long_output.result == 1);
  CHECK(long_output.err == refused);
  Printed help = run_on_full_disk([]() -> int { throw HelpRequested(std::string(1 << 16, 'h')); });
  CHECK(help.result == 1);
  CHECK(help.err == refused);
  Printed failed = run_on_full_disk([] { return 3; });  // nothing printed: nothing lost
  CHECK(failed.result == 3);
  CHECK(failed.err.empty());
}

TEST_CASE("command line: values, flags and positionals; the last of a repeated option wins") {
  CommandLine line("tool run", "Runs.");
  declare(line).parse({"--out=o.bin", "a.txt", "--batch", "4", "--no-cache", "--top-k", "1,4,16",
                       "b.txt", "--batch=5"});
  CHECK(line.get("--out") == "o.bin");
  CHECK(line.get_int("--batch", 8, 1) == 5);
  CHECK(line.times("--batch") == 2);
  CHECK(line.times("--out") == 1);
  CHECK(line.get_int_list("--top-k", {1, 2}, 1) == std::vector<int64_t>{1, 4, 16});
  CHECK(line.has("--no-cache"));
  CHECK(line.positional() == std::vector<std::string>{"a.txt", "b.txt"});

  CommandLine defaults("tool run", "Runs.");
  declare(defaults).parse({"--out", "o.bin"});
  CHECK(!defaults.has("--batch"));
  CHECK(defaults.get_int("--batch", 8, 1) == 8);
  CHECK(defaults.get("--top-k", "1,2") == "1,2");
  CHECK(!defaults.has("--no-cache"));
  CHECK(defaults.positional().empty());
}

TEST_CASE("command line: each mistake is one line naming the option and what was expected") {
  auto mistake = [](const std::vector<std::string>& args) {
    CommandLine line("tool run", "Runs.");
    return usage_error_of(declare(line), args);
  };
  CHECK(mistake({"--out", "o", "--topk", "1"}) == "unknown option --topk for 'tool run'");
  CHECK(mistake({"--out", "o", "--topk=1"}) == "unknown option --topk for 'tool run'");
  CHECK(mistake({"--batch", "4"}).find("--out") != std::string::npos);
  CHECK(mistake({"--out"}).find("--out") != std::string::npos);
  for (const std::string& message : {mistake({}), mistake({"--out"})})
    CHECK(message.find('\n') == std::string::npos);

  CommandLine line("tool run", "Runs.");
  declare(line).parse({"--out", "o", "--batch", "0", "--top-k", "2,x"});
  auto error = [](auto&& read) {
    try {
      read();
    } catch (const UsageError& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  CHECK(error([&] { line.get_int("--batch", 8, 1); }) == "--batch must be at least 1, got 0");
  CHECK(error([&] { line.get_int("--batch", 8, -4, -1); }) == "--batch must be at most -1, got 0");
  CHECK(error([&] { line.get_int_list("--top-k", {}, 1); }) == "--top-k expects a number, got 'x'");

  CommandLine bare("tool run", "Runs.");
  bare.option("--batch", "B", "windows per pass");
  CHECK(usage_error_of(bare, {"stray"}) == "unexpected argument 'stray' for 'tool run'");
}

TEST_CASE("command line: --help lists every option with its meaning and default") {
  CommandLine line("tool run", "Runs the tool.");
  declare(line);
  std::string help;
  try {
    line.parse({"--batch", "4", "--help"});
  } catch (const HelpRequested& requested) {
    help = requested.what();
  }
  for (const char* part : {"Runs the tool.", "tool run", "--out PATH", "where it goes", "--batch B",
                           "windows per pass (default 8)", "--top-k LIST", "--no-cache",
                           "recompute everything", "INPUT", "files to read", "--help"}) {
    CAPTURE(part);
    CHECK(help.find(part) != std::string::npos);
  }
}

TEST_CASE("command line: parse_known hands on the undeclared options in order") {
  CommandLine line("ssa-train", "Trains.");
  line.option("--config", "FILE", "the config file").flag("--print-config", "print it");
  const std::vector<std::string> rest =
      line.parse_known({"--model.d_model=64", "--config", "a.conf", "--train.steps=3"});
  CHECK(rest == std::vector<std::string>{"--model.d_model=64", "--train.steps=3"});
  CHECK(line.get("--config", "") == "a.conf");
  CHECK(!line.has("--print-config"));
}

TEST_CASE("run_subcommand: runs the named command on the rest; an unknown one is named") {
  std::vector<std::string> seen;
  const std::vector<Subcommand> commands{
      {"first", "the first",
       [&](const std::vector<std::string>& args) {
         seen = args;
         return 5;
       }},
      {"second", "the second", [](const std::vector<std::string>&) { return 0; }},
      {"third", "the third", [](const std::vector<std::string>&) { return 0; }},
  };
  CHECK(run_subcommand("tool", "A tool.", commands, {"first", "--x", "1"}) == 5);
  CHECK(seen == std::vector<std::string>{"--x", "1"});
  try {
    run_subcommand("tool", "A tool.", commands, {"fourth"});
    FAIL("no UsageError");
  } catch (const UsageError& error) {
    CHECK(std::string(error.what()) ==
          "unknown command 'fourth' (expected first, second or third)");
  }
  Printed bare = run_printing([&] { return run_subcommand("tool", "A tool.", commands, {}); });
  CHECK(bare.result == 2);
  Printed help =
      run_printing([&] { return run_subcommand("tool", "A tool.", commands, {"--help"}); });
  CHECK(help.result == 0);
  CHECK(help.out == bare.out);
  for (const char* part : {"A tool.", "first", "the first", "second", "the third"})
    CHECK(help.out.find(part) != std::string::npos);
}
