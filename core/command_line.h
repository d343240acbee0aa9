#pragma once
// The binaries' command lines, parsed by CLI11: "--name value" / "--name=value" options, flags
// and positional arguments; --help lists them with their meaning and default. Every mistake is
// a UsageError naming the option (core/tool.h).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tool.h"

namespace CLI {
class App;
}

namespace ssa {

class CommandLine {
 public:
  // `command` names the program or subcommand ("ssa-eval ppl") in messages and in --help,
  // which prints `about` above the options.
  CommandLine(std::string command, const std::string& about);
  ~CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Declarations, before parse. `help` says what the option does and its default; `value`
  // names what it takes ("N", "PATH").
  CommandLine& option(const std::string& name, const std::string& value, const std::string& help);
  CommandLine& required(const std::string& name, const std::string& value, const std::string& help);
  CommandLine& flag(const std::string& name, const std::string& help);
  // The arguments that are not options, in order.
  CommandLine& positionals(const std::string& name, const std::string& help);
  // Text --help prints after the options.
  CommandLine& footer(const std::string& text);

  // Throws HelpRequested for --help or -h and UsageError for a mistake, an undeclared option
  // included.
  void parse(const std::vector<std::string>& args);
  // As parse, but returns the undeclared options (and what follows them) instead of refusing.
  std::vector<std::string> parse_known(const std::vector<std::string>& args);

  // Whether the option or flag was given; how many times (the last value is the one read).
  bool has(const std::string& name) const;
  size_t times(const std::string& name) const;
  // The value of a required option.
  std::string get(const std::string& option) const;
  std::string get(const std::string& option, const std::string& fallback) const;
  int64_t get_int(const std::string& option, int64_t fallback, int64_t minimum,
                  int64_t maximum = INT64_MAX) const;
  // A count or length: at most kMaxSize, so that products of sizes cannot wrap.
  static constexpr int64_t kMaxSize = int64_t{1} << 30;
  int64_t get_size(const std::string& option, int64_t fallback, int64_t minimum) const {
    return get_int(option, fallback, minimum, kMaxSize);
  }
  double get_double(const std::string& option, double fallback, double minimum) const;
  // A comma-separated list of integers, each in [minimum, maximum] ("1,2,4").
  std::vector<int64_t> get_int_list(const std::string& option, std::vector<int64_t> fallback,
                                    int64_t minimum, int64_t maximum = INT64_MAX) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::vector<std::string> parse_args(const std::vector<std::string>& args);

  std::string command_;
  std::unique_ptr<CLI::App> app_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// One command of a binary that has several ("ssa-eval stats"): its name, a line for the
// binary's --help, and what runs it on the arguments after the name.
struct Subcommand {
  std::string name;
  std::string about;
  std::function<int(const std::vector<std::string>&)> run;
};

// Runs the subcommand that args[0] names on the arguments after it. No arguments: prints the
// binary's help (`about`, then the subcommands) and returns 2; --help or -h: prints it.
int run_subcommand(const std::string& tool, const std::string& about,
                   const std::vector<Subcommand>& subcommands,
                   const std::vector<std::string>& args);

// argv[first..argc) as strings.
std::vector<std::string> arguments(int argc, char** argv, int first);

}  // namespace ssa
