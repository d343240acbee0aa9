// ssa-tokenize: train a BPE tokenizer on text files, encode them into token shards, decode a shard.
#include <fmt/format.h>
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <utility>

#include "core/command_line.h"
#include "core/files.h"
#include "core/threads.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;
using namespace ssa;

namespace {

constexpr const char* kAbout =
    "Trains a byte-level BPE tokenizer on text files, encodes them into token shards (llm.c's\n"
    "format), and decodes a shard.";

constexpr const char* kInputs =
    "files or directories (searched recursively, in sorted order); --glob keeps\n"
    "the files found in directories whose NAME matches PATTERN (e.g. '*.py');\n"
    "files named directly are always used. Each file is one document.";
constexpr const char* kGlob = "which files of the INPUT directories to read (default '*')";
constexpr const char* kThreads = "threads (default: one per core; at most 1024)";
constexpr int64_t kMaxThreads = 1024;

int default_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<std::string> files_in_directory(const std::string& directory,
                                            const std::string& name_glob) {
  std::vector<std::string> files;
  std::error_code error;
  fs::recursive_directory_iterator walk(directory, error), end;
  fs::path listing = directory;  // the directory a failed step was reading
  for (; !error && walk != end; walk.increment(error)) {
    std::string name = walk->path().filename().string();
    if (walk->is_regular_file() && fnmatch(name_glob.c_str(), name.c_str(), 0) == 0)
      files.push_back(walk->path().string());
    // The next step descends into a directory entry, or goes on listing this entry's parent.
    listing = walk->is_directory() ? walk->path() : walk->path().parent_path();
  }
  if (error) fail("cannot list directory {}: {}", listing.string(), error.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> collect_files(const std::vector<std::string>& inputs,
                                       const std::string& name_glob) {
  if (inputs.empty()) usage_error("no INPUT files or directories given");
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    fs::file_status status = fs::status(input, error);
    if (fs::is_directory(status)) {
      std::vector<std::string> found = files_in_directory(input, name_glob);
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(status)) {
      files.push_back(input);
    } else if (!fs::exists(status)) {
      fail("input {} does not exist", input);
    } else {
      fail("input {} is neither a regular file nor a directory", input);
    }
  }
  if (files.empty())
    fail("no input files: nothing in {} matches '{}'", fmt::join(inputs, ", "), name_glob);
  return files;
}

std::string read_document(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) fail("cannot read {}: {}", path, std::strerror(errno));
  std::string text(static_cast<size_t>(file.tellg()), '\0');
  file.seekg(0);
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!file) fail("cannot read {}", path);
  return text;
}

// Checked before training, which may take long: where the tokenizer goes can be written.
void check_output_file(const std::string& out) {
  const fs::path parent = fs::path(out).parent_path().empty() ? "." : fs::path(out).parent_path();
  std::error_code error;
  if (out.empty() || fs::is_directory(out, error))
    fail("--out '{}' is not a file name (a directory, or empty)", out);
  if (!fs::is_directory(parent, error))
    fail("cannot write --out {}: {} is not a directory", out, parent.string());
  if (::access(parent.c_str(), W_OK) != 0)
    fail("cannot write --out {}: {}: {}", out, parent.string(), std::strerror(errno));
}

// An output that would overwrite one of the inputs is a command-line mistake.
void check_not_an_input(const std::string& out, const std::vector<std::string>& files) {
  std::error_code error;
  for (const std::string& file : files)
    if (fs::equivalent(out, file, error))
      usage_error("--out {} names the input file {}; choose another --out", out, file);
}

