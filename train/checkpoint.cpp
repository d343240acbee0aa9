#include "train/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <utility>

#include "core/files.h"

// SSA_H5(path, H5Function, args...): calls H5Function(args...) and raises an ssa::Error naming
// the call, the file and HDF5's reason if it fails; returns the call's result.
#define SSA_H5(path, function, ...) ::ssa::h5_checked(function(__VA_ARGS__), #function, path)

namespace ssa {
namespace {

static_assert(std::endian::native == std::endian::little,
              "checkpoints store tensors and the checksum input little-endian");

constexpr const char* kVersionAttribute = "format_version";
constexpr const char* kChecksumAttribute = "checksum_fnv1a64";

// The most specific message on HDF5's error stack, e.g. "truncated file: eof = 1024, ...". A
// failed system call's message ("file write failed: time = ..., errno = 28, error message =
// 'No space left on device', buf = 0x..., ...") is cut to its first words and the system's
// reason: "file write failed: No space left on device".
std::string hdf5_error_detail() {
  const char* innermost = nullptr;
  auto first = [](unsigned index, const H5E_error2_t* error, void* out) -> herr_t {
    if (index == 0) *static_cast<const char**>(out) = error->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first, &innermost);
  if (!innermost) return "no detail from HDF5";
  std::string_view detail = innermost;
  constexpr std::string_view reason_key = "error message = '";
  size_t reason = detail.find(reason_key), action_end = detail.find(':');
  if (reason == std::string_view::npos || action_end > reason) return std::string(detail);
  reason += reason_key.size();
  size_t reason_end = detail.find('\'', reason);
  return fmt::format("{}: {}", detail.substr(0, action_end),
                     detail.substr(reason, reason_end - reason));
}

// HDF5 calls return a negative value on failure.
template <typename T>
T h5_checked(T result, const char* call, const std::string& path) {
  if (result < 0) fail("HDF5 {} failed on checkpoint {}: {}", call, path, hdf5_error_detail());
  return result;
}

// Owns an HDF5 id; closes it at the end of the scope unless released.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  H5Id(H5Id&& other) noexcept : id_(other.release()), close_(other.close_) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  operator hid_t() const { return id_; }
  hid_t release() { return std::exchange(id_, -1); }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Our messages replace HDF5's printed error stack.
void silence_hdf5_errors(const std::string& path) {
  SSA_H5(path, H5Eset_auto2, H5E_DEFAULT, nullptr, nullptr);
}

constexpr DType kStoredDTypes[] = {DType::f32, DType::f64, DType::i32};

hid_t hdf5_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::f64:
      return H5T_NATIVE_DOUBLE;
    case DType::i32:
      return H5T_NATIVE_INT32;
    case DType::bf16:
      break;
  }
  SSA_CHECK(false, "checkpoints hold f32, f64 or i32 tensors, not {}", dtype_name(dtype));
  return -1;
}

// Variable-length UTF-8 strings: h5py reads them as str.
H5Id string_type(const std::string& path) {
  H5Id type(SSA_H5(path, H5Tcopy, H5T_C_S1), H5Tclose);
  SSA_H5(path, H5Tset_size, type, H5T_VARIABLE);
  SSA_H5(path, H5Tset_cset, type, H5T_CSET_UTF8);
  return type;
}

