// The binaries' frame (core/tool.h's run_tool, core/command_line.h): --help, exit codes, and one
// line per mistake.
#include "e2e_util.h"

namespace ssa::test {
namespace {

// Whether `output` is exactly one line.
bool one_line(const std::string& output) {
  return !output.empty() && output.find('\n') == output.size() - 1;
}

}  // namespace

TEST_CASE("--help of every binary and command lists its options with their defaults: exit 0") {
  struct Case {
    std::string command, option, default_text;
  };
  for (const Case& c : std::vector<Case>{
           {"ssa-tokenize encode --help", "--val-fraction F", "(default 0.01"},
           {"ssa-train --help", "--model.d_model", "default 256"},
           {"ssa-eval ppl --help", "--top-k LIST", "(default 1,2,4,8,16,32,64)"},
           {"ssa-eval grads -h", "--dtype P", "the default on cpu"},
           {"ssa-generate --help", "--temperature X", "(default 0.8)"},
           {"ssa-bench --help", "attention", "T = 4k .. 32k"},
       }) {
    CAPTURE(c.command);
    Result help = run(c.command);
    CHECK(help.exit_code == 0);
    CHECK(contains(help.output, c.option));
    CHECK(contains(help.output, c.default_text));
  }
}

TEST_CASE("a usage mistake: '<tool>: <message>', a pointer to --help, exit 2") {
  Result unknown = run("ssa-tokenize train --out x --vocab-size 300 --bogus=1 doc.txt");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.output ==
        "ssa-tokenize: unknown option --bogus for 'ssa-tokenize train'\n"
        "run 'ssa-tokenize --help' for usage\n");
  Result missing = run("ssa-tokenize encode --tokenizer tok.bin doc.txt");
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.starts_with("ssa-tokenize: --out-dir"));
  Result small = run("ssa-tokenize train --out x --vocab-size 10 doc.txt");
  CHECK(small.exit_code == 2);
  CHECK(contains(small.output, "ssa-tokenize: --vocab-size must be at least 257, got 10\n"));
  Result huge = run("ssa-tokenize train --out x --vocab-size 99999999999 doc.txt");
  CHECK(huge.exit_code == 2);
  CHECK(contains(huge.output, "ssa-tokenize: --vocab-size must be at most 2147483647, got "));
  Result no_dir = run("ssa-tokenize train --out no_such_dir/tok.bin --vocab-size 300 doc.txt");
  CHECK(no_dir.exit_code == 1);
  CHECK(contains(no_dir.output,
                 "cannot write --out no_such_dir/tok.bin: no_such_dir is not a directory"));
  Result threads = run("ssa-tokenize train --out x --vocab-size 300 --threads 2147483648 doc.txt");
  CHECK(threads.exit_code == 2);
  CHECK(contains(threads.output, "ssa-tokenize: --threads must be at most 1024, got 2147483648\n"));
  Result command = run("ssa-eval plot");
  CHECK(command.exit_code == 2);
  CHECK(contains(
      command.output,
      "unknown command 'plot' (expected ppl, stats, long-context, plot-log, report or grads)"));
  Result bare = run("ssa-eval");
  CHECK(bare.exit_code == 2);
  CHECK(contains(bare.output, "long-context"));
}

TEST_CASE("ssa-tokenize train refuses an --out that names one of its inputs; the input is kept") {
  TempDir dir("e2e_tokenize_out_is_input");
  std::ofstream(dir.file("doc.txt")) << "the text to keep";
  Result result = run(fmt::format("ssa-tokenize train --out {} --vocab-size 300 {}",
                                  dir.file("doc.txt"), dir.path()));
  CHECK(result.exit_code == 2);
  CHECK_MESSAGE(contains(result.output, "names the input file"), result.output);
  CHECK(text_of(dir.file("doc.txt")) == "the text to keep");
}

TEST_CASE("a failure at run time: '<tool>: error: <message>' on one line, exit 1") {
  TempDir dir("e2e_command_line");
  Result generate = run(fmt::format("ssa-generate --checkpoint {}", dir.file("none.h5")));
  CHECK(generate.exit_code == 1);
  CHECK(generate.output.starts_with("ssa-generate: error: "));
  CHECK(contains(generate.output, dir.file("none.h5")));
  CHECK(one_line(generate.output));
  Result plot = run(fmt::format("ssa-eval plot-log {}", dir.file("log.jsonl")));
  CHECK(plot.exit_code == 1);
  CHECK(plot.output.starts_with("ssa-eval: error: "));
  CHECK(one_line(plot.output));
}

TEST_CASE("ssa-tokenize decode into a full disk names the system's reason, exit 1") {
  // It wrote the text with fwrite, whose failure only left stdout's error flag: "an earlier
  // write failed".
  TempDir dir("e2e_decode_full_disk");
  write_doc_and_tokenizer(dir, 300, 300);
  REQUIRE(run(fmt::format("ssa-tokenize encode --tokenizer {} --out-dir {} --val-fraction 0.5 {}",
                          dir.file("tok.bin"), dir.file("shards"), dir.file("doc.txt")))
              .exit_code == 0);
  Result full =
      run_shell(fmt::format("{{ {}/ssa-tokenize decode --tokenizer {} {} >/dev/full; }}",
                            SSA_BIN_DIR, dir.file("tok.bin"), dir.file("shards/train_000000.bin")));
  CHECK(full.exit_code == 1);
  CHECK(full.output ==
        "ssa-tokenize: error: cannot write standard output: No space left on device\n");
}

TEST_CASE("ssa-train: --config and --section.key=value overrides resolve; strays are named") {
  TinyJob job("e2e_command_line_train");
  Result resolved = job.train("--print-config --train.steps=7 --model.d_model=48");
  REQUIRE_MESSAGE(resolved.exit_code == 0, resolved.output);
  CHECK(contains(resolved.output, "steps = 7\n"));
  CHECK(contains(resolved.output, "d_model = 48\n"));
  // Command-line mistakes are usage errors (exit 2, the pointer to --help), as in every binary.
  for (const std::string& mistake :
       {std::string("--print-config stray"), std::string("--print-config --train.stepz=5"),
        std::string("--print-config --train.steps=abc")}) {
    CAPTURE(mistake);
    Result result = job.train(mistake);
    CHECK(result.exit_code == 2);
    CHECK(result.output.ends_with("\nrun 'ssa-train --help' for usage\n"));
  }
  CHECK(job.train("--print-config stray")
            .output.starts_with("ssa-train: unexpected argument 'stray'"));
  CHECK(job.train("--print-config --train.stepz=5")
            .output.starts_with("ssa-train: command-line argument '--train.stepz=5': unknown "
                                "config key train.stepz"));
  Result twice = job.train("--print-config --config " + job.config);
  CHECK(twice.exit_code == 2);
  CHECK_MESSAGE(twice.output.starts_with("ssa-train: --config is given 2 times; give one file"),
                twice.output);
  Result no_file = run("ssa-train --config");
  CHECK(no_file.exit_code == 2);
  CHECK(no_file.output.starts_with("ssa-train: --config"));
}

}  // namespace ssa::test
