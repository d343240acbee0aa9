#include "eval/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/files.h"

namespace ssa {
namespace {

constexpr size_t kMaxMarkedPoints = 32;
constexpr double kCharWidth = 7;  // a 12px sans-serif glyph, on average
constexpr double kLegendRow = 16;
constexpr int kMaxPowerTicks = 8;
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char* colour(size_t index) { return kPalette[index % std::size(kPalette)]; }

// `text` with each byte sequence that is not UTF-8 replaced by U+FFFD, as the JSON results
// are (nlohmann-json's replace handler): an XML document must be UTF-8 throughout.
std::string valid_utf8(const std::string& text) {
  const std::string quoted =
      nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(quoted).get<std::string>();
}

// XML 1.0 allows no control character but tab, newline and carriage return.
bool xml_control_character(char c) {
  return static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r';
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : valid_utf8(text)) {
    if (xml_control_character(c)) {
      out += "\uFFFD";
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool plottable(double value, bool log) { return std::isfinite(value) && (!log || value > 0); }

// The 1, 2, 5 or 10 times a power of ten nearest to a fifth of `span` (Heckbert's nice numbers).
double nice_step(double span) {
  double raw = span / 5;
  double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double mantissa = raw / magnitude;
  return magnitude * (mantissa < 1.5 ? 1 : mantissa < 3 ? 2 : mantissa < 7 ? 5 : 10);
}

std::vector<double> linear_ticks(double lo, double hi) {
  double step = nice_step(hi - lo);
  std::vector<double> ticks;
  for (double k = std::floor(lo / step + 1e-9); k <= std::ceil(hi / step - 1e-9); ++k)
    ticks.push_back(k * step);
  return ticks;
}

// Exponents of `base` from the largest power <= lo to the smallest >= hi.
std::pair<int, int> exponent_range(double lo, double hi, double base) {
  int first = static_cast<int>(std::floor(std::log(lo) / std::log(base) + 1e-9));
  int last = static_cast<int>(std::ceil(std::log(hi) / std::log(base) - 1e-9));
  return {first, std::max(last, first + 1)};
}

// Every stride-th power of `base`, stride chosen to keep at most kMaxPowerTicks + 1 ticks.
std::vector<double> power_ticks(double lo, double hi, double base) {
  auto [first, last] = exponent_range(lo, hi, base);
  int stride = (last - first + kMaxPowerTicks - 1) / kMaxPowerTicks;
  std::vector<double> ticks;
  for (int e = first; e < last + stride; e += stride) ticks.push_back(std::pow(base, e));
  return ticks;
}

// 1, 2 and 5 times powers of ten, from the largest <= lo to the smallest >= hi.
std::vector<double> one_two_five_ticks(double lo, double hi) {
  auto [first, last] = exponent_range(lo, hi, 10);
  std::vector<double> candidates;  // one decade more on each side than exponent_range needs
  for (int e = first - 1; e <= last; ++e)
    for (double mantissa : {1.0, 2.0, 5.0}) candidates.push_back(mantissa * std::pow(10, e));
  candidates.push_back(std::pow(10, last + 1));
  auto start = std::upper_bound(candidates.begin(), candidates.end(), lo * (1 + 1e-9)) - 1;
  auto stop = std::lower_bound(candidates.begin(), candidates.end(), hi * (1 - 1e-9)) + 1;
  return {start, stop};
}

std::vector<double> log_ticks(double lo, double hi) {
  if (lo >= 1 && hi / lo <= 4096) return power_ticks(lo, hi, 2);
  if (hi / lo <= 100) return one_two_five_ticks(lo, hi);
  return power_ticks(lo, hi, 10);
}

struct Axis {
  bool log = false;
  std::vector<double> ticks;  // ascending; the first and the last are the ends of the axis

  double fraction(double value) const {
    double lo = ticks.front(), hi = ticks.back();
    return log ? std::log(value / lo) / std::log(hi / lo) : (value - lo) / (hi - lo);
  }
};

Axis make_axis(const std::vector<double>& values, bool log) {
  auto [min, max] = std::minmax_element(values.begin(), values.end());
  double lo = *min, hi = *max;
  if (hi - lo <= 1e-6 * std::max(std::abs(lo), std::abs(hi))) {  // one value: widen around it
    double pad = lo == 0 ? 1 : std::abs(lo) / 10;
    lo = log ? lo / 2 : lo - pad;
    hi = log ? hi * 2 : hi + pad;
  }
  return {log, log ? log_ticks(lo, hi) : linear_ticks(lo, hi)};
}

std::string tick_label(double value) { return fmt::format("{:.6g}", value); }

// The document being drawn; the plot area sits inside margins for the title, ticks and labels.
class Canvas {
 public:
  explicit Canvas(const PlotOptions& options)
      : width_(options.width),
        height_(options.height),
        left_(72),
        top_(36),
        right_(options.width - 24.0),
        bottom_(options.height - 48.0) {
    svg_ = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
        "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
        width_, height_);
    double middle_x = (left_ + right_) / 2, middle_y = (top_ + bottom_) / 2;
    text("title", width_ / 2.0, 22, "middle", options.title, " font-size=\"15\"");
    text("x-label", middle_x, height_ - 10.0, "middle", options.x_label);
    text("y-label", 16, middle_y, "middle", options.y_label,
         fmt::format(" transform=\"rotate(-90 16 {:.1f})\"", middle_y));
  }

  double x(const Axis& axis, double value) const {
    return left_ + axis.fraction(value) * (right_ - left_);
  }
  double y(const Axis& axis, double value) const {
    return bottom_ - axis.fraction(value) * (bottom_ - top_);
  }
  double plot_left() const { return left_; }
  double plot_width() const { return right_ - left_; }
  double label_baseline() const { return bottom_ + 16; }

  void text(std::string_view role, double x, double y, std::string_view anchor,
            const std::string& content, std::string_view attributes = "") {
    if (content.empty()) return;
    svg_ +=
        fmt::format("<text class=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\"{}>{}</text>\n",
                    role, x, y, anchor, attributes, xml_escape(content));
  }

  void x_ticks(const Axis& axis) {
    for (double tick : axis.ticks) {
      double at = x(axis, tick);
      grid_line(at, top_, at, bottom_);
      text("x-tick", at, label_baseline(), "middle", tick_label(tick));
    }
  }

  void y_ticks(const Axis& axis) {
    for (double tick : axis.ticks) {
      double at = y(axis, tick);
      grid_line(left_, at, right_, at);
      text("y-tick", left_ - 6, at + 4, "end", tick_label(tick));
    }
  }

  void polyline(const std::vector<std::pair<double, double>>& points, const char* stroke) {
    std::string coordinates;
    for (auto [px, py] : points)
      coordinates += fmt::format("{}{:.1f},{:.1f}", coordinates.empty() ? "" : " ", px, py);
    svg_ += fmt::format(
        "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
        "points=\"{}\"/>\n",
        stroke, coordinates);
  }

  void marker(double px, double py, const char* fill) {
    svg_ +=
        fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", px, py, fill);
  }

  void bar(double px, double py, double width, double height, const char* fill) {
    svg_ += fmt::format(
        "<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"{}\"/>\n",
        px, py, width, height, fill);
  }

  // Entries are (label, colour), in the top-right corner of the plot area.
  void legend(const std::vector<std::pair<std::string, const char*>>& entries) {
    if (entries.empty()) return;
    size_t longest = 0;
    for (const auto& entry : entries) longest = std::max(longest, entry.first.size());
    double box_width = 34 + kCharWidth * longest, box_height = 8 + kLegendRow * entries.size();
    double box_x = right_ - box_width - 8, box_y = top_ + 8;
    svg_ += fmt::format(
        "<g class=\"legend\">\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
        box_x, box_y, box_width, box_height);
    for (size_t i = 0; i < entries.size(); ++i) {
      double row_y = box_y + 12 + kLegendRow * i;
      svg_ += fmt::format(
          "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
          "stroke-width=\"2\"/>\n",
          box_x + 6, row_y, box_x + 26, row_y, entries[i].second);
      text("legend-label", box_x + 30, row_y + 4, "start", entries[i].first);
    }
    svg_ += "</g>\n";
  }

  void no_data_note() {
    text("note", (left_ + right_) / 2, (top_ + bottom_) / 2, "middle", "no data", " fill=\"#666\"");
  }

  // Draws the frame over the grid and closes the document.
  std::string finish() {
    svg_ += fmt::format(
        "<rect class=\"frame\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"none\" stroke=\"#333\"/>\n</svg>\n",
        left_, top_, right_ - left_, bottom_ - top_);
    return std::move(svg_);
  }

 private:
  void grid_line(double x1, double y1, double x2, double y2) {
    svg_ += fmt::format(
        "<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
        "stroke=\"#e0e0e0\"/>\n",
        x1, y1, x2, y2);
  }

  int width_, height_;
  double left_, top_, right_, bottom_;
  std::string svg_;
};

// Consecutive plottable points of a series, in data units.
using Run = std::vector<std::pair<double, double>>;

// A point that cannot be plotted ends the run it follows.
std::vector<Run> runs_of(const Series& series, const PlotOptions& options) {
  SSA_CHECK(series.x.size() == series.y.size(), "series '{}' has {} x values but {} y values",
            series.label, series.x.size(), series.y.size());
  std::vector<Run> runs(1);
  for (size_t i = 0; i < series.x.size(); ++i) {
    if (plottable(series.x[i], options.log_x) && plottable(series.y[i], options.log_y))
      runs.back().emplace_back(series.x[i], series.y[i]);
    else if (!runs.back().empty())
      runs.emplace_back();
  }
  if (runs.back().empty()) runs.pop_back();
  return runs;
}

void draw_series(Canvas& canvas, const std::vector<Run>& runs, const Axis& x_axis,
                 const Axis& y_axis, const char* stroke) {
  size_t point_count = 0;
  for (const Run& run : runs) point_count += run.size();
  for (const Run& run : runs) {
    Run pixels;
    for (auto [x, y] : run) pixels.emplace_back(canvas.x(x_axis, x), canvas.y(y_axis, y));
    canvas.polyline(pixels, stroke);
    if (point_count <= kMaxMarkedPoints)
      for (auto [px, py] : pixels) canvas.marker(px, py, stroke);
  }
}

}  // namespace

std::string line_plot(const std::vector<Series>& series, const PlotOptions& options) {
  std::vector<std::vector<Run>> runs;
  std::vector<double> xs, ys;
  for (const Series& one : series) {
    runs.push_back(runs_of(one, options));
    for (const Run& run : runs.back())
      for (auto [x, y] : run) {
        xs.push_back(x);
        ys.push_back(y);
      }
  }
  Canvas canvas(options);
  if (xs.empty()) {
    canvas.no_data_note();
    return canvas.finish();
  }
  Axis x_axis = make_axis(xs, options.log_x), y_axis = make_axis(ys, options.log_y);
  canvas.x_ticks(x_axis);
  canvas.y_ticks(y_axis);
  std::vector<std::pair<std::string, const char*>> legend;
  for (size_t i = 0; i < series.size(); ++i) {
    draw_series(canvas, runs[i], x_axis, y_axis, colour(i));
    if (!series[i].label.empty()) legend.emplace_back(series[i].label, colour(i));
  }
  canvas.legend(legend);
  return canvas.finish();
}

std::string bar_plot(const std::vector<std::string>& labels, const std::vector<double>& values,
                     const PlotOptions& options) {
  SSA_CHECK(labels.size() == values.size(), "{} labels for {} values", labels.size(),
            values.size());
  std::vector<double> heights = {0};  // bars start at zero, so the axis holds it
  for (double value : values)
    if (std::isfinite(value)) heights.push_back(value);
  Canvas canvas(options);
  if (heights.size() == 1) {
    canvas.no_data_note();
    return canvas.finish();
  }
  Axis y_axis = make_axis(heights, false);
  canvas.y_ticks(y_axis);
  double slot = canvas.plot_width() / values.size();
  for (size_t i = 0; i < values.size(); ++i) {
    double center = canvas.plot_left() + slot * (i + 0.5);
    canvas.text("x-tick", center, canvas.label_baseline(), "middle", labels[i]);
    if (!std::isfinite(values[i])) continue;
    double zero = canvas.y(y_axis, 0), top = canvas.y(y_axis, values[i]);
    canvas.bar(center - 0.35 * slot, std::min(zero, top), 0.7 * slot, std::abs(zero - top),
               colour(0));
  }
  return canvas.finish();
}

void write_text_file(const std::string& path, const std::string& text) {
  write_file_replacing(path, {std::as_bytes(std::span(text.data(), text.size()))});
}

}  // namespace ssa
