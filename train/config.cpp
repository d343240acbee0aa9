#include "train/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/files.h"

namespace ssa {
namespace {

std::string_view trim(std::string_view s) {
  const char* blanks = " \t\r";
  size_t first = s.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

bool is_comment_or_blank(std::string_view s) {
  s = trim(s);
  return s.empty() || s.front() == '#';
}

bool is_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

std::string full_name(const ConfigEntry& entry) { return entry.section + "." + entry.key; }

// The sections in the order they first appear in the schema.
std::vector<std::string> section_names(const std::vector<ConfigEntry>& schema) {
  std::vector<std::string> sections;
  for (const ConfigEntry& entry : schema)
    if (std::find(sections.begin(), sections.end(), entry.section) == sections.end())
      sections.push_back(entry.section);
  return sections;
}

std::string_view type_name(ConfigType type) {
  switch (type) {
    case ConfigType::string:
      return "string";
    case ConfigType::integer:
      return "integer";
    case ConfigType::real:
      return "float";
    case ConfigType::boolean:
      return "bool";
  }
  return "?";
}

std::string bound_text(const ConfigEntry& entry, double bound) {
  if (entry.type == ConfigType::integer) return fmt::format("{}", static_cast<int64_t>(bound));
  return fmt::format("{}", bound);
}

// What a valid value looks like: "integer in [1, 8]", "string, one of: a, b", ...
std::string allowed_text(const ConfigEntry& entry) {
  std::string text(type_name(entry.type));
  if (!entry.choices.empty())
    return text + fmt::format(", one of: {}", fmt::join(entry.choices, ", "));
  bool has_min = std::isfinite(entry.min), has_max = std::isfinite(entry.max);
  if (has_min && has_max)
    return text +
           fmt::format(" in [{}, {}]", bound_text(entry, entry.min), bound_text(entry, entry.max));
  if (has_min) return text + " >= " + bound_text(entry, entry.min);
  if (has_max) return text + " <= " + bound_text(entry, entry.max);
  return text;
}

bool in_range(const ConfigEntry& entry, double value) {
  return value >= entry.min && value <= entry.max;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Whether `text` is a whole number too large in magnitude for int64_t.
bool beyond_int64(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc::result_out_of_range && end == text.data() + text.size();
}

// The value `text` stands for under `entry`, or nothing when it has the wrong type or range.
std::optional<ConfigValue> parse_value(const ConfigEntry& entry, std::string_view text) {
  switch (entry.type) {
    case ConfigType::integer: {
      std::optional<int64_t> v = parse_number<int64_t>(text);
      if (v && in_range(entry, static_cast<double>(*v))) return *v;
      return std::nullopt;
    }
    case ConfigType::real: {
      std::optional<double> v = parse_number<double>(text);
      if (v && std::isfinite(*v) && in_range(entry, *v)) return *v;
      return std::nullopt;
    }
    case ConfigType::boolean:
      if (text == "true" || text == "false") return text == "true";
      return std::nullopt;
    case ConfigType::string: {
      const std::vector<std::string>& choices = entry.choices;
      bool allowed =
          choices.empty() || std::find(choices.begin(), choices.end(), text) != choices.end();
      if (allowed && text.find('\n') == std::string_view::npos) return std::string(text);
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The value in the file format: strings quoted, floats in the shortest form that reads back.
std::string value_text(const ConfigValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return quoted(*s);
  return std::visit([](const auto& v) { return fmt::format("{}", v); }, value);
}

// The value part of a `key = value` line: a quoted string (with \" and \\ escapes) or the
// text up to a '#' comment, blanks trimmed. Errors start with `where`.
std::string file_value(std::string_view rest, const std::string& where) {
  rest = trim(rest);
  if (rest.empty() || rest.front() != '"') return std::string(trim(rest.substr(0, rest.find('#'))));
  std::string value;
  for (size_t i = 1; i < rest.size(); ++i) {
    if (rest[i] == '\\' && i + 1 < rest.size()) {
      value += rest[++i];
    } else if (rest[i] == '"') {
      if (!is_comment_or_blank(rest.substr(i + 1)))
        fail("{}: unexpected text after the closing quote: {}", where, rest.substr(i + 1));
      return value;
    } else {
      value += rest[i];
    }
  }
  fail("{}: the string {} has no closing quote", where, rest);
}

}  // namespace

Config::Config(std::vector<ConfigEntry> schema) : schema_(std::move(schema)) {
  for (size_t i = 0; i < schema_.size(); ++i) {
    const ConfigEntry& entry = schema_[i];
    SSA_CHECK(is_name(entry.section) && is_name(entry.key), "bad config name '{}'",
              full_name(entry));
    for (size_t j = 0; j < i; ++j)
      SSA_CHECK(full_name(schema_[j]) != full_name(entry), "config key {} is declared twice",
                full_name(entry));
    SSA_CHECK(entry.min <= entry.max, "config key {} has min > max", full_name(entry));
    SSA_CHECK(entry.choices.empty() || entry.type == ConfigType::string,
              "config key {} has choices but is not a string", full_name(entry));
    std::optional<ConfigValue> value = parse_value(entry, entry.default_value);
    SSA_CHECK(value, "default '{}' of {} is not a valid {}", entry.default_value, full_name(entry),
              allowed_text(entry));
    values_.push_back(*value);
  }
}

void Config::load_file(const std::string& path) {
  constexpr size_t kMaxConfigBytes = 16 << 20;
  load_text(read_regular_file(path, "config file", kMaxConfigBytes), path);
}

void Config::load_text(std::string_view text, const std::string& origin) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";  // editors may start UTF-8 with it
  if (text.starts_with(kByteOrderMark)) text.remove_prefix(kByteOrderMark.size());
  Config loaded = *this;  // committed only if the whole text is valid
  std::string section;
  std::map<std::string, int> line_of_key;  // duplicates within one text are an error
  std::istringstream lines{std::string(text)};
  std::string raw_line;
  for (int number = 1; std::getline(lines, raw_line); ++number) {
    std::string where = fmt::format("{}:{}", origin, number);
    std::string_view line = trim(raw_line);
    if (is_comment_or_blank(line)) continue;
    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos || !is_comment_or_blank(line.substr(close + 1)))
        fail("{}: expected [section], found: {}", where, line);
      section = trim(line.substr(1, close - 1));
      loaded.keys_of(section, where);  // checks that the section exists
      continue;
    }
    size_t equals = line.find('=');
    if (equals == std::string_view::npos)
      fail("{}: expected 'key = value', '[section]' or a '#' comment, found: {}", where, line);
    std::string key(trim(line.substr(0, equals)));
    if (section.empty()) fail("{}: key '{}' comes before any [section]", where, key);
    auto [previous, inserted] = line_of_key.emplace(section + "." + key, number);
    if (!inserted)
      fail("{}: {}.{} is set twice (first on line {})", where, section, key, previous->second);
    loaded.assign(section, key, file_value(line.substr(equals + 1), where), where);
  }
  *this = std::move(loaded);
}

void Config::apply_override(std::string_view arg) {
  std::string where = fmt::format("command-line argument '{}'", arg);
  size_t equals = arg.find('=');
  std::string_view name = arg.substr(0, equals);
  size_t dot = name.find('.');
  if (!name.starts_with("--") || equals == std::string_view::npos || dot == std::string_view::npos)
    fail("{}: expected --section.key=value", where);
  assign(name.substr(2, dot - 2), name.substr(dot + 1), arg.substr(equals + 1), where);
}

std::vector<std::string> Config::apply_overrides(int argc, const char* const* argv) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg.substr(0, arg.find('='));
    if (name.starts_with("--") && name.find('.') != std::string_view::npos)
      apply_override(arg);
    else
      rest.emplace_back(arg);
  }
  return rest;
}

void Config::set(std::string_view name, std::string_view value) {
  size_t dot = name.find('.');
  std::string_view section = name.substr(0, dot);
  std::string_view key = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  assign(section, key, value, fmt::format("setting {}", name));
}

std::vector<std::string> Config::keys_of(std::string_view section, const std::string& where) const {
  std::vector<std::string> keys;
  for (const ConfigEntry& entry : schema_)
    if (entry.section == section) keys.push_back(entry.key);
  if (keys.empty())
    fail("{}: unknown config section [{}]; valid sections: {}", where, section,
         fmt::join(section_names(schema_), ", "));
  return keys;
}

void Config::assign(std::string_view section, std::string_view key, std::string_view value,
                    const std::string& where) {
  std::vector<std::string> keys = keys_of(section, where);
  auto found = std::find_if(schema_.begin(), schema_.end(), [&](const ConfigEntry& entry) {
    return entry.section == section && entry.key == key;
  });
  if (found == schema_.end())
    fail("{}: unknown config key {}.{}; valid keys of [{}]: {}", where, section, key, section,
         fmt::join(keys, ", "));
  std::optional<ConfigValue> parsed = parse_value(*found, value);
  if (!parsed)
    fail("{}: {}.{} = '{}' is not valid; expected {}{}", where, section, key, value,
         allowed_text(*found),
         found->type == ConfigType::integer && beyond_int64(value)
             ? " (it is beyond the 64-bit range)"
             : "");
  values_[found - schema_.begin()] = std::move(*parsed);
}

size_t Config::index_of(std::string_view name) const {
  auto found = std::find_if(schema_.begin(), schema_.end(),
                            [&](const ConfigEntry& entry) { return full_name(entry) == name; });
  SSA_CHECK(found != schema_.end(), "unknown config key '{}'", name);
  return found - schema_.begin();
}

const ConfigValue& Config::value_of(std::string_view name, ConfigType type) const {
  size_t i = index_of(name);
  SSA_CHECK(schema_[i].type == type, "config key {} is a {}, read as a {}", name,
            type_name(schema_[i].type), type_name(type));
  return values_[i];
}

int64_t Config::get_int(std::string_view name) const {
  return std::get<int64_t>(value_of(name, ConfigType::integer));
}
double Config::get_float(std::string_view name) const {
  return std::get<double>(value_of(name, ConfigType::real));
}
bool Config::get_bool(std::string_view name) const {
  return std::get<bool>(value_of(name, ConfigType::boolean));
}
const std::string& Config::get_string(std::string_view name) const {
  return std::get<std::string>(value_of(name, ConfigType::string));
}

std::string Config::to_text() const {
  std::string text;
  for (const std::string& section : section_names(schema_)) {
    text += fmt::format("{}[{}]\n", text.empty() ? "" : "\n", section);
    for (size_t i = 0; i < schema_.size(); ++i)
      if (schema_[i].section == section)
        text += fmt::format("{} = {}\n", schema_[i].key, value_text(values_[i]));
  }
  return text;
}

std::string Config::help_text() const {
  std::string text;
  for (const std::string& section : section_names(schema_)) {
    text += fmt::format("{}[{}]\n", text.empty() ? "" : "\n", section);
    for (const ConfigEntry& entry : schema_)
      if (entry.section == section)
        text += fmt::format("  --{} ({}; default {})\n      {}\n", full_name(entry),
                            allowed_text(entry),
                            value_text(*parse_value(entry, entry.default_value)), entry.help);
  }
  return text;
}

}  // namespace ssa