int train_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-tokenize train",
                   "Learns a byte-level BPE vocabulary of N ids (257 + merges) and writes it to\n"
                   "TOK.");
  line.required("--out", "TOK", "where the tokenizer goes")
      .required("--vocab-size", "N", "ids in the vocabulary, at least 257")
      .option("--glob", "PATTERN", kGlob)
      .option("--threads", "N", kThreads)
      .positionals("INPUT", kInputs)
      .parse(args);
  const std::string out = line.get("--out");
  const int64_t vocab_size =
      line.get_int("--vocab-size", 0, Tokenizer::kFirstMerge, std::numeric_limits<int32_t>::max());
  const int threads =
      static_cast<int>(line.get_int("--threads", default_threads(), 1, kMaxThreads));
  check_output_file(out);
  std::vector<std::string> files = collect_files(line.positional(), line.get("--glob", "*"));
  check_not_an_input(out, files);

  std::vector<std::string> documents;
  size_t bytes = 0;
  for (const std::string& path : files) {
    documents.push_back(read_document(path));
    bytes += documents.back().size();
  }
  auto start = std::chrono::steady_clock::now();
  Tokenizer tokenizer = Tokenizer::train(documents, vocab_size, threads);
  double seconds = seconds_since(start);
  tokenizer.save(out);
  fmt::print("trained on {} documents, {} bytes in {:.2f} s ({:.2f} MB/s, {} threads)\n",
             documents.size(), bytes, seconds, bytes / 1e6 / seconds, threads);
  fmt::print("wrote {}: vocab size {} ({} merges)\n", out, tokenizer.vocab_size(),
             tokenizer.merges().size());
  return 0;
}

// Collects a split's tokens and writes them out as shards of shard_tokens tokens.
class ShardWriter {
 public:
  ShardWriter(std::string directory, std::string split, int64_t shard_tokens, ShardVersion version)
      : directory_(std::move(directory)),
        split_(std::move(split)),
        shard_tokens_(static_cast<size_t>(shard_tokens)),
        version_(version) {}

  void append(const std::vector<uint32_t>& tokens) {
    buffer_.insert(buffer_.end(), tokens.begin(), tokens.end());
    size_t written = 0;
    for (; buffer_.size() - written >= shard_tokens_; written += shard_tokens_)
      write({buffer_.data() + written, shard_tokens_});
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(written));
  }
  void finish() {
    if (!buffer_.empty()) write(buffer_);
    buffer_.clear();
  }
  int64_t tokens() const { return tokens_; }
  int shards() const { return static_cast<int>(written_.size()); }
  // Removes the shards written so far; returns how many there were.
  int remove_written() {
    for (const std::string& path : written_) std::remove(path.c_str());
    return static_cast<int>(std::exchange(written_, {}).size());
  }

 private:
  void write(std::span<const uint32_t> tokens) {
    const std::string path = fmt::format("{}/{}_{:06d}.bin", directory_, split_, shards());
    write_shard(path, tokens, version_);
    written_.push_back(path);
    tokens_ += static_cast<int64_t>(tokens.size());
  }

  std::string directory_, split_;
  size_t shard_tokens_;
  ShardVersion version_;
  std::vector<uint32_t> buffer_;
  int64_t tokens_ = 0;
  std::vector<std::string> written_;
};

// Document i of n goes to val when floor((i + 1) k / n) > floor(i k / n), k = the val count:
// exactly k documents, evenly spaced.
std::vector<bool> choose_val_documents(size_t documents, double fraction) {
  size_t val_count = static_cast<size_t>(fraction * static_cast<double>(documents) + 0.5);
  // At least one document each way where there are two; a lone document trains.
  if (fraction > 0 && documents >= 2) val_count = std::clamp<size_t>(val_count, 1, documents - 1);
  if (documents < 2) val_count = 0;
  std::vector<bool> is_val(documents);
  for (size_t i = 0; i < documents; ++i)
    is_val[i] = (i + 1) * val_count / documents > i * val_count / documents;
  return is_val;
}

