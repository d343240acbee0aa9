#include "train/run_files.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "models/decoder.h"
#include "train/checkpoint.h"

namespace ssa {
namespace {

// HDF5 object headers and attributes: generous per dataset (three per parameter tensor: the
// weights and two moments) and for the file with its config text.
constexpr int64_t kDatasetHeaderBytes = 4 << 10;
constexpr int64_t kFileHeaderBytes = 64 << 10;

// `open()`, its error prefixed by the config key it comes from (and `hint` appended).
template <typename Open>
auto for_key(const std::string& key, Open open, const std::string& hint = "") {
  try {
    return open();
  } catch (const Error& error) {
    fail("{}: {}{}", key, error.what(), hint);
  }
}

Loader open_shards(const std::string& key, const std::string& pattern, const TrainSettings& s,
                   bool shuffle, int rank, int world, const std::string& hint = "") {
  const std::vector<std::string> files = for_key(
      key, [&] { return expand_glob(pattern); }, hint);
  return for_key(key, [&] {
    return Loader(files, s.run.seq_len, s.model.vocab_size, s.run.seed, shuffle, rank, world);
  });
}

// The tokenizer, which may have fewer ids than the model (samples then draw only its ids) but
// not more: the model could never produce those.
std::optional<Tokenizer> open_tokenizer(const TrainSettings& s) {
  const std::string& path = s.run.tokenizer_path;
  if (path.empty()) return std::nullopt;
  Tokenizer tokenizer = for_key("data.tokenizer", [&] { return Tokenizer::load(path); });
  if (tokenizer.vocab_size() > s.model.vocab_size)
    fail(
        "data.tokenizer: {} has {} ids, more than model.vocab_size = {}; set model.vocab_size "
        "to at least {}",
        path, tokenizer.vocab_size(), s.model.vocab_size, tokenizer.vocab_size());
  return tokenizer;
}

// Creates and removes a file in `dir`.
// Shards encoded with another tokenizer would train fine and sample nonsense.
void check_tokenizer_covers(const std::string& key, const Loader& shards,
                            const std::optional<Tokenizer>& tokenizer, const TrainSettings& s) {
  const Shard& shard = shards.shard_with_largest_id();
  if (!tokenizer || shard.largest_id() < tokenizer->vocab_size()) return;
  fail(
      "{}: token shard {} holds id {}, but the tokenizer {} (data.tokenizer) has {} ids: the "
      "shards were encoded with another tokenizer",
      key, shard.path(), shard.largest_id(), s.run.tokenizer_path, tokenizer->vocab_size());
}

}  // namespace

RunFiles open_run_files(const TrainSettings& s, int rank, int world) {
  RunFiles files{open_shards("data.train", s.run.train_glob, s, true, rank, world), std::nullopt,
                 0};
  files.tokenizer = open_tokenizer(s);
  check_tokenizer_covers("data.train", files.train, files.tokenizer, s);
  if (!s.run.val_glob.empty()) {  // opened to check it; each validation opens it again
    const Loader val = open_shards(
        "data.val", s.run.val_glob, s, false, rank, world,
        " (validation runs after the last step; set data.val = \"\" to train without it)");
    check_tokenizer_covers("data.val", val, files.tokenizer, s);
    files.val_windows = val.windows_per_epoch();
  }
  if (rank == 0)
    check_out_dir(s.run.out_dir, s.run.ckpt_every < 0 ? 0 : checkpoint_bytes(s.model, s.run.dtype));
  return files;
}

Loader open_validation_data(const TrainSettings& s, int rank, int world) {
  return open_shards("data.val", s.run.val_glob, s, false, rank, world);
}

int64_t checkpoint_bytes(const ModelConfig& model, DType master) {
  const std::vector<ParamSpec> specs = decoder_param_specs(model);
  int64_t parameters = 0;
  for (const ParamSpec& spec : specs) parameters += spec.shape.numel();
  const int64_t buffers = 3;  // parameters, AdamW first and second moments
  const auto element_bytes = static_cast<int64_t>(dtype_size(master));
  return buffers * (parameters * element_bytes +
                    static_cast<int64_t>(specs.size()) * kDatasetHeaderBytes) +
         kFileHeaderBytes;
}

namespace {

// The checks of an out_dir that exists: a file can be written there, and a checkpoint fits.
void check_existing_out_dir(const std::string& out_dir, int64_t needed_bytes) {
  for_key("train.out_dir", [&] {
    check_directory_takes_files(out_dir);
    return 0;
  });
  struct statvfs disk {};
  if (::statvfs(out_dir.c_str(), &disk) != 0)
    fail("train.out_dir: cannot read the free space of '{}': {}", out_dir, std::strerror(errno));
  const auto free_bytes = static_cast<int64_t>(disk.f_bavail) * static_cast<int64_t>(disk.f_frsize);
  if (free_bytes < needed_bytes)
    fail(
        "train.out_dir: '{}' has {} free, less than the {} a checkpoint of this model takes; "
        "free some space or choose another train.out_dir",
        out_dir, byte_text(static_cast<size_t>(free_bytes)),
        byte_text(static_cast<size_t>(needed_bytes)));
}

}  // namespace

void check_out_dir(const std::string& out_dir, int64_t needed_bytes) {
  const bool existed = std::filesystem::exists(out_dir);
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) fail("train.out_dir: cannot create '{}': {}", out_dir, error.message());
  for (const std::string& path :
       for_key("train.out_dir", [&] { return remove_unfinished_checkpoints(out_dir); }))
    fmt::print("train.out_dir: deleted {}, a checkpoint an earlier run left unfinished\n", path);
  try {
    check_existing_out_dir(out_dir, needed_bytes);
  } catch (const Error&) {
    if (!existed) std::filesystem::remove(out_dir, error);  // refused: leave no empty directory
    throw;
  }
}

}  // namespace ssa