class Fnv1a64 {
 public:
  void add_bytes(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ bytes[i]) * 0x100000001b3ull;
  }
  void add_integer(int64_t value) { add_bytes(&value, sizeof value); }
  void add_string(std::string_view text) {
    add_integer(static_cast<int64_t>(text.size()));
    add_bytes(text.data(), text.size());
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

// The checksum described in checkpoint.h.
uint64_t checksum(const Checkpoint& checkpoint) {
  Fnv1a64 hash;
  for (const auto& [name, text] : checkpoint.text) {
    hash.add_string(name);
    hash.add_string(text);
  }
  for (const auto& [name, value] : checkpoint.integers) {
    hash.add_string(name);
    hash.add_integer(value);
  }
  for (const auto& [name, value] : checkpoint.reals) {
    hash.add_string(name);
    hash.add_bytes(&value, sizeof value);
  }
  std::vector<const std::pair<std::string, Tensor>*> tensors;
  for (const auto& entry : checkpoint.tensors) tensors.push_back(&entry);
  std::sort(tensors.begin(), tensors.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (const auto* entry : tensors) {
    const Tensor& tensor = entry->second;
    hash.add_string(entry->first);
    hash.add_string(dtype_name(tensor.dtype()));
    hash.add_integer(tensor.rank());
    for (int axis = 0; axis < tensor.rank(); ++axis) hash.add_integer(tensor.dim(axis));
    hash.add_bytes(tensor.raw(), tensor.nbytes());
  }
  return hash.value();
}

// ---- writing

// About the bytes a checkpoint file takes: the data, plus HDF5's object headers and links
// (measured on ssa-train's checkpoints: about 450 bytes an object).
uint64_t estimated_file_bytes(const Checkpoint& checkpoint) {
  constexpr uint64_t kFileBytes = 4096, kObjectBytes = 1024;
  uint64_t bytes = kFileBytes;
  for (const auto& [name, text] : checkpoint.text)
    bytes += kObjectBytes + name.size() + text.size();
  for (const auto& [name, tensor] : checkpoint.tensors)
    bytes += kObjectBytes + name.size() + static_cast<uint64_t>(tensor.nbytes());
  bytes += (checkpoint.integers.size() + checkpoint.reals.size()) * kObjectBytes;
  return bytes;
}

// After a failed write of `path` (its temporary file removed): a one-line error when the disk
// cannot hold `needed` bytes or has no file left (inodes; a file system that does not count
// them reports none in all); otherwise returns, and the caller reports the failure itself.
void fail_if_disk_too_small(const std::string& path, uint64_t needed) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  struct statvfs disk {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &disk) != 0) return;
  if (disk.f_files > 0 && disk.f_favail == 0)
    fail(
        "checkpoint {}: not enough disk space: no free inodes (all {} files of the file "
        "system are used)",
        path, disk.f_files);
  uint64_t free_bytes = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
  if (free_bytes >= needed) return;
  fail(
      "checkpoint {}: not enough disk space (needs about {} bytes = {:.1f} MiB, {} bytes = "
      "{:.1f} MiB free)",
      path, needed, needed / 1048576.0, free_bytes, free_bytes / 1048576.0);
}

// File access for writing: the sec2 driver (one descriptor, which discard_pending_writes can
// swap) and no sieve buffer, so that raw data reaches the disk inside H5Dwrite and closing a
// dataset has nothing left to write. HDF5 keeps the id of an object whose close failed while
// freeing the object, and crashes closing it again at exit: no close may fail.
H5Id write_access_properties(const std::string& path) {
  H5Id properties(SSA_H5(path, H5Pcreate, H5P_FILE_ACCESS), H5Pclose);
  SSA_H5(path, H5Pset_fapl_sec2, properties);
  SSA_H5(path, H5Pset_sieve_buf_size, properties, 0);
  return properties;
}

// After a failed write: points the file's descriptor at an anonymous memory file, so that
// closing the file (which flushes HDF5's metadata cache) cannot fail for lack of disk space.
// Best effort: where that fails the close may fail too, and its error is the one reported.
void discard_pending_writes(hid_t file) {
  void* handle = nullptr;
  if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || handle == nullptr) return;
  int memory = ::memfd_create("ssa-discarded-checkpoint", MFD_CLOEXEC);
  if (memory < 0) return;
  ::dup2(memory, *static_cast<int*>(handle));  // also closes the descriptor of the disk file
  ::close(memory);
}

