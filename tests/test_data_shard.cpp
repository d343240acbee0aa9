#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include "data/shard.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::contains_all;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

std::vector<uint32_t> shard_tokens(const Shard& shard) {
  std::vector<int32_t> tokens(static_cast<size_t>(shard.size()));
  shard.read(0, shard.size(), tokens.data());
  return {tokens.begin(), tokens.end()};
}

void put_i32(std::vector<unsigned char>& bytes, int32_t value) {
  for (int shift = 0; shift < 32; shift += 8)
    bytes.push_back(static_cast<uint32_t>(value) >> shift & 0xff);
}

// A shard spelled out byte by byte, as llm.c's write_datafile lays it down:
// int32 header[256] = {magic, version, count}, then `width`-byte little-endian tokens.
void write_raw_shard(const std::string& path, int32_t magic, int32_t version, int32_t count,
                     const std::vector<uint32_t>& tokens, int width) {
  std::vector<unsigned char> bytes;
  put_i32(bytes, magic);
  put_i32(bytes, version);
  put_i32(bytes, count);
  bytes.resize(1024, 0);
  for (uint32_t token : tokens)
    for (int b = 0; b < width; ++b) bytes.push_back(token >> (8 * b) & 0xff);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file);
  std::fwrite(bytes.data(), 1, bytes.size(), file);
  std::fclose(file);
}

}  // namespace

TEST_CASE("shards round-trip as version 1 (uint16) and version 2 (uint32)") {
  TempDir dir("shard_roundtrip");
  std::vector<uint32_t> small = {50256, 0, 1, 65535, 42};
  write_shard(dir.file("a.bin"), small);
  Shard a(dir.file("a.bin"), 65536);
  CHECK(a.version() == ShardVersion::u16);
  CHECK(shard_tokens(a) == small);
  CHECK(std::filesystem::file_size(dir.file("a.bin")) == 1024 + 2 * small.size());
  CHECK(!std::filesystem::exists(dir.file("a.bin.tmp")));

  std::vector<uint32_t> large = {7, 65536, 100000, 3};
  write_shard(dir.file("b.bin"), large);
  Shard b(dir.file("b.bin"), 100001);
  CHECK(b.version() == ShardVersion::u32);
  CHECK(shard_tokens(b) == large);
  std::vector<int32_t> window(3);
  b.read(1, 3, window.data());
  CHECK(window == std::vector<int32_t>{65536, 100000, 3});

  write_shard(dir.file("c.bin"), small, ShardVersion::u32);
  CHECK(Shard(dir.file("c.bin"), 65536).version() == ShardVersion::u32);
  CHECK(error_of([&] {
          write_shard(dir.file("d.bin"), large, ShardVersion::u16);
        }).find("65536 at index 1") != std::string::npos);
}

TEST_CASE("a shard written byte by byte in llm.c's layout loads as it is") {
  TempDir dir("shard_llmc");
  std::vector<uint32_t> tokens = {50256, 15496, 11, 995, 0, 50255};
  write_raw_shard(dir.file("llmc.bin"), 20240520, 1, 6, tokens, 2);
  Shard shard(dir.file("llmc.bin"), 50257);
  CHECK(shard.size() == 6);
  CHECK(shard_tokens(shard) == tokens);
}

TEST_CASE("llm.c's Llama 3 shards (magic 20240801, version 7, uint32) load as they are") {
  TempDir dir("shard_llmc_llama3");
  std::vector<uint32_t> tokens = {128000, 9906, 1917, 0, 65536, 128255};
  write_raw_shard(dir.file("llama3.bin"), 20240801, 7, 6, tokens, 4);
  Shard shard(dir.file("llama3.bin"), 128256);
  CHECK(shard.version() == ShardVersion::u32);
  CHECK(shard_tokens(shard) == tokens);
  std::vector<int32_t> window(2);
  shard.read(4, 2, window.data());
  CHECK(window == std::vector<int32_t>{65536, 128255});
  CHECK(contains_all(error_of([&] { Shard(dir.file("llama3.bin"), 128255); }),
                     {dir.file("llama3.bin"), "token id 128255 at index 5"}));
}

TEST_CASE("a magic and version that do not belong together are refused naming both") {
  TempDir dir("shard_mixed_header");
  std::string path = dir.file("mixed.bin");
  std::vector<uint32_t> tokens = {1, 2, 3};
  auto open_error = [&] { return error_of([&] { Shard(path, 50); }); };
  write_raw_shard(path, 20240801, 1, 3, tokens, 2);
  CHECK(contains_all(open_error(),
                     {path, "unknown version 1 for magic 20240801 (llm.c Llama 3), expected 7"}));
  write_raw_shard(path, 20240801, 2, 3, tokens, 4);
  CHECK(contains_all(open_error(), {path, "unknown version 2 for magic 20240801", "expected 7"}));
  write_raw_shard(path, 20240520, 7, 3, tokens, 4);
  CHECK(contains_all(open_error(),
                     {path,
                      "unknown version 7 for magic 20240520, expected 1 (uint16 tokens) or "
                      "2 (uint32 tokens)"}));
  write_raw_shard(path, 20240802, 7, 3, tokens, 4);
  CHECK(contains_all(open_error(), {path, "bad magic 20240802, expected 20240520", "20240801"}));
  write_raw_shard(path, 20240801, 7, 3, tokens, 2);  // uint16 tokens under a uint32 header
  CHECK(contains_all(open_error(), {path, "has size 1030 bytes, expected 1036"}));
}

