#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <set>

#include "eval/svg.h"
#include "small_disk.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Every first capture group of `pattern` in `svg`, in document order.
std::vector<std::string> captures(const std::string& svg, const std::string& pattern) {
  std::regex regex(pattern);
  std::vector<std::string> found;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), regex); it != std::sregex_iterator();
       ++it)
    found.push_back((*it)[1]);
  return found;
}

std::vector<std::string> texts_of(const std::string& svg, const std::string& role) {
  return captures(svg, "<text class=\"" + role + "\"[^>]*>([^<]*)</text>");
}

// The number of points of each polyline.
std::vector<size_t> polyline_sizes(const std::string& svg) {
  std::vector<size_t> sizes;
  for (const std::string& points : captures(svg, "<polyline [^>]*points=\"([^\"]*)\"/>"))
    sizes.push_back(captures(points, "(-?[0-9.]+,-?[0-9.]+)").size());
  return sizes;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t found = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++found;
  return found;
}

void check_well_formed(const std::string& svg) {
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(count(svg, "<svg") == 1);
  CHECK(count(svg, "<text ") == count(svg, "</text>"));
  CHECK(count(svg, "<g ") == count(svg, "</g>"));
  CHECK(count(svg, "<polyline ") == captures(svg, "(<polyline [^<>]*/>)").size());
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
}

Series ramp(const std::string& label, int points) {
  Series series{.label = label};
  for (int i = 0; i < points; ++i) {
    series.x.push_back(i);
    series.y.push_back(std::sqrt(i));
  }
  return series;
}

}  // namespace

TEST_CASE("svg: a line plot is well formed, with escaped title, axis labels and legend") {
  PlotOptions options{.title = "loss <full & sparse>", .x_label = "step", .y_label = "loss"};
  std::string svg = line_plot({ramp("full <&>", 10), ramp("sparse", 10), ramp("", 10)}, options);
  check_well_formed(svg);
  CHECK(texts_of(svg, "title") == std::vector<std::string>{"loss &lt;full &amp; sparse&gt;"});
  CHECK(texts_of(svg, "x-label") == std::vector<std::string>{"step"});
  CHECK(texts_of(svg, "y-label") == std::vector<std::string>{"loss"});
  CHECK(texts_of(svg, "legend-label") == std::vector<std::string>{"full &lt;&amp;&gt;", "sparse"});
  CHECK(svg.find("<&>") == std::string::npos);
  std::vector<std::string> strokes = captures(svg, "<polyline [^>]*stroke=\"(#[0-9a-f]{6})\"");
  CHECK(std::set<std::string>(strokes.begin(), strokes.end()).size() == 3);
}

TEST_CASE("svg: text that is not UTF-8, or holds control characters, gets U+FFFD") {
  // A title from a file name whose bytes are not UTF-8 (\xff\xfe), and a legend with a control
  // character, which XML 1.0 does not allow either.
  PlotOptions options{.title = "ppl (bad\xff\xfe.h5)", .x_label = "step", .y_label = "loss"};
  std::string svg = line_plot({ramp("run\x01 \xc3\xa9", 10)}, options);
  check_well_formed(svg);
  CHECK(texts_of(svg, "title") == std::vector<std::string>{"ppl (bad\uFFFD\uFFFD.h5)"});
  CHECK(texts_of(svg, "legend-label") == std::vector<std::string>{"run\uFFFD \u00e9"});
}

