#include "eval/jsonl.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/error.h"
#include "core/files.h"

namespace ssa {
namespace {

using Json = nlohmann::json;

// What nlohmann-json's parser met where it failed: its message less the "[json.exception...]
// parse error at line L, column C: syntax error while parsing X - " head and the "; expected Y"
// tail ("unexpected number literal", "invalid literal; last read: 'n'").
std::string what_was_found(const std::string& message) {
  std::string found = message.substr(message.find(": ") + 2);
  const size_t dash = found.find(" - ");
  if (found.starts_with("syntax error") && dash != std::string::npos) found.erase(0, dash + 3);
  return found.substr(0, found.rfind("; expected "));
}

// The events of nlohmann-json's SAX parser for one line, turned into a JsonRecord; anything but
// one flat object is an error naming the line (`where`).
class RecordReader {
 public:
  explicit RecordReader(const std::string& where) : where_(where) {}

  JsonRecord take() { return std::move(record_); }

  bool null() { return value(nullptr); }
  bool boolean(bool flag) { return value(flag); }
  bool number_integer(Json::number_integer_t number) { return value(static_cast<double>(number)); }
  bool number_unsigned(Json::number_unsigned_t number) {
    return value(static_cast<double>(number));
  }
  bool number_float(Json::number_float_t number, const Json::string_t&) { return value(number); }
  bool string(Json::string_t& text) { return value(std::move(text)); }
  bool binary(Json::binary_t&) { return nested("binary data"); }
  bool key(Json::string_t& name) {
    key_ = std::move(name);
    return true;
  }
  bool start_object(size_t) {
    if (state_ != State::start) return nested("an object");
    state_ = State::members;
    return true;
  }
  bool end_object() {
    state_ = State::done;
    return true;
  }
  bool start_array(size_t) { return nested("an array"); }
  bool end_array() { return true; }

  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& error) {
    fail("{}: expected {} at column {} ({})", where_, expectation(error.what()), position,
         what_was_found(error.what()));
  }

 private:
  enum class State { start, members, done };

  bool value(JsonValue value) {
    if (state_ != State::members) fail("{}: expected '{{' at the start of the line", where_);
    if (!record_.emplace(key_, std::move(value)).second)
      fail("{}: duplicate key \"{}\"", where_, key_);
    return true;
  }

  bool nested(const char* what) {
    if (state_ != State::members) fail("{}: expected '{{' at the start of the line", where_);
    fail("{}: expected a number, a string, true, false or null under \"{}\", got {}", where_, key_,
         what);
  }

  // What the line lacks where the parse failed, from how far it got and the parser's context
  // ("... while parsing object separator - ...").
  std::string expectation(const std::string& message) const {
    if (state_ == State::start) return "'{'";
    if (state_ == State::done) return "the end of the line after '}'";
    if (message.find("while parsing object separator") != std::string::npos)
      return "':' after a key";
    if (message.find("while parsing object key") != std::string::npos)
      return "a key in double quotes";
    if (message.find("while parsing object ") != std::string::npos) return "',' or '}'";
    return "a number, a string, true, false or null";
  }

  const std::string& where_;
  State state_ = State::start;
  std::string key_;
  JsonRecord record_;
};

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

const double* number_in(const JsonRecord& record, const std::string& key) {
  auto found = record.find(key);
  return found == record.end() ? nullptr : std::get_if<double>(&found->second);
}

}  // namespace

JsonRecord parse_json_line(const std::string& line, const std::string& where) {
  RecordReader reader(where);
  Json::sax_parse(line, &reader);
  return reader.take();
}

std::vector<JsonRecord> read_jsonl(const std::string& path) {
  require_regular_file(path, "JSON lines file");  // a directory read as empty, a FIFO blocks
  std::ifstream file(path);
  if (!file) fail("cannot open {}: {}", path, std::strerror(errno));
  std::vector<JsonRecord> records;
  std::string line;
  for (int64_t number = 1; std::getline(file, line); ++number)
    if (!blank(line)) records.push_back(parse_json_line(line, fmt::format("{}:{}", path, number)));
  if (file.bad()) fail("cannot read {}", path);
  return records;
}

Series series_of(const std::vector<JsonRecord>& records, const std::string& y_key,
                 const std::string& x_key) {
  Series series{.label = y_key};
  for (const JsonRecord& record : records) {
    const double* x = number_in(record, x_key);
    const double* y = number_in(record, y_key);
    if (x == nullptr || y == nullptr) continue;
    series.x.push_back(*x);
    series.y.push_back(*y);
  }
  return series;
}

}  // namespace ssa
