#pragma once
// One JSON object per line (log.jsonl), built field by field; nlohmann-json writes the values.
#include <cstdint>
#include <cstdio>
#include <string>

namespace ssa {

// {"key": value, ...} in the order added. Doubles are written in the shortest form that reads
// back exactly, NaN and infinities as null (JSON has neither); strings that are not valid UTF-8
// get U+FFFD in place of the bad bytes.
class JsonLine {
 public:
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, int64_t value);
  JsonLine& add(const std::string& key, const std::string& value);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonLine& member(const std::string& key, const std::string& value_json);
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

// Drops the lines of the log at `path` whose "step" is past `step` (a run resumed from the
// checkpoint of `step` logs those steps again), and a last line without its newline (a write
// interrupted). Rewrites the file whole (the lines kept as they were) and returns how many it
// dropped; a missing file drops none.
int64_t drop_log_lines_after(const std::string& path, int64_t step);
// True when the log at `path` holds a validation line (val_loss) of `step`.
bool has_validation_at(const std::string& path, int64_t step);

}  // namespace ssa
