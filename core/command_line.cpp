#include "core/command_line.h"

#include <CLI/CLI.hpp>
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

// "a", "a or b", "a, b or c".
std::string or_list(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i)
    text += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return text;
}

std::unique_ptr<CLI::App> make_app(const std::string& name, const std::string& about) {
  auto app = std::make_unique<CLI::App>(about.empty() ? about : about + "\n", name);
  app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app->allow_extras();  // parse names them in our words; parse_known hands them on
  return app;
}

std::string subcommands_help(const std::string& tool, const std::string& about,
                             const std::vector<Subcommand>& subcommands) {
  std::unique_ptr<CLI::App> app = make_app(tool, about);
  app->require_subcommand(1);
  app->get_formatter()->label("SUBCOMMAND", "COMMAND");
  for (const Subcommand& subcommand : subcommands)
    app->add_subcommand(subcommand.name, subcommand.about)->group("Commands");
  app->footer(fmt::format("Run '{} COMMAND --help' for the options of a command.", tool));
  return app->help();
}

}  // namespace

CommandLine::CommandLine(std::string command, const std::string& about)
    : command_(std::move(command)), app_(make_app(command_, about)) {}

CommandLine::~CommandLine() = default;

CommandLine& CommandLine::option(const std::string& name, const std::string& value,
                                 const std::string& help) {
  app_->add_option(name, values_[name], help)->type_name(value);
  return *this;
}

CommandLine& CommandLine::required(const std::string& name, const std::string& value,
                                   const std::string& help) {
  app_->add_option(name, values_[name], help)->type_name(value)->required();
  return *this;
}

CommandLine& CommandLine::flag(const std::string& name, const std::string& help) {
  app_->add_flag(name, help);
  return *this;
}

CommandLine& CommandLine::positionals(const std::string& name, const std::string& help) {
  app_->add_option(name, positional_, help)->type_name("");
  return *this;
}

CommandLine& CommandLine::footer(const std::string& text) {
  app_->footer(text);
  return *this;
}

std::vector<std::string> CommandLine::parse_known(const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes the last first
  try {
    app_->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    throw HelpRequested(app_->help());
  } catch (const CLI::ParseError& error) {
    throw UsageError(error.what());
  }
  return app_->remaining();
}

void CommandLine::parse(const std::vector<std::string>& args) {
  const std::vector<std::string> unknown = parse_known(args);
  if (unknown.empty()) return;
  const std::string& first = unknown.front();
  if (first.starts_with("-"))
    usage_error("unknown option {} for '{}'", first.substr(0, first.find('=')), command_);
  usage_error("unexpected argument '{}' for '{}'", first, command_);
}

bool CommandLine::has(const std::string& name) const { return times(name) > 0; }

size_t CommandLine::times(const std::string& name) const { return app_->count(name); }

std::string CommandLine::get(const std::string& option) const {
  if (!has(option)) usage_error("'{}' needs {}", command_, option);
  return values_.at(option);
}

std::string CommandLine::get(const std::string& option, const std::string& fallback) const {
  return has(option) ? values_.at(option) : fallback;
}

int64_t CommandLine::get_int(const std::string& option, int64_t fallback, int64_t minimum,
                             int64_t maximum) const {
  if (!has(option)) return fallback;
  int64_t value = parse_number<int64_t>(option, values_.at(option));
  if (value < minimum) usage_error("{} must be at least {}, got {}", option, minimum, value);
  if (value > maximum) usage_error("{} must be at most {}, got {}", option, maximum, value);
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
                                               std::vector<int64_t> fallback, int64_t minimum,
                                               int64_t maximum) const {
  if (!has(option)) return fallback;
  std::vector<int64_t> values;
  const std::string& text = values_.at(option);
  for (size_t start = 0; start <= text.size();) {
    size_t comma = std::min(text.find(',', start), text.size());
    int64_t value = parse_number<int64_t>(option, text.substr(start, comma - start));
    if (value < minimum)
      usage_error("{} values must be at least {}, got {}", option, minimum, value);
    if (value > maximum)
      usage_error("{} values must be at most {}, got {}", option, maximum, value);
    values.push_back(value);
    start = comma + 1;
  }
  return values;
}

int run_subcommand(const std::string& tool, const std::string& about,
                   const std::vector<Subcommand>& subcommands,
                   const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    const std::string help = subcommands_help(tool, about, subcommands);
    if (!args.empty()) throw HelpRequested(help);
    fmt::print("{}", help);
    return 2;
  }
  std::vector<std::string> names;
  for (const Subcommand& subcommand : subcommands) {
    if (subcommand.name == args[0]) return subcommand.run({args.begin() + 1, args.end()});
    names.push_back(subcommand.name);
  }
  usage_error("unknown command '{}' (expected {})", args[0], or_list(names));
}

std::vector<std::string> arguments(int argc, char** argv, int first) {
  return {argv + first, argv + argc};
}

}  // namespace ssa
