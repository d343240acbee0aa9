// The scripts of scripts/: their argument mistakes are one line on stderr and exit status 2,
// found before they build, install or run anything (so none of these cases needs a GPU, PyTorch
// or minutes); --help prints the script's header and exits 0.
#include "e2e_util.h"

namespace ssa::test {
namespace {

// Runs scripts/NAME with `environment` (VAR=value ...) and `args`.
Result script(const std::string& environment, const std::string& name, const std::string& args) {
  return run_shell(
      fmt::format("{} bash {}/scripts/{} {}", environment, SSA_SOURCE_DIR, name, args));
}

}  // namespace

TEST_CASE("scripts: a usage mistake is one line naming it, exit 2, before any work") {
  struct Case {
    std::string environment, name, args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "bench.sh", "--bogus", "bench.sh: unknown option --bogus"},
           {"", "bench.sh", "a b", "bench.sh: takes at most one argument, OUT_DIR; got 2: a b"},
           {"BENCHES='kernels atention'", "bench.sh", "",
            "bench.sh: BENCHES has 'atention'; expected words among: kernels attention train"},
           {"STEPS=6x", "bench.sh", "", "bench.sh: STEPS must be a positive integer, got '6x'"},
           {"", "parity.sh", "--out x", "parity.sh: unknown option --out"},
           {"GPUS='1 two'", "multi_gpu.sh", "",
            "multi_gpu.sh: GPUS must be a positive integer, got 'two'"},
           {"CONFIGS=bench-160mm", "multi_gpu.sh", "",
            "multi_gpu.sh: CONFIGS or ZERO_CONFIGS names bench-160mm, but "
            "configs/bench-160mm.conf does not exist"},
           {"BUILD=0 TOKENS=1e8", "reproduce.sh", "fa",
            "reproduce: TOKENS must be a positive integer, got '1e8'"},
           {"BUILD=0", "reproduce.sh", "fa bogus",
            "reproduce: unknown model 'bogus' (expected fa, sa or ssa)"},
           {"BUILD=0", "reproduce.sh", "data fa",
            "reproduce: data takes no more arguments, got: fa"},
           {"", "quickstart.sh", "--out", "quickstart: --out needs a directory"},
           {"", "quickstart.sh", "--bogus", "quickstart: unknown option --bogus"},
           {"", "quickstart.sh", "/nonexistent/corpus",
            "quickstart: input /nonexistent/corpus does not exist"},
           {"", "format.sh", "--dry-run", "format.sh: unknown arguments '--dry-run'"},
       }) {
    CAPTURE(c.name);
    CAPTURE(c.args);
    const Result result = script(c.environment, c.name, c.args);
    CHECK(result.exit_code == 2);
    CHECK_MESSAGE(result.output.starts_with(c.message), result.output);
    CHECK_MESSAGE(result.output.find('\n') == result.output.size() - 1, result.output);
  }
}

TEST_CASE("quickstart.sh refuses an --out that holds files it did not write, and keeps them") {
  TempDir dir("e2e_quickstart_out");
  std::filesystem::create_directories(dir.file("out/run"));
  std::ofstream(dir.file("out/run/notes.txt")) << "mine";
  const Result result = script("", "quickstart.sh", "--out " + dir.file("out"));
  CHECK(result.exit_code == 2);
  CHECK_MESSAGE(result.output == "quickstart: --out " + dir.file("out") +
                                     " holds files quickstart did not write, and a run replaces "
                                     "its shards/ and run/; choose a new or empty directory\n",
                result.output);
  CHECK(text_of(dir.file("out/run/notes.txt")) == "mine");
  std::ofstream(dir.file("file")) << "x";
  CHECK(script("", "quickstart.sh", "--out " + dir.file("file")).exit_code == 2);
}

TEST_CASE("scripts: --help prints the script's header comment, exit 0") {
  for (const char* name : {"bench.sh", "parity.sh", "multi_gpu.sh", "reproduce.sh", "quickstart.sh",
                           "authors_kernel.sh"}) {
    CAPTURE(name);
    const Result result = script("", name, "--help");
    CHECK(result.exit_code == 0);
    CHECK_MESSAGE(!result.output.starts_with("#"), result.output);
    CHECK_MESSAGE(contains(result.output, "scripts/"), result.output);  // each names its usage
  }
}

}  // namespace ssa::test
