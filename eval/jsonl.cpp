#include "eval/jsonl.h"

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string_view>

#include "core/error.h"

namespace ssa {
namespace {

void append_utf8(std::string& out, uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xc0 | code >> 6);
    out += static_cast<char>(0x80 | (code & 0x3f));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xe0 | code >> 12);
    out += static_cast<char>(0x80 | (code >> 6 & 0x3f));
    out += static_cast<char>(0x80 | (code & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | code >> 18);
    out += static_cast<char>(0x80 | (code >> 12 & 0x3f));
    out += static_cast<char>(0x80 | (code >> 6 & 0x3f));
    out += static_cast<char>(0x80 | (code & 0x3f));
  }
}

bool is_one_of(char c, std::string_view set) { return set.find(c) != std::string_view::npos; }

// A recursive-descent parser of one flat JSON object.
class LineParser {
 public:
  LineParser(std::string_view text, const std::string& where) : text_(text), where_(where) {}

  JsonRecord record() {
    expect('{', "'{'");
    JsonRecord record;
    if (!consume('}')) {
      do member(record);
      while (consume(','));
      expect('}', "',' or '}'");
    }
    skip_space();
    if (pos_ != text_.size()) expected("the end of the line after '}'");
    return record;
  }

 private:
  [[noreturn]] void expected(std::string_view what) const {
    fail("{}: expected {} at column {}", where_, what, pos_ + 1);
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void skip_space() {
    while (pos_ < text_.size() && is_one_of(text_[pos_], " \t\r\n")) ++pos_;
  }

  bool consume(char c) {
    skip_space();
    if (!at(c)) return false;
    ++pos_;
    return true;
  }

  void expect(char c, std::string_view what) {
    if (!consume(c)) expected(what);
  }

  void member(JsonRecord& record) {
    skip_space();
    if (!at('"')) expected("a key in double quotes");
    std::string key = string();
    expect(':', "':' after a key");
    if (!record.emplace(key, value()).second) fail("{}: duplicate key \"{}\"", where_, key);
  }

  JsonValue value() {
    skip_space();
    if (at('"')) return string();
    if (literal("null")) return nullptr;
    if (literal("true")) return true;
    if (literal("false")) return false;
    return number();
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  double number() {
    size_t end = pos_;
    while (end < text_.size() && is_one_of(text_[end], "0123456789+-.eE")) ++end;
    double number = 0;
    auto [stop, error] = std::from_chars(text_.data() + pos_, text_.data() + end, number);
    if (end == pos_ || error != std::errc() || stop != text_.data() + end)
      expected("a number, a string, true, false or null");
    pos_ = end;
    return number;
  }

  // At the opening quote; leaves pos_ after the closing one.
  std::string string() {
    std::string out;
    for (++pos_; !at('"'); ++pos_) {
      if (pos_ == text_.size()) expected("'\"' closing the string");
      if (at('\\')) escape(out);
      else out += text_[pos_];
    }
    ++pos_;
    return out;
  }

  // At the backslash; leaves pos_ on the escape's last character.
  void escape(std::string& out) {
    char kind = ++pos_ < text_.size() ? text_[pos_] : '\0';
    switch (kind) {
      case '"': case '\\': case '/': out += kind; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': append_utf8(out, code_point()); break;
      default: expected("an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
    }
  }

  // At the 'u' of \uXXXX; a high surrogate must be followed by a low one.
  uint32_t code_point() {
    uint32_t code = hex4();
    if (code < 0xd800 || code > 0xdfff) return code;
    if (code > 0xdbff || text_.substr(pos_ + 1, 2) != "\\u") expected("a surrogate pair");
    pos_ += 2;
    uint32_t low = hex4();
    if (low < 0xdc00 || low > 0xdfff) expected("a low surrogate \\uDC00-\\uDFFF");
    return 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
  }

  // At the 'u'; leaves pos_ on the last hex digit.
  uint32_t hex4() {
    uint32_t code = 0;
    const char* digits = text_.data() + pos_ + 1;
    if (pos_ + 4 >= text_.size() || std::from_chars(digits, digits + 4, code, 16).ptr != digits + 4)
      expected("four hex digits after \\u");
    pos_ += 4;
    return code;
  }

  std::string_view text_;
  const std::string& where_;
  size_t pos_ = 0;
};

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

const double* number_in(const JsonRecord& record, const std::string& key) {
  auto found = record.find(key);
  return found == record.end() ? nullptr : std::get_if<double>(&found->second);
}

}  // namespace

JsonRecord parse_json_line(const std::string& line, const std::string& where) {
  return LineParser(line, where).record();
}

std::vector<JsonRecord> read_jsonl(const std::string& path) {
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