// Reads and encodes files[first, last) on `threads` threads; result i is EOT + document i.
std::vector<std::vector<uint32_t>> encode_files(const std::vector<std::string>& files, size_t first,
                                                size_t last, std::vector<Encoder>& encoders,
                                                size_t& bytes) {
  std::vector<std::vector<uint32_t>> results(last - first);
  std::vector<size_t> bytes_read(encoders.size(), 0);
  std::vector<std::exception_ptr> errors(encoders.size());
  std::atomic<size_t> next{first};
  auto work = [&](int worker) {
    try {
      for (size_t i; (i = next.fetch_add(1)) < last;) {
        std::string text = read_document(files[i]);
        bytes_read[worker] += text.size();
        results[i - first].push_back(Tokenizer::kEndOfText);
        encoders[worker].encode(text, results[i - first]);
      }
    } catch (...) {
      errors[worker] = std::current_exception();
      next = last;
    }
  };
  run_on_threads(static_cast<int>(encoders.size()), work);
  for (const std::exception_ptr& error : errors)
    if (error) std::rethrow_exception(error);
  for (size_t count : bytes_read) bytes += count;
  return results;
}

// Files from `first` up to ~64 MB of text (at least one file): one parallel batch.
size_t batch_end(const std::vector<std::string>& files, size_t first) {
  constexpr uintmax_t kBatchBytes = 64 << 20;
  uintmax_t bytes = 0;
  size_t last = first;
  while (last < files.size() && (last == first || bytes < kBatchBytes)) {
    std::error_code error;
    uintmax_t size = fs::file_size(files[last++], error);
    bytes += error ? 0 : size;
  }
  return last;
}

struct EncodeOptions {
  std::string tokenizer, out_dir, name_glob;
  std::vector<std::string> inputs;
  int64_t shard_tokens;
  double val_fraction;
  int threads;
};

EncodeOptions parse_encode_options(const std::vector<std::string>& args) {
  CommandLine line(
      "ssa-tokenize encode",
      "Writes DIR/train_000000.bin ... and DIR/val_000000.bin ... (version 1 = uint16 when the\n"
      "vocab fits, else 2). Every document is preceded by <|endoftext|> (as llm.c does). A\n"
      "fraction of the documents, evenly spaced in input order, goes to val. The output does not\n"
      "depend on --threads.");
  line.required("--tokenizer", "TOK", "the tokenizer (ssa-tokenize train --out)")
      .required("--out-dir", "DIR", "where the shards go (created; it must hold none yet)")
      .option("--shard-tokens", "N", "tokens per shard (default 10000000)")
      .option("--val-fraction", "F",
              "the share of documents that go to val (default 0.01; at least one\n"
              "when F > 0 and there are two or more; a single document trains)")
      .option("--threads", "N", kThreads)
      .option("--glob", "PATTERN", kGlob)
      .positionals("INPUT", kInputs)
      .parse(args);
  EncodeOptions options;
  options.tokenizer = line.get("--tokenizer");
  options.out_dir = line.get("--out-dir");
  options.name_glob = line.get("--glob", "*");
  options.inputs = line.positional();
  options.shard_tokens = line.get_int("--shard-tokens", 10'000'000, 1);
  if (options.shard_tokens > INT32_MAX) usage_error("--shard-tokens must be at most {}", INT32_MAX);
  options.val_fraction = line.get_double("--val-fraction", 0.01, 0);
  if (options.val_fraction >= 1)
    usage_error("--val-fraction must be in [0, 1), got {}", options.val_fraction);
  options.threads = static_cast<int>(line.get_int("--threads", default_threads(), 1, kMaxThreads));
  return options;
}

// Creates the directory; refuses one that already holds shards, which a glob would mix in, or
// that takes no files.
void prepare_output_directory(const std::string& directory) {
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) fail("cannot create output directory {}: {}", directory, error.message());
  for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
    std::string name = entry.path().filename().string();
    if (fnmatch("train_*.bin", name.c_str(), 0) == 0 || fnmatch("val_*.bin", name.c_str(), 0) == 0)
      fail("output directory {} already holds shards ({}); remove them or pick another --out-dir",
           directory, entry.path().string());
  }
  check_directory_takes_files(directory);
}

