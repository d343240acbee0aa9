#include <doctest/doctest.h>

#include <fstream>

#include "core/files.h"
#include "test_data_util.h"
#include "train/log.h"

using namespace ssa;
using ssa::test::TempDir;

TEST_CASE("log lines of steps past a resumed step are dropped; the others are kept as they were") {
  TempDir dir("log_drop");
  const std::string path = dir.file("log.jsonl");
  const std::string kept =
      "{\"step\": 1, \"loss\": 2.5}\n"
      "{\"step\": 2, \"loss\": 2.25}\n"
      "{\"step\": 2, \"val_loss\": 2.5}\n"
      "not json\n";
  std::ofstream(path) << kept << "{\"step\": 3, \"loss\": 2}\n{\"step\": 4, \"loss\": 1.5}\n";
  CHECK(drop_log_lines_after(path, 2) == 2);
  CHECK(read_regular_file(path, "log", 1 << 20) == kept);
  CHECK(drop_log_lines_after(path, 2) == 0);
  CHECK(read_regular_file(path, "log", 1 << 20) == kept);
  CHECK(drop_log_lines_after(dir.file("absent.jsonl"), 2) == 0);
  std::ofstream(path, std::ios::app) << "{\"step\": 2, \"lo";  // a write cut short
  CHECK(drop_log_lines_after(path, 2) == 1);
  CHECK(read_regular_file(path, "log", 1 << 20) == kept);
}

TEST_CASE("a validation line of a step is found; a training line of it is not one") {
  TempDir dir("log_validation");
  const std::string path = dir.file("log.jsonl");
  std::ofstream(path)
      << "{\"step\": 1, \"loss\": 2.5}\nnot json\n{\"step\": 2, \"val_loss\": 2.5}\n";
  CHECK(has_validation_at(path, 2));
  CHECK(!has_validation_at(path, 1));
  CHECK(!has_validation_at(path, 3));
  CHECK(!has_validation_at(dir.file("absent.jsonl"), 2));
}
