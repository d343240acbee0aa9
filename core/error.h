#pragma once
// One error type for the whole project (OutOfMemory marks an allocation that failed, so that
// callers can say what to lower), and the CHECK macros that raise it.
// Header-only so that cuda/ can use it without linking core.
#include <fmt/format.h>

#include <cstddef>
#include <iterator>
#include <stdexcept>
#include <string>

namespace ssa {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An allocation that failed: host or device memory ran out.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

// "1.50 GiB", "12.00 MiB", "512 bytes": a size for messages.
inline std::string byte_text(size_t bytes) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return fmt::format("{} bytes", bytes);
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  for (; value >= 1024 && unit + 1 < std::size(kUnits); ++unit) value /= 1024;
  return fmt::format("{:.2f} {}", value, kUnits[unit]);
}

// A user-facing error: the message alone, no source location.
template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

namespace detail {
[[noreturn]] inline void check_failed(const char* file, int line, const char* condition,
                                      const std::string& message) {
  throw Error(fmt::format("{}:{}: check failed ({}): {}", file, line, condition, message));
}
}  // namespace detail

}  // namespace ssa

// SSA_CHECK(cond, "fmt {}", args...): an internal invariant or an API misuse.
#define SSA_CHECK(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::ssa::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)
