#include "core/tool.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

namespace ssa {

std::string help_pointer(const std::string& tool) {
  return fmt::format("run '{} --help' for usage", tool);
}

namespace {

// fmt::print throws std::system_error when a write fails; on stdout that is worth naming.
std::string failure_text(const std::exception& error) {
  const auto* failed_write = dynamic_cast<const std::system_error*>(&error);
  if (failed_write == nullptr || std::ferror(stdout) == 0) return error.what();
  return "cannot write standard output: " + failed_write->code().message();
}

int output_lost(const std::string& tool, const std::string& reason) {
  fmt::print(stderr, "{}: error: cannot write standard output: {}\n", tool, reason);
  return 1;
}

int run_body(const std::string& tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const HelpRequested& help) {
    if (std::fputs(help.what(), stdout) == EOF) return output_lost(tool, std::strerror(errno));
    return 0;
  } catch (const UsageError& error) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: {}\n{}\n", tool, error.what(), help_pointer(tool));
    return 2;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    fmt::print(stderr,
               "{}: error: out of host memory (an allocation failed); lower the sizes this "
               "command asks for\n",
               tool);
    return 1;
  } catch (const std::exception& error) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: error: {}\n", tool, failure_text(error));
    return 1;
  }
}

}  // namespace

int run_tool(const std::string& tool, const std::function<int()>& body) {
  const int code = run_body(tool, body);
  if (code != 0) return code;
  // Output still buffered is written here; a write that failed, now or earlier (a full disk, a
  // closed stdout), loses the results.
  if (std::fflush(stdout) != 0) return output_lost(tool, std::strerror(errno));
  if (std::ferror(stdout) != 0) return output_lost(tool, "an earlier write failed");
  return 0;
}

}  // namespace ssa
