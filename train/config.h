#pragma once
// A typed key/value config: a schema given by the caller, values from an INI-like file and
// `--section.key=value` overrides, every value checked against its type and range.
//
// File format (also what to_text() writes):
//   # a comment
//   [section]
//   key = value        # a trailing comment
//   name = "a string"  # quotes are stripped; quote a string that holds '#' or edge spaces
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ssa {

enum class ConfigType : uint8_t { string, integer, real, boolean };

struct ConfigEntry {
  std::string section{};
  std::string key{};
  ConfigType type = ConfigType::string;
  std::string default_value{};  // written as in a config file
  std::string help{};
  double min = -std::numeric_limits<double>::infinity();  // integer and real
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices{};  // string only; empty allows any string
  bool operator==(const ConfigEntry& other) const = default;
};

using ConfigValue = std::variant<std::string, int64_t, double, bool>;

class Config {
 public:
  // Every entry starts at its default; a malformed schema or default is an SSA_CHECK failure.
  explicit Config(std::vector<ConfigEntry> schema);

  // A file or text sets the keys it names; on an error nothing changes.
  void load_file(const std::string& path);
  // Reads config text; `origin` names where it came from in error messages.
  void load_text(std::string_view text, const std::string& origin);
  // One "--section.key=value" argument; the value is taken as it is (no quotes, no comment).
  void apply_override(std::string_view arg);
  // Applies every "--section.key=..." argument of argv[1..] and returns the others in order.
  std::vector<std::string> apply_overrides(int argc, const char* const* argv);
  // Sets "section.key" from the value's text, as it is; validated like a file value.
  void set(std::string_view name, std::string_view value);

  // Typed reads of "section.key"; an unknown key or another type is an SSA_CHECK failure.
  int64_t get_int(std::string_view name) const;
  double get_float(std::string_view name) const;
  bool get_bool(std::string_view name) const;
  const std::string& get_string(std::string_view name) const;

  // Every key, sections in schema order, in the file format (load_text reads it back).
  std::string to_text() const;
  // Every key with its type, default, range or choices and meaning, grouped by section.
  std::string help_text() const;

  const std::vector<ConfigEntry>& schema() const { return schema_; }
  bool operator==(const Config& other) const = default;

 private:
  size_t index_of(std::string_view name) const;
  // The keys of `section`; an unknown section is an error (starting with `where`).
  std::vector<std::string> keys_of(std::string_view section, const std::string& where) const;
  const ConfigValue& value_of(std::string_view name, ConfigType type) const;
  // Assigns after checking section, key, type and range; errors start with `where`.
  void assign(std::string_view section, std::string_view key, std::string_view value,
              const std::string& where);

  std::vector<ConfigEntry> schema_;
  std::vector<ConfigValue> values_;  // parallel to schema_
};

}  // namespace ssa
