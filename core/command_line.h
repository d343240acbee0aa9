#pragma once
// The binaries' command lines: "--name value" / "--name=value" options, bare flags, and
// positional arguments; every mistake is a UsageError naming the option.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace ssa {

// A mistake on the command line; binaries print it with a pointer to --help and exit 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void usage_error(fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

class CommandLine {
 public:
  // `command` names the program (or subcommand) in messages; `options` take a value,
  // `flags` do not; anything else starting with "--" is refused.
  CommandLine(std::string command, const std::vector<std::string>& args,
              const std::set<std::string>& options, const std::set<std::string>& flags = {});

  bool has(const std::string& option) const { return values_.count(option) > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

  std::string required(const std::string& option) const;
  std::string get(const std::string& option, const std::string& fallback) const;
  int64_t get_int(const std::string& option, int64_t fallback, int64_t minimum) const;
  double get_double(const std::string& option, double fallback, double minimum) const;
  // A comma-separated list of integers, each at least `minimum` ("1,2,4").
  std::vector<int64_t> get_int_list(const std::string& option, std::vector<int64_t> fallback,
                                    int64_t minimum) const;

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

// argv[first..argc) as strings.
std::vector<std::string> arguments(int argc, char** argv, int first);

}  // namespace ssa
