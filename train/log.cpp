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

namespace {

// The log's text ("" when there is none).
std::string log_text(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  constexpr size_t kMaxLogBytes = size_t{1} << 32;
  return read_regular_file(path, "log file", kMaxLogBytes);
}

// Calls use(line, record, cut_short) for each line of `text`: its parsed object (discarded
// when it does not parse), and whether it is a last line without its newline.
template <typename Use>
void for_each_line(const std::string& text, Use use) {
  std::istringstream lines(text);
  std::string line;
  for (size_t end = 0; std::getline(lines, line);) {
    end += line.size() + 1;
    use(line, nlohmann::json::parse(line, nullptr, false), end > text.size());
  }
}

// The record's integer "step", or −1.
int64_t step_of(const nlohmann::json& record) {
  const bool has_step =
      record.is_object() && record.contains("step") && record["step"].is_number_integer();
  return has_step ? record["step"].get<int64_t>() : -1;
}

}  // namespace

int64_t drop_log_lines_after(const std::string& path, int64_t step) {
  std::string kept;
  int64_t dropped = 0;
  for_each_line(log_text(path),
                [&](const std::string& line, const nlohmann::json& record, bool cut_short) {
                  if (step_of(record) > step || cut_short)
                    ++dropped;
                  else
                    kept += line + "\n";
                });
  if (dropped > 0) write_file_replacing(path, {std::as_bytes(std::span(kept.data(), kept.size()))});
  return dropped;
}

bool has_validation_at(const std::string& path, int64_t step) {
  bool found = false;
  for_each_line(log_text(path), [&](const std::string&, const nlohmann::json& record, bool) {
    found = found || (step_of(record) == step && record.contains("val_loss"));
  });
  return found;
}

}  // namespace ssa
