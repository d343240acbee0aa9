#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/tokenizer.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

// Pseudo-text documents fixed by the seed: a lexicon of some real words (UTF-8 and code
// included) and 300 made-up ones, drawn with a skew towards the front, with mixed spacing.
std::vector<std::string> sample_documents(int count, uint64_t seed) {
  std::vector<std::string> lexicon = {"the",    "model", "attention", "sparse", "block",
                                      "token",  "über",  "naïve",     "résumé", "def",
                                      "return", "self",  "x_1",       "2024",   "(",
                                      "):",     "=",     "+=",        "héllo",  "日本語"};
  Rng lexicon_rng(12345);
  for (int w = 0; w < 300; ++w) {
    std::string word(2 + lexicon_rng.below(8), ' ');
    for (char& letter : word) letter = static_cast<char>('a' + lexicon_rng.below(26));
    lexicon.push_back(word);
  }
  const char* gaps[] = {" ", " ", " ", "\n", "\n    ", ", ", ". "};
  Rng rng(seed);
  std::vector<std::string> documents;
  for (int d = 0; d < count; ++d) {
    std::string text;
    for (int w = 0; w < 400; ++w) {
      text += lexicon[rng.below(rng.below(lexicon.size()) + 1)];
      text += gaps[rng.below(std::size(gaps))];
    }
    documents.push_back(text);
  }
  return documents;
}

std::string random_bytes(Rng& rng, size_t length) {
  std::string bytes(length, '\0');
  for (char& byte : bytes) byte = static_cast<char>(rng.below(256));
  return bytes;
}

const Tokenizer& trained_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::train(sample_documents(40, 1), 600, 2);
  return tokenizer;
}

}  // namespace

TEST_CASE("pre-tokenisation: whitespace joins the next run of letters, digits or other bytes") {
  std::vector<std::string_view> chunks = pretokenize("hello world  42\n\tfoo_bar(x)été..!  ");
  std::vector<std::string_view> expected = {"hello", " world", "  42", "\n\tfoo_bar", "(",
                                            "x",     ")",      "été",  "..!",         "  "};
  CHECK(chunks == expected);
  CHECK(pretokenize("").empty());
}

TEST_CASE("decode(encode(x)) == x for arbitrary bytes and UTF-8 text") {
  Rng rng(5);
  const Tokenizer untrained;
  for (size_t length : {0, 1, 2, 3, 17, 100, 1000, 5000}) {
    std::string bytes = random_bytes(rng, length);
    CHECK(trained_tokenizer().decode(trained_tokenizer().encode(bytes)) == bytes);
    CHECK(untrained.decode(untrained.encode(bytes)) == bytes);
  }
  const char with_nul[] = "zero\0byte \xff\xfe invalid, ";
  std::string text = std::string(with_nul, sizeof(with_nul) - 1) +
                     "Grüße, 日本語のテキスト, emoji 🙂, <|endoftext|> stays text";
  std::vector<uint32_t> ids = trained_tokenizer().encode(text);
  CHECK(trained_tokenizer().decode(ids) == text);
  for (uint32_t id : ids) CHECK(id != Tokenizer::kEndOfText);
  std::vector<uint32_t> eot = {Tokenizer::kEndOfText};
  CHECK(trained_tokenizer().decode(eot) == "<|endoftext|>");
}

TEST_CASE("an Encoder's cache gives what a fresh encode gives, long chunks included") {
  std::string text =
      sample_documents(1, 9)[0] + std::string(300, 'a') + " " + std::string(200, ' ') + "tail";
  Encoder encoder(trained_tokenizer());
  std::vector<uint32_t> first, second;
  encoder.encode(text, first);
  encoder.encode(text, second);
  CHECK(first == second);
  CHECK(first == trained_tokenizer().encode(text));
  CHECK(trained_tokenizer().decode(first) == text);
}