void write_attribute(hid_t object, const std::string& name, hid_t type, const void* value,
                     const std::string& path) {
  H5Id space(SSA_H5(path, H5Screate, H5S_SCALAR), H5Sclose);
  H5Id attribute(
      SSA_H5(path, H5Acreate2, object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  SSA_H5(path, H5Awrite, attribute, type, value);
}

void write_attributes(hid_t root, const Checkpoint& checkpoint, const std::string& path) {
  int64_t version = kCheckpointFormatVersion;
  uint64_t sum = checksum(checkpoint);
  write_attribute(root, kVersionAttribute, H5T_NATIVE_INT64, &version, path);
  write_attribute(root, kChecksumAttribute, H5T_NATIVE_UINT64, &sum, path);
  H5Id text_type = string_type(path);
  for (const auto& [name, text] : checkpoint.text) {
    const char* chars = text.c_str();
    write_attribute(root, name, text_type, &chars, path);
  }
  for (const auto& [name, value] : checkpoint.integers)
    write_attribute(root, name, H5T_NATIVE_INT64, &value, path);
  for (const auto& [name, value] : checkpoint.reals)
    write_attribute(root, name, H5T_NATIVE_DOUBLE, &value, path);
}

void write_tensor(hid_t file, hid_t link_properties, const std::string& name, const Tensor& tensor,
                  const std::string& path) {
  std::vector<hsize_t> dims(tensor.shape().dims.begin(),
                            tensor.shape().dims.begin() + tensor.rank());
  H5Id space(SSA_H5(path, H5Screate_simple, tensor.rank(), dims.data(), nullptr), H5Sclose);
  hid_t type = hdf5_type(tensor.dtype());
  H5Id dataset(SSA_H5(path, H5Dcreate2, file, name.c_str(), type, space, link_properties,
                      H5P_DEFAULT, H5P_DEFAULT),
               H5Dclose);
  if (tensor.numel() > 0)
    SSA_H5(path, H5Dwrite, dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw());
}

void write_contents(hid_t file, const Checkpoint& checkpoint, const std::string& path) {
  H5Id root(SSA_H5(path, H5Gopen2, file, "/", H5P_DEFAULT), H5Gclose);
  write_attributes(root, checkpoint, path);
  H5Id link_properties(SSA_H5(path, H5Pcreate, H5P_LINK_CREATE), H5Pclose);
  SSA_H5(path, H5Pset_create_intermediate_group, link_properties, 1);  // "a/b" makes group a
  for (const auto& [name, tensor] : checkpoint.tensors)
    write_tensor(file, link_properties, name, tensor, path);
}

void write_file(const std::string& path, const Checkpoint& checkpoint) {
  H5Id file(SSA_H5(path, H5Fcreate, path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT,
                   write_access_properties(path)),
            H5Fclose);
  try {
    write_contents(file, checkpoint, path);
    SSA_H5(path, H5Fflush, file, H5F_SCOPE_GLOBAL);
  } catch (...) {
    discard_pending_writes(file);
    throw;
  }
  SSA_H5(path, H5Fclose, file.release());
}

// fsync on a file or a directory (to make a rename inside it durable).
void sync_to_disk(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  int error = fd < 0 || ::fsync(fd) != 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  if (error != 0) fail("cannot flush {} to disk: {}", path, std::strerror(error));
}

// ---- reading

// Whether an attribute holds exactly one value: reading any other into one variable would write
// past it.
bool single_value(hid_t attribute, const std::string& path) {
  H5Id space(SSA_H5(path, H5Aget_space, attribute), H5Sclose);
  return SSA_H5(path, H5Sget_simple_extent_npoints, space) == 1;
}

// The root's attribute `name` into `value` (`memory_type` says int64 or uint64); an error unless
// it holds exactly one integer.
void read_root_integer(hid_t root, const char* name, hid_t memory_type, void* value,
                       const std::string& path) {
  H5Id attribute(SSA_H5(path, H5Aopen, root, name, H5P_DEFAULT), H5Aclose);
  H5Id type(SSA_H5(path, H5Aget_type, attribute), H5Tclose);
  if (SSA_H5(path, H5Tget_class, type) != H5T_INTEGER || !single_value(attribute, path))
    fail("attribute '{}' of checkpoint {} is not a single integer", name, path);
  SSA_H5(path, H5Aread, attribute, memory_type, value);
}

void check_format_version(hid_t root, const std::string& path) {
  if (SSA_H5(path, H5Aexists, root, kVersionAttribute) == 0)
    fail("{} is not an ssa checkpoint: it has no '{}' attribute", path, kVersionAttribute);
  int64_t version = 0;
  read_root_integer(root, kVersionAttribute, H5T_NATIVE_INT64, &version, path);
  if (version != kCheckpointFormatVersion)
    fail("checkpoint {} has format version {}; this build reads version {}", path, version,
         kCheckpointFormatVersion);
}

uint64_t stored_checksum(hid_t root, const std::string& path) {
  if (SSA_H5(path, H5Aexists, root, kChecksumAttribute) == 0)
    fail("checkpoint {} has no '{}' attribute", path, kChecksumAttribute);
  uint64_t sum = 0;
  read_root_integer(root, kChecksumAttribute, H5T_NATIVE_UINT64, &sum, path);
  return sum;
}

std::vector<std::string> attribute_names(hid_t object, const std::string& path) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  SSA_H5(path, H5Aiterate2, object, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names);
  return names;
}

std::string read_string(hid_t attribute, hid_t type, const std::string& name,
                        const std::string& path) {
  if (SSA_H5(path, H5Tis_variable_str, type) == 0)
    fail("attribute '{}' of checkpoint {} is a fixed-length string; expected a variable-length one",
         name, path);
  char* chars = nullptr;
  SSA_H5(path, H5Aread, attribute, string_type(path), &chars);
  std::string text = chars ? chars : "";
  SSA_H5(path, H5free_memory, chars);
  return text;
}

void read_attribute(hid_t root, const std::string& name, Checkpoint& checkpoint,
                    const std::string& path) {
  H5Id attribute(SSA_H5(path, H5Aopen, root, name.c_str(), H5P_DEFAULT), H5Aclose);
  H5Id type(SSA_H5(path, H5Aget_type, attribute), H5Tclose);
  if (!single_value(attribute, path))
    fail("attribute '{}' of checkpoint {} is not a single value", name, path);
  switch (SSA_H5(path, H5Tget_class, type)) {
    case H5T_STRING:
      checkpoint.text[name] = read_string(attribute, type, name, path);
      break;
    case H5T_INTEGER:
      SSA_H5(path, H5Aread, attribute, H5T_NATIVE_INT64, &checkpoint.integers[name]);
      break;
    case H5T_FLOAT:
      SSA_H5(path, H5Aread, attribute, H5T_NATIVE_DOUBLE, &checkpoint.reals[name]);
      break;
    default:
      fail("attribute '{}' of checkpoint {} is not a string, an integer or a float", name, path);
  }
}

// Every link below the root ("params", "params/w", ...), groups included.
std::vector<std::string> object_names(hid_t file, const std::string& path) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  SSA_H5(path, H5Lvisit, file, H5_INDEX_NAME, H5_ITER_INC, collect, &names);
  return names;
}