TEST_CASE("a FIFO or a directory as a shard is refused at once, naming it") {
  TempDir dir("shard_fifo");
  const std::string fifo = dir.file("fifo.bin");  // opening it blocking would wait for a writer
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& path : {fifo, dir.path()}) {
    CAPTURE(path);
    CHECK(error_of([&] { Shard(path, 50); }) == "token shard " + path + " is not a regular file");
  }
}

TEST_CASE("each bad shard gets its own message naming the file") {
  TempDir dir("shard_bad");
  std::vector<uint32_t> tokens = {1, 2, 3, 70, 4};
  std::string path = dir.file("bad.bin");
  auto open_error = [&] { return error_of([&] { Shard(path, 50); }); };
  std::vector<std::pair<std::string, std::string>> cases;  // (message, expected substring)

  write_raw_shard(path, 20240521, 1, 5, tokens, 2);
  cases.emplace_back(open_error(), "bad magic 20240521, expected 20240520");
  write_raw_shard(path, 20240520, 3, 5, tokens, 2);
  cases.emplace_back(open_error(), "unknown version 3");
  write_raw_shard(path, 20240520, 1, 6, tokens, 2);
  cases.emplace_back(open_error(), "has size 1034 bytes, expected 1036");
  write_raw_shard(path, 20240520, 2, 5, tokens, 2);
  cases.emplace_back(open_error(), "has size 1034 bytes, expected 1044");
  write_raw_shard(path, 20240520, 1, 0, {}, 2);
  cases.emplace_back(open_error(), "holds no tokens");
  write_raw_shard(path, 20240520, 1, 5, tokens, 2);
  cases.emplace_back(open_error(), "token id 70 at index 3, not below the vocab size 50");
  std::filesystem::resize_file(path, 100);
  cases.emplace_back(open_error(), "smaller than its 1024-byte header");
  cases.emplace_back(error_of([&] { Shard(dir.file("missing.bin"), 50); }),
                     "cannot open token shard");

  std::set<std::string> distinct;
  for (const auto& [message, expected] : cases) {
    INFO(message);
    CHECK(message.find(expected) != std::string::npos);
    bool names_file = message.find(path) != std::string::npos ||
                      message.find(dir.file("missing.bin")) != std::string::npos;
    CHECK(names_file);
    distinct.insert(message);
  }
  CHECK(distinct.size() == cases.size());
}

TEST_CASE("a shard truncated, rewritten or replaced after it opened is an error naming it") {
  TempDir dir("shard_changed");
  const std::string path = dir.file("s.bin");
  write_shard(path, std::vector<uint32_t>{1, 2, 3, 4, 5, 6});
  const auto opened = std::filesystem::last_write_time(path);
  const Shard shard(path, 50);
  std::vector<int32_t> window(4);
  shard.read(2, 4, window.data());
  CHECK(window == std::vector<int32_t>{3, 4, 5, 6});
  auto error_reading = [&] { return error_of([&] { shard.read(2, 4, window.data()); }); };
  auto changed = [&](const std::string& how) {
    return "token shard " + path + " changed while it was being read (" + how +
           "); restore it as it was";
  };
  auto rewrite_in_place = [&](uint32_t last_id) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
    bytes[bytes.size() - 2] = static_cast<char>(last_id);  // the last uint16 id's low byte
    std::ofstream(path, std::ios::binary | std::ios::in | std::ios::out)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };

  rewrite_in_place(60);  // an id past the vocabulary, the timestamp put back
  std::filesystem::last_write_time(path, opened);
  CHECK(error_reading() == changed("token id 60 at index 5, not below the vocab size 50"));
  rewrite_in_place(7);  // valid ids, a later timestamp
  std::filesystem::last_write_time(path, opened + std::chrono::seconds(1));
  CHECK(error_reading() == changed("it was rewritten: its modification time moved"));
  write_shard(path, std::vector<uint32_t>{1, 2, 3, 4, 5, 6});  // a new file renamed over it
  CHECK(error_reading() == changed("another file of the same size took its place"));
  std::filesystem::resize_file(path, 1024 + 2 * 3);  // cut to 3 tokens
  CHECK(error_reading() == changed("1030 bytes, was 1036"));
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  CHECK(error_reading() == changed("it is no longer a regular file"));
  std::filesystem::remove(path);
  CHECK(error_reading() == changed("cannot open it: No such file or directory"));
}
