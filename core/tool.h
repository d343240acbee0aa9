#pragma once
// The frame of every binary's main (run_tool): --help, exit codes and the one-line error message.
#include <exception>
#include <functional>
#include <string>

#include "core/error.h"

namespace ssa {

// A mistake on the command line; run_tool prints it with a pointer to --help and returns 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void usage_error(fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

// --help was given; run_tool prints the help text (what()) on stdout and returns 0.
class HelpRequested : public std::exception {
 public:
  explicit HelpRequested(std::string text) : text_(std::move(text)) {}
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

// "run '<tool> --help' for usage": what follows a usage error's message.
std::string help_pointer(const std::string& tool);

// Runs a binary's body and returns its exit code: the body's own; 0 after HelpRequested; 2
// after a UsageError, printing "<tool>: <message>" and "run '<tool> --help' for usage" on
// stderr; 1 after any other exception, printing "<tool>: error: <message>" (for a failed host
// allocation, std::bad_alloc, a message saying so). Where the body succeeded but its standard
// output could not be written (a full disk, a closed stdout), it prints "<tool>: error: cannot
// write standard output: <reason>" and returns 1.
int run_tool(const std::string& tool, const std::function<int()>& body);

}  // namespace ssa