TEST_CASE("training is deterministic, breaks ties by lower ids, and compresses text") {
  std::vector<std::string> documents = sample_documents(40, 1);
  Tokenizer one_thread = Tokenizer::train(documents, 600, 1);
  CHECK(one_thread.merges() == trained_tokenizer().merges());
  CHECK(one_thread.vocab_size() == 600);

  std::string held_out = sample_documents(1, 77)[0];
  size_t tokens = trained_tokenizer().encode(held_out).size();
  MESSAGE("held-out: " << held_out.size() << " bytes -> " << tokens << " tokens");
  CHECK(tokens * 2 < held_out.size());

  // (' ', 'c'), ('a', 'b') and ('c', 'd') each occur once: the lowest ids win.
  Tokenizer tie = Tokenizer::train({"ab cd"}, 258);
  CHECK(tie.merges() == std::vector<Tokenizer::Pair>{{' ', 'c'}});
}

TEST_CASE("training never learns a token longer than a tokenizer may hold") {
  // One run of 2^17 letters: doubling merges reach two tokens of 2^16 bytes; joining them
  // would pass the limit.
  const std::string run(2 * Tokenizer::kMaxTokenBytes, 'a');
  Tokenizer trained = Tokenizer::train({run}, 300, 1);
  uint64_t longest = 0;
  for (uint32_t id = Tokenizer::kFirstMerge; id < trained.vocab_size(); ++id)
    longest = std::max<uint64_t>(longest, trained.token_bytes(id).size());
  CHECK(longest == Tokenizer::kMaxTokenBytes);
  CHECK(trained.decode(trained.encode(run)) == run);
}

TEST_CASE("merges apply left to right within a run, as in training") {
  Tokenizer runs = Tokenizer::train({"aaaa"}, 300);
  // "aaaa" -> (a a)(a a) -> ((a a)(a a)); then nothing is left to merge.
  CHECK(runs.merges() == std::vector<Tokenizer::Pair>{{'a', 'a'}, {257, 257}});
  CHECK(runs.encode("aaaa") == std::vector<uint32_t>{258});
  CHECK(runs.encode("aaa") == std::vector<uint32_t>{257, 'a'});
  CHECK(runs.encode("aaaaa") == std::vector<uint32_t>{258, 'a'});
  CHECK(runs.encode("aa aa") == std::vector<uint32_t>{257, ' ', 257});
}

TEST_CASE("tokenizer save/load round-trips; bad files get clear messages") {
  TempDir dir("tokenizer_file");
  std::string path = dir.file("tok.bin");
  trained_tokenizer().save(path);
  Tokenizer loaded = Tokenizer::load(path);
  CHECK(loaded.merges() == trained_tokenizer().merges());
  std::string text = sample_documents(1, 3)[0];
  CHECK(loaded.encode(text) == trained_tokenizer().encode(text));

  auto load_error = [&](const std::string& file) {
    std::string message = error_of([&] { Tokenizer::load(file); });
    CHECK(message.find(file) != std::string::npos);
    return message;
  };
  auto patch_int = [&](size_t index, int32_t value) {
    std::FILE* file = std::fopen(path.c_str(), "r+b");
    std::fseek(file, static_cast<long>(4 * index), SEEK_SET);
    std::fwrite(&value, 4, 1, file);
    std::fclose(file);
  };
  CHECK(load_error(dir.file("missing.bin")).find("cannot open tokenizer file") !=
        std::string::npos);
  std::filesystem::resize_file(path, 12 + 8 * 10 + 3);
  CHECK(load_error(path).find("truncated") != std::string::npos);
  trained_tokenizer().save(path);
  patch_int(1, 9);
  CHECK(load_error(path).find("unknown version 9") != std::string::npos);
  patch_int(0, 1234);
  CHECK(load_error(path).find("bad magic") != std::string::npos);
  trained_tokenizer().save(path);
  patch_int(3, 4000);
  CHECK(load_error(path).find("merge 0 joins (4000") != std::string::npos);
}

