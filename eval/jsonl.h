#pragma once
// Reading log.jsonl files (train/log.h writes them) with nlohmann-json: one flat JSON object per
// line, string keys to numbers, strings, true, false or null (a non-finite number was logged).
#include <cstddef>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "eval/svg.h"

namespace ssa {

using JsonValue = std::variant<std::nullptr_t, bool, double, std::string>;
using JsonRecord = std::map<std::string, JsonValue>;

// `where` ("file:line") begins every error, which says what was expected at which column.
JsonRecord parse_json_line(const std::string& line, const std::string& where);

// Every line of `path` that is not blank, in file order.
std::vector<JsonRecord> read_jsonl(const std::string& path);

// The points (record[x_key], record[y_key]) of the records where both are numbers, in order,
// labelled y_key.
Series series_of(const std::vector<JsonRecord>& records, const std::string& y_key,
                 const std::string& x_key = "step");

}  // namespace ssa
