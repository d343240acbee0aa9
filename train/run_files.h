#pragma once
// The files a run reads and writes besides its checkpoint to resume from, opened and checked
// before the first step, so that a mistake in them ends the run at once instead of after hours
// of training: the training shards (data.train), the validation shards when validation runs
// (data.val not ""), the tokenizer against the model's vocabulary (data.tokenizer), and, on
// rank 0 which writes them, an out_dir that takes files and has room for a checkpoint. Every
// failure is one message that begins with the key.
#include <cstdint>
#include <optional>
#include <string>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "train/settings.h"

namespace ssa {

struct RunFiles {
  Loader train;                        // data.train, shuffled, this rank's share
  std::optional<Tokenizer> tokenizer;  // data.tokenizer; none when it is ""
  int64_t val_windows = 0;             // windows per epoch of data.val; 0 when it is ""
};

// Opens and checks everything listed above; `rank` of `world` reads its share of the shards.
RunFiles open_run_files(const TrainSettings& settings, int rank, int world);

// The validation shards (data.val), in order, from their first window.
Loader open_validation_data(const TrainSettings& settings, int rank, int world);

// Bytes a checkpoint of `model` takes on disk: parameters and both AdamW moments in the master
// dtype (f32: 12 bytes per parameter; f64: 24), and room for the HDF5 headers and attributes.
int64_t checkpoint_bytes(const ModelConfig& model, DType master);

// Creates train.out_dir `out_dir` when missing, deletes the unfinished checkpoints an earlier
// run left there (saying so), then checks that a file can be written in it and that its file
// system has `needed_bytes` free; a directory it created for a check that fails is removed
// again.
void check_out_dir(const std::string& out_dir, int64_t needed_bytes);

}  // namespace ssa