TEST_CASE("a tokenizer file whose merges double a token's length is refused, not loaded") {
  // Fuzzing finding: 40 merges, each joining the previous token with itself, ask for a token of
  // 2^40 bytes; loading such a 332-byte file ran out of memory.
  TempDir dir("tokenizer_doubling");
  std::vector<Tokenizer::Pair> merges = {{'a', 'a'}};
  for (uint32_t r = 1; r < 40; ++r) merges.emplace_back(256 + r, 256 + r);
  std::vector<uint32_t> words = {static_cast<uint32_t>(Tokenizer::kFileMagic),
                                 Tokenizer::kFileVersion, 257 + 40};
  for (auto [left, right] : merges) words.insert(words.end(), {left, right});
  std::string path = dir.file("doubling.bin");
  std::FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file);
  std::fwrite(words.data(), 4, words.size(), file);
  std::fclose(file);
  std::string message = error_of([&] { Tokenizer::load(path); });
  CHECK(message.find("tokenizer file " + path +
                     ": merge 16 joins (272, 272) into a token of "
                     "131072 bytes; at most 65536 are allowed") != std::string::npos);
  merges.resize(16);  // tokens of up to 65536 bytes still load
  CHECK(Tokenizer(merges).token_bytes(256 + 16) == std::string(65536, 'a'));
}

TEST_CASE("merges whose tokens take too many bytes in all are refused before they are built") {
  // A token of 2^14 bytes (14 doublings), 256 of 2^14 + 1 (one more byte each), then pairs of
  // those (32770 bytes each): 8192 such pairs pass 2^28 bytes in all.
  std::vector<Tokenizer::Pair> merges = {{'a', 'a'}};
  for (uint32_t r = 1; r < 14; ++r) merges.emplace_back(256 + r, 256 + r);
  const uint32_t long_token = 256 + 14, first_longer = long_token + 1;
  for (uint32_t byte = 0; byte < 256; ++byte) merges.emplace_back(long_token, byte);
  for (uint32_t pair = 0; pair < 8192; ++pair)
    merges.emplace_back(first_longer + pair / 256, first_longer + pair % 256);
  std::string message = error_of([&] { Tokenizer(merges, "test merges"); });
  CHECK_MESSAGE(test::contains_all(message, {"test merges: the tokens up to merge ",
                                             " bytes in all; at most 268435456 are allowed"}),
                message);
}

namespace {

// The textbook BPE: in each chunk, repeatedly join every occurrence (left to right) of the
// adjacent pair with the lowest merge rank.
std::vector<uint32_t> reference_encode(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<uint32_t> out;
  for (std::string_view chunk : pretokenize(text)) {
    std::vector<uint32_t> ids(chunk.begin(), chunk.end());
    for (uint32_t& id : ids) id &= 0xff;
    while (true) {
      int64_t best = -1;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        int64_t rank = tokenizer.merge_rank(ids[i], ids[i + 1]);
        if (rank >= 0 && (best < 0 || rank < best)) best = rank;
      }
      if (best < 0) break;
      auto [left, right] = tokenizer.merges()[best];
      std::vector<uint32_t> merged;
      for (size_t i = 0; i < ids.size(); ++i) {
        bool joins = i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right;
        merged.push_back(joins ? Tokenizer::kFirstMerge + static_cast<uint32_t>(best) : ids[i]);
        i += joins;
      }
      ids = merged;
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

}  // namespace

TEST_CASE("encode agrees with the textbook BPE on text and on random bytes") {
  Rng rng(21);
  std::vector<std::string> texts = sample_documents(3, 8);
  texts.push_back(random_bytes(rng, 3000));
  texts.push_back(std::string(1000, 'a') + " " + std::string(777, ' ') + "x");
  for (const std::string& text : texts)
    CHECK(trained_tokenizer().encode(text) == reference_encode(trained_tokenizer(), text));
}

TEST_CASE("the chunk cache finds what it holds, grows and clears") {
  ChunkCache cache;
  std::vector<std::string> chunks;
  for (int i = 0; i < 5000; ++i) chunks.push_back("chunk" + std::to_string(i));
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::vector<uint32_t> ids = {static_cast<uint32_t>(i), 7};
    cache.insert(chunks[i], ids);
  }
  CHECK(cache.size() == chunks.size());
  bool all_found = true;
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::span<const uint32_t> ids = cache.find(chunks[i]);
    all_found &= ids.size() == 2 && ids[0] == i && ids[1] == 7;
  }
  CHECK(all_found);
  CHECK(cache.find("absent").empty());
  cache.clear();
  CHECK(cache.size() == 0);
  CHECK(cache.find(chunks[0]).empty());
}
