#include <doctest/doctest.h>
#include <hdf5.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "small_disk.h"
#include "test_data_util.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;
namespace fs = std::filesystem;

namespace {

Tensor f32_tensor(const Shape& shape, float start, float step) {
  Tensor t = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + step * i;
  return t;
}

Checkpoint sample_checkpoint() {
  Checkpoint c;
  c.text["train_config"] = "[model]\nd_model = 64\n# ünïcode ✓\n";
  c.text["empty"] = "";
  c.integers["step"] = 1000;
  c.integers["min"] = std::numeric_limits<int64_t>::min();
  c.integers["max"] = std::numeric_limits<int64_t>::max();
  c.reals["loss"] = 2.718281828459045;
  c.reals["negative_zero"] = -0.0;
  c.reals["tiny"] = 4.9e-324;
  Tensor special = f32_tensor({2, 3}, 0.5f, -0.25f);
  special.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  special.data<float>()[1] = -std::numeric_limits<float>::infinity();
  special.data<float>()[2] = std::numeric_limits<float>::denorm_min();
  c.tensors.emplace_back("params/layers.0.attn.wq", special);
  c.tensors.emplace_back("adam_m/layers.0.attn.wq", f32_tensor({2, 3}, 1, 1));
  c.tensors.emplace_back("params/embed", Tensor::from({1.0 / 3, -1e300, 7}, {1, 1, 3}, DType::f64));
  c.tensors.emplace_back("ids", Tensor::from({-7, 0, 2147483647}, {3}, DType::i32));
  c.tensors.emplace_back("scalar", Tensor::scalar(42, DType::f32));
  c.tensors.emplace_back("nothing", Tensor::empty({0, 4}, DType::f32));
  return c;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void check_equal(const Checkpoint& read, const Checkpoint& written) {
  CHECK(read.text == written.text);
  CHECK(read.integers == written.integers);
  REQUIRE(read.reals.size() == written.reals.size());
  for (const auto& [name, value] : written.reals)
    CHECK(std::memcmp(&read.reals.at(name), &value, sizeof value) == 0);
  REQUIRE(read.tensors.size() == written.tensors.size());
  CHECK(std::is_sorted(read.tensors.begin(), read.tensors.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; }));
  for (const auto& [name, tensor] : written.tensors) {
    INFO(name);
    CHECK(same_bits(read.tensor(name, "test"), tensor));
  }
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A message of ours, not HDF5's internals: one line, no buffer address, no (size_t)-1.
bool one_clean_line(const std::string& message) {
  return message.find('\n') == std::string::npos && message.find("0x") == std::string::npos &&
         message.find("18446744073709551615") == std::string::npos;
}

// Open HDF5 files, datasets, groups, attributes and named types, in every file.
ssize_t open_hdf5_objects() { return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL); }

void overwrite_format_version(const std::string& path, int64_t version) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  hid_t attribute = H5Aopen_by_name(file, "/", "format_version", H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(attribute >= 0);
  CHECK(H5Awrite(attribute, H5T_NATIVE_INT64, &version) >= 0);
  H5Aclose(attribute);
  H5Fclose(file);
}

}  // namespace

TEST_CASE("checkpoint: write/read round trip is bit-exact; the .tmp is gone") {
  TempDir dir("ckpt_round_trip");
  std::string path = dir.file("ckpt.h5");
  Checkpoint written = sample_checkpoint();
  write_checkpoint(path, written);
  CHECK(fs::exists(path));
  CHECK(!fs::exists(path + ".tmp"));
  Checkpoint read = read_checkpoint(path);
  check_equal(read, written);
  CHECK(contains_all(error_of([&] { read.tensor("params/missing", path); }),
                     {path, "params/missing"}));
}

TEST_CASE("checkpoint: an existing file is replaced only when the new write succeeds") {
  TempDir dir("ckpt_replace");
  std::string path = dir.file("ckpt.h5");
  Checkpoint first = sample_checkpoint();
  write_checkpoint(path, first);
  Checkpoint broken;
  broken.tensors.emplace_back("w", f32_tensor({2}, 0, 1));
  broken.tensors.emplace_back("w", f32_tensor({2}, 0, 1));  // a name twice: HDF5 refuses
  CHECK(contains_all(error_of([&] { write_checkpoint(path, broken); }),
                     {"H5Dcreate2", path + ".tmp"}));
  CHECK(!fs::exists(path + ".tmp"));
  check_equal(read_checkpoint(path), first);

  Checkpoint second;
  second.integers["step"] = 2;
  write_checkpoint(path, second);
  Checkpoint read = read_checkpoint(path);
  CHECK(read.integers == second.integers);
  CHECK(read.tensors.empty());
}

