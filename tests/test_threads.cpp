#include <doctest/doctest.h>

#include <vector>

#include "core/threads.h"

using namespace ssa;

TEST_CASE("run_on_threads runs every index once") {
  std::vector<int> runs(8, 0);
  run_on_threads(8, [&](int t) { runs[t] += 1; });
  CHECK(runs == std::vector<int>(8, 1));
}
