#include <doctest/doctest.h>
#include <sys/stat.h>

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
