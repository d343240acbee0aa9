#pragma once
// Plain SVG plots with no dependency: line plots of training curves, bar plots of per-layer values.
#include <string>
#include <vector>

namespace ssa {

struct Series {
  std::string label{};  // the legend entry; series with an empty label are left out of the legend
  std::vector<double> x{}, y{};
};

struct PlotOptions {
  std::string title{}, x_label{}, y_label{};
  bool log_x = false, log_y = false;
  int width = 640, height = 400;
};

// A standalone SVG document. Points with a non-finite coordinate (or a non-positive one on a log
// axis) are skipped and split the line there; with no point left the plot says "no data".
// Linear axes tick at about five multiples of 1, 2 or 5 x 10^k. Log axes tick at powers of two
// for ranges from 1 up spanning at most 2^12 (budgets, context lengths), else at 1-2-5 steps
// (up to two decades) or powers of ten.
std::string line_plot(const std::vector<Series>& series, const PlotOptions& options);

// One bar per label, from zero on a linear y axis (log_x and log_y do not apply); a non-finite
// value leaves its slot empty.
std::string bar_plot(const std::vector<std::string>& labels, const std::vector<double>& values,
                     const PlotOptions& options);

// Writes `path`.tmp, then renames it to `path` (core/files.h write_file_replacing): a failure
// removes the temporary file and names the path and the system's reason.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace ssa
