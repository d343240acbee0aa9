#pragma once
// Checkpoints: one HDF5 file per save, readable by h5py with no code of ours.
//
// Layout: each tensor is a plain dataset (float32, float64 or int32, little-endian,
// contiguous) at its name, '/' in a name making HDF5 groups ("params/layers.0.attn.wq").
// The root group's attributes hold `text` (variable-length UTF-8 strings), `integers`
// (int64), `reals` (float64), plus
//   format_version    int64, kCheckpointFormatVersion;
//   checksum_fnv1a64  uint64, 64-bit FNV-1a over, in this order: each text entry (name,
//                     value), each integer (name, 8 bytes), each real (name, 8 bytes), each
//                     tensor sorted by name (name, dtype name "f32"/"f64"/"i32", rank and
//                     dims as int64, data);
//                     strings as their int64 length then their bytes, all little-endian.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ssa {

constexpr int64_t kCheckpointFormatVersion = 1;

struct Checkpoint {
  std::map<std::string, std::string> text;  // e.g. the config text
  std::map<std::string, int64_t> integers;  // step, tokens_seen, RNG and loader state, ...
  std::map<std::string, double> reals;
  // CPU tensors (f32, f64 or i32). read_checkpoint returns them sorted by name.
  std::vector<std::pair<std::string, Tensor>> tensors;

  // The tensor stored as `name`; an error naming `path` (the checkpoint file) when absent.
  const Tensor& tensor(const std::string& name, const std::string& path) const;
  // Likewise for an integer or a text entry.
  int64_t integer(const std::string& name, const std::string& path) const;
  const std::string& text_entry(const std::string& name, const std::string& path) const;
};

// Writes `path`.tmp, flushes and fsyncs it, then renames it to `path`: a crash or an error
// never leaves a partial file under `path`, and an existing `path` is replaced only on success.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads a checkpoint back, refusing an unknown format version, a checksum mismatch, and
// files that are missing, truncated or not HDF5, each with one message naming the file.
Checkpoint read_checkpoint(const std::string& path);

// "ckpt_00001000.h5" for step 1000.
std::string checkpoint_file_name(int64_t step);
// Paths of the complete checkpoints in `dir` (named as above) of steps after `after_step`,
// oldest step first; none when `dir` does not exist.
std::vector<std::string> list_checkpoints(const std::string& dir, int64_t after_step = -1);
// Deletes the unfinished checkpoints in `dir` (regular files ckpt_<step>.h5.tmp, not links: a
// writer killed before its rename) and returns their paths.
std::vector<std::string> remove_unfinished_checkpoints(const std::string& dir);
// The newest checkpoint in `dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& dir);
// Deletes all but the newest `keep_last` checkpoints of `dir`; 0 keeps them all.
void prune_checkpoints(const std::string& dir, int64_t keep_last);

}  // namespace ssa
