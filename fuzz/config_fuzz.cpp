// Config text (train/config.h): any text either loads into a config whose to_text() reads back
// to the same values, or is refused with an ssa::Error. The schema has every entry kind the
// ssa-train schema uses: strings with and without choices, bounded integers, reals, booleans.
#include <limits>
#include <string_view>

#include "core/error.h"
#include "train/config.h"

namespace {

ssa::Config fuzz_config() {
  using ssa::ConfigType;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  return ssa::Config({
      {"model", "vocab_size", ConfigType::integer, "4096", "ids", 1, kInf},
      {"model", "d_model", ConfigType::integer, "256", "width", 1, 65536},
      {"attention",
       "mode",
       ConfigType::string,
       "ssa",
       "path",
       -kInf,
       kInf,
       {"full", "sparse", "ssa"}},
      {"attention", "p_full", ConfigType::real, "0.5", "share", 0, 1},
      {"data", "train", ConfigType::string, "", "glob"},
      {"optim", "lr", ConfigType::real, "3e-4", "rate", 0, kInf},
      {"train", "zero", ConfigType::boolean, "false", "shard"},
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ssa::Config config = fuzz_config();
  try {
    config.load_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const ssa::Error&) {
    return 0;
  }
  ssa::Config reread = fuzz_config();
  reread.load_text(config.to_text(), "to_text()");
  if (!(reread == config)) std::abort();
  return 0;
}
