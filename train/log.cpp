#include "train/log.h"

#include <cerrno>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"

namespace ssa {

std::string json_escape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out;
}

void JsonLine::key(const std::string& name) {
  if (!body_.empty()) body_ += ", ";
  body_ += fmt::format("\"{}\": ", json_escape(name));
}

JsonLine& JsonLine::add(const std::string& name, double value) {
  key(name);
  body_ += std::isfinite(value) ? fmt::format("{}", value) : "null";  // shortest exact form; JSON has no NaN
  return *this;
}

JsonLine& JsonLine::add(const std::string& name, int64_t value) {
  key(name);
  body_ += fmt::format("{}", value);
  return *this;
}

JsonLine& JsonLine::add(const std::string& name, const std::string& value) {
  key(name);
  body_ += fmt::format("\"{}\"", json_escape(value));
  return *this;
}

JsonlFile::JsonlFile(const std::string& path) : file_(std::fopen(path.c_str(), "a")) {
  if (file_ == nullptr) fail("cannot open log file {}: {}", path, std::strerror(errno));
}

JsonlFile::~JsonlFile() { std::fclose(file_); }

void JsonlFile::write(const JsonLine& line) {
  std::fputs((line.str() + "\n").c_str(), file_);
  std::fflush(file_);
}

}  // namespace ssa