DType stored_dtype(hid_t dataset, const std::string& name, const std::string& path) {
  H5Id type(SSA_H5(path, H5Dget_type, dataset), H5Tclose);
  for (DType dtype : kStoredDTypes)
    if (SSA_H5(path, H5Tequal, type, hdf5_type(dtype)) > 0) return dtype;
  fail(
      "dataset '{}' of checkpoint {} has an unsupported element type; expected float32, "
      "float64 or int32",
      name, path);
}

// Refuses, before allocating it, a shape whose data the file cannot hold: a damaged header.
// Chunked storage may be compressed (by other tools; ours is contiguous), so there the data only
// has to have a size at all (under 2^63 bytes).
void check_fits_file(hid_t dataset, const std::vector<hsize_t>& dims, DType dtype,
                     const std::string& name, const std::string& path) {
  H5Id properties(SSA_H5(path, H5Dget_create_plist, dataset), H5Pclose);
  const bool compressible = SSA_H5(path, H5Pget_layout, properties) == H5D_CHUNKED;
  const uint64_t file_bytes = std::filesystem::file_size(path);
  uint64_t bytes = dtype_size(dtype);
  bool sized = true;
  for (hsize_t dim : dims) sized = sized && !__builtin_mul_overflow(bytes, dim, &bytes);
  if (!sized || bytes > uint64_t{INT64_MAX})
    fail(
        "dataset '{}' of checkpoint {} has shape [{}], too many elements to hold: the file is "
        "damaged",
        name, path, fmt::join(dims, ", "));
  if (!compressible && bytes > file_bytes)
    fail(
        "dataset '{}' of checkpoint {} has shape [{}], more data than the file's {} bytes: the "
        "file is damaged",
        name, path, fmt::join(dims, ", "), file_bytes);
}