TEST_CASE("checkpoint: missing, truncated and non-HDF5 files are refused naming the file") {
  TempDir dir("ckpt_refused");
  std::string missing = dir.file("missing.h5");
  CHECK(contains_all(error_of([&] { read_checkpoint(missing); }), {missing, "does not exist"}));

  std::string path = dir.file("ckpt.h5");
  write_checkpoint(path, sample_checkpoint());
  fs::resize_file(path, fs::file_size(path) / 2);
  std::string message = error_of([&] { read_checkpoint(path); });
  CHECK(contains_all(message, {path, "truncated"}));
  CHECK(message.find('\n') == std::string::npos);

  std::string text = dir.file("text.h5");
  write_bytes(text, "this is not HDF5\n");
  CHECK(contains_all(error_of([&] { read_checkpoint(text); }), {text, "not an HDF5 file"}));

  std::string foreign = dir.file("foreign.h5");
  H5Fclose(H5Fcreate(foreign.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  CHECK(contains_all(error_of([&] { read_checkpoint(foreign); }),
                     {foreign, "not an ssa checkpoint", "format_version"}));

  std::string fifo = dir.file("fifo.h5");  // opening it would wait for a writer
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(contains_all(error_of([&] { read_checkpoint(fifo); }),
                     {"checkpoint", fifo, "is not a regular file"}));
}

TEST_CASE("checkpoint: a flipped bit in tensor data is refused as corrupted") {
  TempDir dir("ckpt_bit_flip");
  std::string path = dir.file("ckpt.h5");
  Checkpoint c = sample_checkpoint();
  Tensor pattern = f32_tensor({64}, 1234.5f, 0.125f);
  c.tensors.emplace_back("params/pattern", pattern);
  write_checkpoint(path, c);

  std::string bytes = file_bytes(path);
  std::string data(static_cast<const char*>(pattern.raw()), pattern.nbytes());
  size_t at = bytes.find(data);
  REQUIRE(at != std::string::npos);
  CHECK(bytes.find(data, at + 1) == std::string::npos);
  bytes[at + data.size() / 2] ^= 0x10;
  write_bytes(path, bytes);
  CHECK(contains_all(error_of([&] { read_checkpoint(path); }),
                     {"checkpoint " + path + " is corrupted: checksum", "expected", "found"}));
}

TEST_CASE("checkpoint: an unknown format version is refused naming both versions") {
  TempDir dir("ckpt_version");
  std::string path = dir.file("ckpt.h5");
  write_checkpoint(path, sample_checkpoint());
  overwrite_format_version(path, 7);
  CHECK(contains_all(error_of([&] { read_checkpoint(path); }),
                     {path, "format version 7", "reads version 1"}));
}

TEST_CASE("checkpoint directory: names, list, latest, prune") {
  CHECK(checkpoint_file_name(1000) == "ckpt_00001000.h5");
  CHECK(checkpoint_file_name(123456789) == "ckpt_123456789.h5");
  TempDir dir("ckpt_directory");
  CHECK(list_checkpoints(dir.file("absent")).empty());
  CHECK(latest_checkpoint(dir.path()).empty());

  Checkpoint small;
  small.integers["step"] = 0;
  for (int64_t step : {100, 5, 20, 1000})
    write_checkpoint(dir.file(checkpoint_file_name(step)), small);
  for (const char* other : {"ckpt_00002000.h5.tmp", "notes.txt", "ckpt_abc.h5", "ckpt_.h5"})
    write_bytes(dir.file(other), "x");
  std::vector<std::string> expected;
  for (int64_t step : {5, 20, 100, 1000}) expected.push_back(dir.file(checkpoint_file_name(step)));
  CHECK(list_checkpoints(dir.path()) == expected);
  CHECK(latest_checkpoint(dir.path()) == expected.back());

  prune_checkpoints(dir.path(), 0);
  CHECK(list_checkpoints(dir.path()) == expected);
  prune_checkpoints(dir.path(), 2);
  expected.erase(expected.begin(), expected.begin() + 2);
  CHECK(list_checkpoints(dir.path()) == expected);
  prune_checkpoints(dir.path(), 5);
  CHECK(list_checkpoints(dir.path()).size() == 2);
  for (const char* other : {"ckpt_00002000.h5.tmp", "notes.txt", "ckpt_abc.h5", "ckpt_.h5"})
    CHECK(fs::exists(dir.file(other)));
}

TEST_CASE("checkpoint: a full disk is one line with the sizes; ids closed, .tmp removed") {
  SmallDisk disk("ckpt_full_disk", 1 << 20);
  if (!disk.mounted()) {
    MESSAGE(disk.why_not());
    return;
  }
  std::string earlier = disk.file(checkpoint_file_name(1));
  write_checkpoint(earlier, sample_checkpoint());
  const std::string path = disk.file(checkpoint_file_name(2));

  SUBCASE("one tensor larger than the disk: the data write fails") {
    Checkpoint big = sample_checkpoint();
    big.tensors.emplace_back("params/big", f32_tensor({1 << 19}, 0, 1));  // 2 MiB
    std::string message = error_of([&] { write_checkpoint(path, big); });
    CHECK(contains_all(
        message, {"checkpoint " + path + ": not enough disk space (needs about", "MiB free)"}));
    CHECK(one_clean_line(message));
  }
  SUBCASE("many small tensors: the metadata flush and the close fail") {
    Checkpoint many;
    for (int i = 0; i < 3000; ++i)
      many.tensors.emplace_back(fmt::format("params/t{}", i), f32_tensor({100}, 0, 1));
    std::string message = error_of([&] { write_checkpoint(path, many); });
    CHECK(contains_all(message, {"checkpoint " + path + ": not enough disk space (needs about"}));
    CHECK(one_clean_line(message));
  }
  CHECK(open_hdf5_objects() == 0);
  CHECK(!fs::exists(path));
  CHECK(!fs::exists(path + ".tmp"));
  check_equal(read_checkpoint(earlier), sample_checkpoint());
}

TEST_CASE("checkpoint: a disk out of inodes is named as such") {
  SmallDisk disk("ckpt_no_inodes", 1 << 20, 2);  // the root directory and one file
  if (!disk.mounted()) {
    MESSAGE(disk.why_not());
    return;
  }
  std::string earlier = disk.file(checkpoint_file_name(1));
  write_checkpoint(earlier, sample_checkpoint());
  const std::string path = disk.file(checkpoint_file_name(2));
  std::string message = error_of([&] { write_checkpoint(path, sample_checkpoint()); });
  CHECK(contains_all(message, {"checkpoint " + path + ": not enough disk space: no free inodes"}));
  CHECK(one_clean_line(message));
  CHECK(open_hdf5_objects() == 0);
  check_equal(read_checkpoint(earlier), sample_checkpoint());
}

TEST_CASE("checkpoint: HDF5's reason for a failed system call is cut to the system's message") {
  TempDir dir("ckpt_unwritable");
  std::string path = dir.file("missing_dir/ckpt.h5");
  std::string message = error_of([&] { write_checkpoint(path, sample_checkpoint()); });
  CHECK(contains_all(message, {"H5Fcreate", path + ".tmp", "No such file or directory"}));
  CHECK(one_clean_line(message));
  CHECK(open_hdf5_objects() == 0);
}

namespace {

// An HDF5 file that passes the format check (`format_version` = 1) and holds what `add` puts
// in it; ids are closed before the loader sees it.
template <typename Add>
void write_foreign_checkpoint(const std::string& path, Add&& add) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(file >= 0);
  hid_t scalar = H5Screate(H5S_SCALAR);
  hid_t attribute =
      H5Acreate2(file, "format_version", H5T_NATIVE_INT64, scalar, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attribute, H5T_NATIVE_INT64, &kCheckpointFormatVersion);
  H5Aclose(attribute);
  H5Sclose(scalar);
  add(file);
  H5Fclose(file);
  REQUIRE(open_hdf5_objects() == 0);
}

void add_dataset(hid_t file, const char* name, hid_t space, hid_t layout = H5P_DEFAULT) {
  hid_t dataset = H5Dcreate2(file, name, H5T_NATIVE_FLOAT, space, H5P_DEFAULT, layout, H5P_DEFAULT);
  REQUIRE(dataset >= 0);
  H5Dclose(dataset);
  H5Sclose(space);
}

}  // namespace

// Found with fuzz/checkpoint_fuzz.cpp or while writing it (docs/FUZZING.md): each file is
// well-formed HDF5 that the loader once misread.
TEST_CASE("checkpoint: an integer attribute of many values is refused, not read past its end") {
  // format_version held 32 int64: H5Aread wrote 256 bytes into one int64 on the stack.
  TempDir dir("ckpt_version_array");
  std::string path = dir.file("array.h5");
  write_foreign_checkpoint(path, [](hid_t file) {
    H5Adelete(file, "format_version");
    hsize_t count = 32;
    std::vector<int64_t> versions(count, kCheckpointFormatVersion);
    hid_t space = H5Screate_simple(1, &count, nullptr);
    hid_t attribute =
        H5Acreate2(file, "format_version", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attribute, H5T_NATIVE_INT64, versions.data());
    H5Aclose(attribute);
    H5Sclose(space);
  });
  CHECK(contains_all(
      error_of([&] { read_checkpoint(path); }),
      {"attribute 'format_version' of checkpoint " + path, "is not a single integer"}));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("checkpoint: a dataset declaring more data than the file holds is refused unallocated") {
  // A shape of 2^20 x 2^20 float32 (4 TiB, never written): the reader tried to allocate it and
  // said "out of host memory allocating 4398046511104 bytes", naming no file.
  TempDir dir("ckpt_huge_shape");
  std::string path = dir.file("huge.h5");
  write_foreign_checkpoint(path, [](hid_t file) {
    hsize_t dims[2] = {1 << 20, 1 << 20};
    add_dataset(file, "huge", H5Screate_simple(2, dims, nullptr));
  });
  CHECK(contains_all(
      error_of([&] { read_checkpoint(path); }),
      {"dataset 'huge' of checkpoint " + path,
       "has shape [1048576, 1048576], more data than the file's", "the file is damaged"}));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("checkpoint: a compact dataset whose shape overflows 64 bits is refused") {
  // Found by the fuzzer: the check above skipped compact storage, and the element count of
  // [2^40, 36·2^40] overflowed int64 (undefined behaviour) before any allocation.
  TempDir dir("ckpt_overflow_shape");
  std::string path = dir.file("overflow.h5");
  write_foreign_checkpoint(path, [](hid_t file) {
    hsize_t dims[2] = {hsize_t{1} << 40, hsize_t{36} << 40};
    hid_t layout = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(layout, H5D_COMPACT);
    add_dataset(file, "overflow", H5Screate_simple(2, dims, nullptr), layout);
    H5Pclose(layout);
  });
  CHECK(contains_all(error_of([&] { read_checkpoint(path); }),
                     {"dataset 'overflow' of checkpoint " + path,
                      "has shape [1099511627776, 39582418599936], too many elements to hold"}));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("checkpoint: a chunked dataset too large to allocate names the dataset") {
  // Chunked storage may be compressed, so its declared shape is not checked against the file's
  // size: [2^20, 2^26] float32 (256 TiB, past any address space) failed to allocate as "out of
  // host memory: could not allocate 256.00 TiB", naming neither the dataset nor the file.
  TempDir dir("ckpt_chunked_huge");
  std::string path = dir.file("chunked.h5");
  write_foreign_checkpoint(path, [](hid_t file) {
    hsize_t dims[2] = {hsize_t{1} << 20, hsize_t{1} << 26}, chunk[2] = {1, 1024};
    hid_t layout = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(layout, 2, chunk);
    add_dataset(file, "chunked", H5Screate_simple(2, dims, nullptr), layout);
    H5Pclose(layout);
  });
  CHECK(contains_all(error_of([&] { read_checkpoint(path); }),
                     {"dataset 'chunked' of checkpoint " + path,
                      "has shape [1048576, 67108864]: out of host memory: could not allocate "
                      "256.00 TiB"}));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("checkpoint: a dataset with a null dataspace is refused, not read as a scalar") {
  // HDF5 reads no element of a null dataspace: the scalar tensor stayed uninitialised.
  TempDir dir("ckpt_null_space");
  std::string path = dir.file("null.h5");
  write_foreign_checkpoint(path, [](hid_t file) { add_dataset(file, "w", H5Screate(H5S_NULL)); });
  CHECK(contains_all(error_of([&] { read_checkpoint(path); }),
                     {"dataset 'w' of checkpoint " + path, "has a null dataspace"}));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE(
    "checkpoint directory: unfinished checkpoints (.tmp) are deleted, not links, nothing else") {
  TempDir dir("ckpt_unfinished");
  for (const char* name :
       {"ckpt_00000004.h5.tmp", "ckpt_00000008.h5", "notes.tmp", "ckpt_x.h5.tmp", "log.jsonl"})
    std::ofstream(dir.file(name)) << "x";
  std::filesystem::create_symlink(dir.file("log.jsonl"), dir.file("ckpt_00000006.h5.tmp"));
  CHECK(remove_unfinished_checkpoints(dir.path()) ==
        std::vector<std::string>{dir.file("ckpt_00000004.h5.tmp")});
  for (const char* name :
       {"ckpt_00000008.h5", "notes.tmp", "ckpt_x.h5.tmp", "log.jsonl", "ckpt_00000006.h5.tmp"})
    CHECK(std::filesystem::exists(dir.file(name)));
  CHECK(!std::filesystem::exists(dir.file("ckpt_00000004.h5.tmp")));
  CHECK(remove_unfinished_checkpoints(dir.path()).empty());
}
