#include "core/command_line.h"

#include <charconv>
#include <cmath>

namespace ssa {
namespace {

template <typename Number>
Number parse_number(const std::string& option, const std::string& text) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size())
    usage_error("{} expects a number, got '{}'", option, text);
  return value;
}

}  // namespace

CommandLine::CommandLine(std::string command, const std::vector<std::string>& args,
                         const std::set<std::string>& options, const std::set<std::string>& flags)
    : command_(std::move(command)) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!arg.starts_with("--")) {
      positional_.push_back(arg);
      continue;
    }
    size_t equals = arg.find('=');
    std::string name = arg.substr(0, equals);
    if (flags.count(name) && equals == std::string::npos) {
      flags_.insert(name);
    } else if (options.count(name)) {
      if (equals != std::string::npos) values_[name] = arg.substr(equals + 1);
      else if (i + 1 < args.size()) values_[name] = args[++i];
      else usage_error("option {} needs a value", name);
    } else {
      usage_error("unknown option {} for '{}'", name, command_);
    }
  }
}

std::string CommandLine::required(const std::string& option) const {
  auto found = values_.find(option);
  if (found == values_.end()) usage_error("'{}' needs {}", command_, option);
  return found->second;
}

std::string CommandLine::get(const std::string& option, const std::string& fallback) const {
  auto found = values_.find(option);
  return found == values_.end() ? fallback : found->second;
}

int64_t CommandLine::get_int(const std::string& option, int64_t fallback, int64_t minimum) const {
  if (!has(option)) return fallback;
  int64_t value = parse_number<int64_t>(option, values_.at(option));
  if (value < minimum) usage_error("{} must be at least {}, got {}", option, minimum, value);
  return value;
}

double CommandLine::get_double(const std::string& option, double fallback, double minimum) const {
  if (!has(option)) return fallback;
  double value = parse_number<double>(option, values_.at(option));
  if (!std::isfinite(value) || value < minimum)
    usage_error("{} must be a number of at least {}, got {}", option, minimum, value);
  return value;
}

std::vector<int64_t> CommandLine::get_int_list(const std::string& option,
                                               std::vector<int64_t> fallback,
                                               int64_t minimum) const {
  if (!has(option)) return fallback;
  std::vector<int64_t> values;
  const std::string& text = values_.at(option);
  for (size_t start = 0; start <= text.size();) {
    size_t comma = std::min(text.find(',', start), text.size());
    int64_t value = parse_number<int64_t>(option, text.substr(start, comma - start));
    if (value < minimum) usage_error("{} values must be at least {}, got {}", option, minimum, value);
    values.push_back(value);
    start = comma + 1;
  }
  return values;
}

std::vector<std::string> arguments(int argc, char** argv, int first) {
  std::vector<std::string> args;
  for (int i = first; i < argc; ++i) args.emplace_back(argv[i]);
  return args;
}

}  // namespace ssa
