#include "core/tool.h"

#include <cstdio>
#include <new>

namespace ssa {

int run_tool(const std::string& tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const HelpRequested& help) {
    fmt::print("{}", help.what());
    return 0;
  } catch (const UsageError& error) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: {}\nrun '{} --help' for usage\n", tool, error.what(), tool);
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
    fmt::print(stderr, "{}: error: {}\n", tool, error.what());
    return 1;
  }
}

}  // namespace ssa
