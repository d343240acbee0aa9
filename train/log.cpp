#include "train/log.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/files.h"

namespace ssa {
namespace {

std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

JsonLine& JsonLine::member(const std::string& key, const std::string& value_json) {
  if (!body_.empty()) body_ += ", ";
  body_ += json_text(key) + ": " + value_json;
  return *this;
}

JsonLine& JsonLine::add(const std::string& key, double value) {
  return member(key, json_text(value));
}

JsonLine& JsonLine::add(const std::string& key, int64_t value) {
  return member(key, json_text(value));
}

JsonLine& JsonLine::add(const std::string& key, const std::string& value) {
  return member(key, json_text(value));
}

JsonlFile::JsonlFile(const std::string& path) : file_(std::fopen(path.c_str(), "a")) {
  if (file_ == nullptr) fail("cannot open log file {}: {}", path, std::strerror(errno));
}

JsonlFile::~JsonlFile() { std::fclose(file_); }

void JsonlFile::write(const JsonLine& line) {
  std::fputs((line.str() + "\n").c_str(), file_);
  std::fflush(file_);
}

int64_t drop_log_lines_after(const std::string& path, int64_t step) {
  if (!std::filesystem::exists(path)) return 0;
  constexpr size_t kMaxLogBytes = size_t{1} << 32;
  const std::string text = read_regular_file(path, "log file", kMaxLogBytes);
  std::istringstream lines(text);
  std::string kept, line;
  int64_t dropped = 0;
  for (size_t end = 0; std::getline(lines, line);) {
    end += line.size() + 1;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    const bool later = record.is_object() && record.contains("step") &&
                       record["step"].is_number_integer() && record["step"].get<int64_t>() > step;
    const bool cut_short = end > text.size();  // the last line, its write interrupted
    if (later || cut_short)
      ++dropped;
    else
      kept += line + "\n";
  }
  if (dropped > 0) write_file_replacing(path, {std::as_bytes(std::span(kept.data(), kept.size()))});
  return dropped;
}

}  // namespace ssa