TEST_CASE("svg: linear ticks are nice numbers covering the data") {
  Series series{.label = "a", .x = {0, 10}, .y = {0.13, 0.92}};
  std::string svg = line_plot({series}, {});
  CHECK(texts_of(svg, "x-tick") == std::vector<std::string>{"0", "2", "4", "6", "8", "10"});
  CHECK(texts_of(svg, "y-tick") == std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"});
  Series shifted{.label = "b", .x = {-3, 7}, .y = {3.21, 3.48}};
  svg = line_plot({shifted}, {});
  CHECK(texts_of(svg, "x-tick") == std::vector<std::string>{"-4", "-2", "0", "2", "4", "6", "8"});
  CHECK(texts_of(svg, "y-tick") ==
        std::vector<std::string>{"3.2", "3.25", "3.3", "3.35", "3.4", "3.45", "3.5"});
}

TEST_CASE("svg: log axes tick at powers of two for budgets and powers of ten for wide ranges") {
  Series budgets{
      .label = "ppl", .x = {1, 2, 4, 8, 16, 32, 64}, .y = {1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.5, 1}};
  std::string svg = line_plot({budgets}, {.log_x = true, .log_y = true});
  check_well_formed(svg);
  CHECK(texts_of(svg, "x-tick") == std::vector<std::string>{"1", "2", "4", "8", "16", "32", "64"});
  CHECK(texts_of(svg, "y-tick") == std::vector<std::string>{"0.0001", "0.001", "0.01", "0.1", "1"});
  Series narrow{.label = "loss", .x = {1, 2}, .y = {2.5, 35}};
  CHECK(texts_of(line_plot({narrow}, {.log_y = true}), "y-tick") ==
        std::vector<std::string>{"2", "4", "8", "16", "32", "64"});
  Series small{.label = "lr", .x = {1, 2}, .y = {3e-5, 6e-4}};
  CHECK(texts_of(line_plot({small}, {.log_y = true}), "y-tick") ==
        std::vector<std::string>{"2e-05", "5e-05", "0.0001", "0.0002", "0.0005", "0.001"});
}

TEST_CASE("svg: one polyline point per plotted point; markers only for short series") {
  CHECK(polyline_sizes(line_plot({ramp("short", 32)}, {})) == std::vector<size_t>{32});
  CHECK(count(line_plot({ramp("short", 32)}, {}), "<circle ") == 32);
  CHECK(polyline_sizes(line_plot({ramp("long", 100)}, {})) == std::vector<size_t>{100});
  CHECK(count(line_plot({ramp("long", 100)}, {}), "<circle ") == 0);
}

TEST_CASE("svg: non-finite points (and non-positive ones on a log axis) split the line") {
  Series gappy{
      .label = "g", .x = {1, 2, 3, 4, 5, 6, 7, kNaN, 9}, .y = {1, 2, kNaN, 4, 5, kInf, 7, 8, 9}};
  std::string svg = line_plot({gappy}, {});
  check_well_formed(svg);
  CHECK(polyline_sizes(svg) == std::vector<size_t>{2, 2, 1, 1});
  CHECK(count(svg, "<circle ") == 6);
  Series with_zero{.label = "z", .x = {0, 1, 2, 4}, .y = {5, 6, 7, 8}};
  CHECK(polyline_sizes(line_plot({with_zero}, {.log_x = true})) == std::vector<size_t>{3});
}

TEST_CASE("svg: no data gives a plot that says so; one point gives an axis around it") {
  Series empty{.label = "nothing"};
  Series all_nan{.label = "nan", .x = {1, 2}, .y = {kNaN, kNaN}};
  for (const std::vector<Series>& series :
       {std::vector<Series>{}, std::vector<Series>{empty}, std::vector<Series>{empty, all_nan}}) {
    std::string svg = line_plot(series, {.title = "t"});
    check_well_formed(svg);
    CHECK(texts_of(svg, "note") == std::vector<std::string>{"no data"});
    CHECK(count(svg, "<polyline") == 0);
  }
  Series single{.label = "one", .x = {8}, .y = {3}};
  std::string svg = line_plot({single}, {.log_x = true});
  check_well_formed(svg);
  CHECK(texts_of(svg, "x-tick") == std::vector<std::string>{"4", "8", "16"});
  CHECK(texts_of(svg, "y-tick").size() >= 2);
  CHECK(count(svg, "<circle ") == 1);
  CHECK(error_of([] {
          line_plot({Series{.label = "bad", .x = {1, 2}, .y = {1}}}, {});
        }).find("bad") != std::string::npos);
}

TEST_CASE("svg: a bar plot has one bar per finite value and a label per slot") {
  std::string svg = bar_plot({"0", "1", "2", "3<"}, {0.9, 0.75, kNaN, 0.5},
                             {.title = "captured mass", .x_label = "layer"});
  check_well_formed(svg);
  CHECK(count(svg, "<rect class=\"bar\"") == 3);
  CHECK(texts_of(svg, "x-tick") == std::vector<std::string>{"0", "1", "2", "3&lt;"});
  CHECK(texts_of(svg, "y-tick").front() == "0");
  CHECK(texts_of(svg, "y-tick").back() == "1");
  CHECK(texts_of(bar_plot({}, {}, {}), "note") == std::vector<std::string>{"no data"});
  CHECK(!error_of([] { bar_plot({"a"}, {1, 2}, {}); }).empty());
}

TEST_CASE("svg: write_text_file replaces the file whole and names the path on failure") {
  TempDir dir("eval_svg");
  std::string path = dir.file("plot.svg");
  write_text_file(path, "old");
  write_text_file(path, "<svg></svg>\n");
  std::ifstream file(path);
  CHECK(std::string(std::istreambuf_iterator<char>(file), {}) == "<svg></svg>\n");
  CHECK(!std::filesystem::exists(path + ".tmp"));
  std::string missing = dir.file("no/such/dir/plot.svg");
  CHECK(error_of([&] { write_text_file(missing, "x"); }).find(missing) != std::string::npos);
}

TEST_CASE("svg: write_text_file on a full disk names the reason and leaves no temporary file") {
  ssa::test::SmallDisk disk("eval_svg_full", 12 << 10);
  if (!disk.mounted()) {
    MESSAGE(disk.why_not());
    return;
  }
  const std::string path = disk.file("plot.svg");
  const std::string error = error_of([&] { write_text_file(path, std::string(64 << 10, 'x')); });
  CHECK_MESSAGE(ssa::test::contains_all(error, {path + ".tmp", "No space left on device"}), error);
  CHECK(!std::filesystem::exists(path + ".tmp"));
  CHECK(!std::filesystem::exists(path));
}
