#include "train/log.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

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

}  // namespace ssa