// The tensor a dataset is read into; a failed allocation names the dataset (a chunked one may
// declare more data than its compressed chunks hold, so its size is only known here).
Tensor allocate_for(const std::vector<hsize_t>& dims, DType dtype, const std::string& name,
                    const std::string& path) {
  try {
    return Tensor::empty(Shape(std::vector<int64_t>(dims.begin(), dims.end())), dtype);
  } catch (const OutOfMemory& error) {
    throw OutOfMemory(fmt::format("dataset '{}' of checkpoint {} has shape [{}]: {}", name, path,
                                  fmt::join(dims, ", "), error.what()));
  }
}

Tensor read_tensor(hid_t dataset, const std::string& name, const std::string& path) {
  DType dtype = stored_dtype(dataset, name, path);
  H5Id space(SSA_H5(path, H5Dget_space, dataset), H5Sclose);
  if (SSA_H5(path, H5Sget_simple_extent_type, space) == H5S_NULL)
    fail(
        "dataset '{}' of checkpoint {} has a null dataspace (no elements, no shape); expected "
        "an array",
        name, path);
  int rank = SSA_H5(path, H5Sget_simple_extent_ndims, space);
  if (rank > kMaxRank)
    fail("dataset '{}' of checkpoint {} has {} dimensions; at most {} are supported", name, path,
         rank, kMaxRank);
  std::vector<hsize_t> dims(rank);
  SSA_H5(path, H5Sget_simple_extent_dims, space, dims.data(), nullptr);
  check_fits_file(dataset, dims, dtype, name, path);
  Tensor tensor = allocate_for(dims, dtype, name, path);
  if (tensor.numel() > 0)
    SSA_H5(path, H5Dread, dataset, hdf5_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw());
  return tensor;
}

void read_tensors(hid_t file, Checkpoint& checkpoint, const std::string& path) {
  for (const std::string& name : object_names(file, path)) {
    H5Id object(SSA_H5(path, H5Oopen, file, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (SSA_H5(path, H5Iget_type, object) == H5I_DATASET)
      checkpoint.tensors.emplace_back(name, read_tensor(object, name, path));
  }
  std::sort(checkpoint.tensors.begin(), checkpoint.tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
}

hid_t open_for_reading(const std::string& path) {
  if (!std::filesystem::exists(path)) fail("checkpoint {} does not exist", path);
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0)
    fail("checkpoint {} cannot be read: it is truncated, damaged or not an HDF5 file ({})", path,
         hdf5_error_detail());
  return file;
}

// The step in a checkpoint file name ("ckpt_00001000.h5" -> 1000), or -1 for other names.
int64_t step_of_file_name(std::string_view name) {
  constexpr std::string_view prefix = "ckpt_", suffix = ".h5";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix))
    return -1;
  std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  int64_t step = -1;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  bool all_digits = error == std::errc() && end == digits.data() + digits.size() &&
                    std::isdigit(static_cast<unsigned char>(digits.front()));
  return all_digits ? step : -1;
}

}  // namespace

const Tensor& Checkpoint::tensor(const std::string& name, const std::string& path) const {
  for (const auto& [stored_name, stored] : tensors)
    if (stored_name == name) return stored;
  fail("checkpoint {} has no tensor '{}'", path, name);
}

int64_t Checkpoint::integer(const std::string& name, const std::string& path) const {
  auto found = integers.find(name);
  if (found == integers.end()) fail("checkpoint {} has no integer attribute '{}'", path, name);
  return found->second;
}

