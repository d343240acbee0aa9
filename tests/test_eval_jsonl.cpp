#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>

#include "eval/jsonl.h"
#include "test_data_util.h"
#include "train/log.h"

using namespace ssa;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

void write_lines(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("jsonl: lines written by JsonLine read back, escapes and null included") {
  TempDir dir("eval_jsonl");
  std::string path = dir.file("log.jsonl");
  std::string awkward = "a \"quoted\" \\ path\nnext\tcol\r\x01 caf\xc3\xa9";
  {
    JsonlFile log(path);
    log.write(JsonLine().add("step", int64_t{10}).add("loss", 3.25).add("note", awkward));
    log.write(JsonLine().add("step", int64_t{20}).add("loss", std::nan("")).add("lr", 3e-4));
  }
  std::vector<JsonRecord> records = read_jsonl(path);
  REQUIRE(records.size() == 2);
  CHECK(std::get<double>(records[0].at("step")) == 10);
  CHECK(std::get<double>(records[0].at("loss")) == 3.25);
  CHECK(std::get<std::string>(records[0].at("note")) == awkward);
  CHECK(std::holds_alternative<std::nullptr_t>(records[1].at("loss")));
  CHECK(std::get<double>(records[1].at("lr")) == doctest::Approx(3e-4));
}

TEST_CASE("jsonl: true, false, negative exponents, \\u escapes and an empty object") {
  JsonRecord record = parse_json_line(
      R"( {"on": true, "off": false, "x": -1.5e-3, "e": "caf\u00e9 \ud83d\ude00 \/"} )", "t:1");
  CHECK(std::get<bool>(record.at("on")));
  CHECK(!std::get<bool>(record.at("off")));
  CHECK(std::get<double>(record.at("x")) == -1.5e-3);
  CHECK(std::get<std::string>(record.at("e")) == "caf\xc3\xa9 \xf0\x9f\x98\x80 /");
  CHECK(parse_json_line("{}", "t:2").empty());
}

TEST_CASE("jsonl: a malformed line is an error naming the file, the line and what was expected") {
  TempDir dir("eval_jsonl_bad");
  std::string path = dir.file("log.jsonl");
  write_lines(path, "{\"step\": 1, \"loss\": 2.5}\n\n{\"step\": 2, \"loss\" 2.4}\n");
  std::string message = error_of([&] { read_jsonl(path); });
  CHECK(message.find(path + ":3:") != std::string::npos);
  CHECK(message.find("expected ':' after a key") != std::string::npos);

  for (const char* line :
       {"", "[1]", "{\"a\": 1", "{\"a\": 1} x", "{\"a\": {\"b\": 1}}", "{\"a\": 1.2.3}",
        "{\"a\": nan}", "{\"a\": \"open}", "{\"a\": \"\\q\"}", "{\"a\": \"\\u12\"}",
        "{\"a\": \"\\ud83d\"}", "{a: 1}", "{\"a\": 1,}", "{\"a\": 1, \"a\": 2}"}) {
    CAPTURE(line);
    CHECK(error_of([&] {
            parse_json_line(line, "runs/x/log.jsonl:7");
          }).starts_with("runs/x/log.jsonl:7: "));
  }
  CHECK(error_of([&] { read_jsonl(dir.file("missing.jsonl")); }).find("missing.jsonl") !=
        std::string::npos);
}

TEST_CASE("jsonl: series_of keeps the records where both keys are numbers") {
  std::vector<JsonRecord> records = {
      {{"step", 0.0}, {"loss", 4.0}},
      {{"step", 10.0}, {"loss", nullptr}},
      {{"step", 20.0}},
      {{"step", 30.0}, {"loss", std::string("3.0")}},
      {{"loss", 3.5}},
      {{"step", 40.0}, {"loss", 3.0}},
  };
  Series loss = series_of(records, "loss");
  CHECK(loss.label == "loss");
  CHECK(loss.x == std::vector<double>{0, 40});
  CHECK(loss.y == std::vector<double>{4, 3});
  CHECK(series_of(records, "loss", "missing").x.empty());
}

TEST_CASE("jsonl: JsonLine's text, and every finite double reads back bit for bit") {
  CHECK(
      JsonLine()
          .add("step", int64_t{10})
          .add("loss", 3.25)
          .add("lr", 3e-4)
          .add("ms", 12.0)
          .add("grad_norm", std::numeric_limits<double>::infinity())
          .add("mode", std::string("ssa"))
          .str() ==
      R"({"step": 10, "loss": 3.25, "lr": 0.0003, "ms": 12.0, "grad_norm": null, "mode": "ssa"})");
  CHECK(JsonLine().str() == "{}");

  std::vector<double> values{
      0.0,  -0.0, 0.1,          1.0 / 3, -2.5e-308, 4.9e-324, 1.7976931348623157e308,
      1e16, 1e-5, 123456789.125};
  uint64_t bits = 0x9e3779b97f4a7c15u;
  while (values.size() < 2000) {  // random bit patterns: every exponent, sign and mantissa
    bits ^= bits << 13, bits ^= bits >> 7, bits ^= bits << 17;
    double value;
    std::memcpy(&value, &bits, sizeof value);
    if (std::isfinite(value)) values.push_back(value);
  }
  for (double value : values) {
    const std::string line = JsonLine().add("x", value).str();
    const double read = std::get<double>(parse_json_line(line, "t:1").at("x"));
    CAPTURE(line);
    CHECK(std::memcmp(&read, &value, sizeof value) == 0);
  }
  const int64_t big = int64_t{1} << 53;
  CHECK(std::get<double>(parse_json_line(JsonLine().add("n", big).str(), "t:1").at("n")) == 0x1p53);
}

TEST_CASE("jsonl: a string that is not UTF-8 is written with U+FFFD and reads back") {
  const std::string line = JsonLine()
                               .add("sample", std::string("ab\xff"
                                                          "c"))
                               .str();
  CHECK(std::get<std::string>(parse_json_line(line, "t:1").at("sample")) ==
        "ab\xef\xbf\xbd"
        "c");
}
