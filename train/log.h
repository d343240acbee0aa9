#pragma once
// One JSON object per line (log.jsonl), built field by field.
#include <cstdio>
#include <string>

namespace ssa {

class JsonLine {
 public:
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, int64_t value);
  JsonLine& add(const std::string& key, const std::string& value);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& name);
  std::string body_;
};

// Appends lines to a file, flushing each (a crash loses at most the line being written).
class JsonlFile {
 public:
  explicit JsonlFile(const std::string& path);
  ~JsonlFile();
  JsonlFile(const JsonlFile&) = delete;
  JsonlFile& operator=(const JsonlFile&) = delete;
  void write(const JsonLine& line);

 private:
  std::FILE* file_;
};

std::string json_escape(const std::string& text);

}  // namespace ssa