// Encodes every file into the two writers' shards.
void encode_into(const EncodeOptions& options, const std::vector<std::string>& files,
                 const Tokenizer& tokenizer, ShardWriter& train, ShardWriter& val, size_t& bytes) {
  std::vector<bool> is_val = choose_val_documents(files.size(), options.val_fraction);
  std::vector<Encoder> encoders(static_cast<size_t>(options.threads), Encoder(tokenizer));
  for (size_t first = 0, last; first < files.size(); first = last) {
    last = batch_end(files, first);
    std::vector<std::vector<uint32_t>> encoded = encode_files(files, first, last, encoders, bytes);
    for (size_t i = first; i < last; ++i) (is_val[i] ? val : train).append(encoded[i - first]);
  }
  train.finish();
  val.finish();
}

int encode_command(const std::vector<std::string>& args) {
  EncodeOptions options = parse_encode_options(args);
  Tokenizer tokenizer = Tokenizer::load(options.tokenizer);
  std::vector<std::string> files = collect_files(options.inputs, options.name_glob);
  prepare_output_directory(options.out_dir);
  ShardVersion version = tokenizer.vocab_size() <= 65536 ? ShardVersion::u16 : ShardVersion::u32;
  ShardWriter train(options.out_dir, "train", options.shard_tokens, version);
  ShardWriter val(options.out_dir, "val", options.shard_tokens, version);
  auto start = std::chrono::steady_clock::now();
  size_t bytes = 0;
  try {
    encode_into(options, files, tokenizer, train, val, bytes);
  } catch (const Error& error) {
    // Shards of part of the input would look complete to a glob: none stays.
    const int removed = train.remove_written() + val.remove_written();
    if (removed == 0) throw;
    fail("{}; removed the {} shards this run had written to {}", error.what(), removed,
         options.out_dir);
  }
  double seconds = seconds_since(start);
  int64_t tokens = train.tokens() + val.tokens();
  fmt::print(
      "encoded {} documents, {} bytes -> {} tokens ({:.3f} bytes/token) in {:.2f} s "
      "({:.2f} MB/s, {} threads)\n",
      files.size(), bytes, tokens, static_cast<double>(bytes) / tokens, seconds,
      bytes / 1e6 / seconds, options.threads);
  fmt::print("wrote {}: train {} tokens in {} shards, val {} tokens in {} shards\n",
             options.out_dir, train.tokens(), train.shards(), val.tokens(), val.shards());
  return 0;
}

int decode_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-tokenize decode", "Prints the text of a shard (its first N tokens).");
  line.required("--tokenizer", "TOK", "the tokenizer the shard was encoded with")
      .option("--max-tokens", "N", "tokens to print (default: all)")
      .positionals("SHARD", "the shard to print")
      .parse(args);
  Tokenizer tokenizer = Tokenizer::load(line.get("--tokenizer"));
  if (line.positional().size() != 1)
    usage_error("'decode' takes one SHARD, got {}", line.positional().size());
  Shard shard(line.positional()[0], tokenizer.vocab_size());
  int64_t count = std::min(shard.size(), line.get_int("--max-tokens", shard.size(), 0));
  std::vector<int32_t> read(static_cast<size_t>(count));
  shard.read(0, count, read.data());
  const std::vector<uint32_t> ids(read.begin(), read.end());
  std::string text = tokenizer.decode(ids);
  fmt::print("{}", text);  // a failed write throws, naming its reason (core/tool.h)
  return 0;
}

const std::vector<Subcommand> kCommands{
    {"train", "learn a byte-level BPE vocabulary from text files", train_command},
    {"encode", "encode text files into train and val shards", encode_command},
    {"decode", "print the text of a shard", decode_command},
};

}  // namespace

int main(int argc, char** argv) {
  return run_tool("ssa-tokenize", [&] {
    return run_subcommand("ssa-tokenize", kAbout, kCommands, arguments(argc, argv, 1));
  });
}
