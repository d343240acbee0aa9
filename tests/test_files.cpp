#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/files.h"
#include "test_data_util.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("files: a regular file is read whole; anything else is refused by name") {
  TempDir dir("files");
  std::ofstream(dir.file("a.txt")) << "abc";
  CHECK(read_regular_file(dir.file("a.txt"), "config file", 3) == "abc");
  CHECK(contains_all(error_of([&] { read_regular_file(dir.file("a.txt"), "config file", 2); }),
                     {"config file", dir.file("a.txt"), "3 bytes", "2 bytes"}));
  CHECK(contains_all(error_of([&] { read_regular_file(dir.path(), "config file", 100); }),
                     {"config file", dir.path(), "is not a regular file"}));
  CHECK(contains_all(error_of([&] { read_regular_file(dir.file("absent"), "config file", 100); }),
                     {"cannot open config file", dir.file("absent"), "No such file"}));
  CHECK(contains_all(error_of([&] { read_regular_file("", "config file", 100); }),
                     {"cannot open config file ''"}));
  // A FIFO with no writer: opening it would block forever.
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  CHECK(contains_all(error_of([&] { require_regular_file(dir.file("fifo"), "token shard"); }),
                     {"token shard", dir.file("fifo"), "is not a regular file"}));
}

TEST_CASE("a file written whole appears only complete; a failure leaves no temporary file") {
  TempDir dir("files_write");
  const std::string text = "abcdef";
  const auto bytes = std::as_bytes(std::span(text.data(), text.size()));
  write_file_replacing(dir.file("out.bin"), {bytes.first(2), bytes.subspan(2)});
  CHECK(read_regular_file(dir.file("out.bin"), "file", 100) == text);
  CHECK(contains_all(error_of([&] { write_file_replacing(dir.file("absent/out.bin"), {bytes}); }),
                     {"cannot create", dir.file("absent/out.bin.tmp"), "No such file"}));
  std::filesystem::create_directory(dir.file("taken"));
  CHECK(contains_all(error_of([&] { write_file_replacing(dir.file("taken"), {bytes}); }),
                     {"cannot rename", dir.file("taken.tmp"), "Is a directory"}));
  CHECK(!std::filesystem::exists(dir.file("taken.tmp")));
}

TEST_CASE("a directory's write probe leaves nothing, and an old probe's name is no obstacle") {
  TempDir dir("files_probe");
  std::ofstream(dir.file(fmt::format(".write_check_{}", ::getpid()))) << "left by a killed run";
  check_directory_takes_files(dir.path());
  check_directory_takes_files(dir.path());
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++entries;
  CHECK(entries == 1);
  CHECK_THROWS_WITH_AS(check_directory_takes_files(dir.file("missing")),
                       doctest::Contains("cannot write a file in"), Error);
}