const std::string& Checkpoint::text_entry(const std::string& name, const std::string& path) const {
  auto found = text.find(name);
  if (found == text.end()) fail("checkpoint {} has no text attribute '{}'", path, name);
  return found->second;
}

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  for (const auto& [name, tensor] : checkpoint.tensors) {
    SSA_CHECK(tensor.is_cpu(), "checkpoint tensor {} is not on the CPU", name);
    hdf5_type(tensor.dtype());  // checks that the dtype can be stored
  }
  for (const auto& [name, text] : checkpoint.text)
    SSA_CHECK(text.find('\0') == std::string::npos, "checkpoint text {} holds a NUL byte", name);
  silence_hdf5_errors(path);
  std::string temporary = path + ".tmp";
  std::error_code ignored;
  try {
    write_file(temporary, checkpoint);
    sync_to_disk(temporary);
  } catch (...) {
    std::filesystem::remove(temporary, ignored);
    fail_if_disk_too_small(path, estimated_file_bytes(checkpoint));
    throw;
  }
  std::error_code renamed;
  std::filesystem::rename(temporary, path, renamed);
  if (renamed) {
    std::filesystem::remove(temporary, ignored);
    fail("cannot rename checkpoint {} to {}: {}", temporary, path, renamed.message());
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  sync_to_disk(dir.empty() ? "." : dir.string());
}

Checkpoint read_checkpoint(const std::string& path) {
  if (std::filesystem::exists(path)) require_regular_file(path, "checkpoint");  // a FIFO blocks
  silence_hdf5_errors(path);
  H5Id file(open_for_reading(path), H5Fclose);
  H5Id root(SSA_H5(path, H5Gopen2, file, "/", H5P_DEFAULT), H5Gclose);
  check_format_version(root, path);
  Checkpoint checkpoint;
  for (const std::string& name : attribute_names(root, path))
    if (name != kVersionAttribute && name != kChecksumAttribute)
      read_attribute(root, name, checkpoint, path);
  read_tensors(file, checkpoint, path);
  uint64_t expected = stored_checksum(root, path), found = checksum(checkpoint);
  if (expected != found)
    fail("checkpoint {} is corrupted: checksum {:016x} expected (stored), {:016x} found", path,
         expected, found);
  return checkpoint;
}

std::string checkpoint_file_name(int64_t step) {
  SSA_CHECK(step >= 0, "negative step {}", step);
  return fmt::format("ckpt_{:08d}.h5", step);
}

std::vector<std::string> list_checkpoints(const std::string& dir, int64_t after_step) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return {};
  std::filesystem::directory_iterator entries(dir, error);
  if (error) fail("cannot list checkpoint directory {}: {}", dir, error.message());
  std::vector<std::pair<int64_t, std::string>> found;
  for (const auto& entry : entries) {
    int64_t step = step_of_file_name(entry.path().filename().string());
    if (step >= 0 && step > after_step && entry.is_regular_file())
      found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

std::vector<std::string> remove_unfinished_checkpoints(const std::string& dir) {
  constexpr std::string_view kTmp = ".tmp";
  std::error_code error;
  std::filesystem::directory_iterator entries(dir, error);
  if (error) fail("cannot list checkpoint directory {}: {}", dir, error.message());
  std::vector<std::string> removed;
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(kTmp) || entry.is_symlink() || !entry.is_regular_file() ||
        step_of_file_name(std::string_view(name).substr(0, name.size() - kTmp.size())) < 0)
      continue;
    if (!std::filesystem::remove(entry.path(), error))
      fail("cannot delete the unfinished checkpoint {}: {}", entry.path().string(),
           error.message());
    removed.push_back(entry.path().string());
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::string latest_checkpoint(const std::string& dir) {
  std::vector<std::string> paths = list_checkpoints(dir);
  return paths.empty() ? std::string() : paths.back();
}

void prune_checkpoints(const std::string& dir, int64_t keep_last) {
  SSA_CHECK(keep_last >= 0, "keep_last {} is negative", keep_last);
  if (keep_last == 0) return;
  std::vector<std::string> paths = list_checkpoints(dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < paths.size(); ++i) {
    std::error_code error;
    std::filesystem::remove(paths[i], error);
    if (error) fail("cannot delete old checkpoint {}: {}", paths[i], error.message());
  }
}

}  // namespace ssa
