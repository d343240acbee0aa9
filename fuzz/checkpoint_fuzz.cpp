// Checkpoints (train/checkpoint.h): the input decides what a well-formed HDF5 file holds — root
// attributes and datasets of any type, dataspace, rank, shape, layout and name, groups, soft,
// hard and external links — and the loader must read that file or refuse it with an ssa::Error,
// leaving no HDF5 object open. (HDF5's own parsing of damaged bytes: checkpoint_bytes_fuzz.cpp.)
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <array>
#include <string>
#include <vector>

#include "core/error.h"
#include "input_file.h"
#include "train/checkpoint.h"

namespace {

// Releases an HDF5 id at the end of the scope.
class Owned {
 public:
  Owned(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Owned() {
    if (id_ >= 0) close_(id_);
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  operator hid_t() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// A copy of a datatype the input picks: every class the loader may meet.
hid_t pick_type(FuzzedDataProvider& in) {
  const std::array<hid_t, 12> fixed = {H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE, H5T_NATIVE_INT32,
                                       H5T_NATIVE_INT64, H5T_NATIVE_UINT64, H5T_NATIVE_UINT8,
                                       H5T_NATIVE_INT16, H5T_IEEE_F32BE,    H5T_STD_I32BE,
                                       H5T_NATIVE_B8,    H5T_STD_REF_OBJ,   H5T_NATIVE_LDOUBLE};
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0: {  // string: variable or fixed length, UTF-8 or ASCII
      hid_t type = H5Tcopy(H5T_C_S1);
      H5Tset_size(type, in.ConsumeBool() ? H5T_VARIABLE : in.ConsumeIntegralInRange(1, 16));
      H5Tset_cset(type, in.ConsumeBool() ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
      return type;
    }
    case 1: {
      hsize_t length = in.ConsumeIntegralInRange(1, 3);
      return H5Tarray_create2(H5T_NATIVE_FLOAT, 1, &length);
    }
    case 2: {
      hid_t type = H5Tcreate(H5T_COMPOUND, 8);
      H5Tinsert(type, "a", 0, H5T_NATIVE_INT32);
      H5Tinsert(type, "b", 4, H5T_NATIVE_FLOAT);
      return type;
    }
    case 3:
      return H5Tvlen_create(H5T_NATIVE_INT32);
    default:
      return H5Tcopy(fixed[in.ConsumeIntegralInRange<size_t>(0, fixed.size() - 1)]);
  }
}

// A dataspace the input picks: scalar, null, or simple of rank 0..8 (the loader takes 6), each
// dimension small or, rarely, far larger than any file.
hid_t pick_space(FuzzedDataProvider& in, bool allow_huge) {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0:
      return H5Screate(H5S_SCALAR);
    case 1:
      return H5Screate(H5S_NULL);
    default: {
      std::vector<hsize_t> dims(in.ConsumeIntegralInRange(1, 8));
      for (hsize_t& dim : dims)
        dim = allow_huge && in.ConsumeProbability<float>() < 0.05f
                  ? hsize_t{1} << 40
                  : in.ConsumeIntegralInRange(0, 4);
      return H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    }
  }
}

std::string pick_name(FuzzedDataProvider& in) {
  const std::array<const char*, 8> names = {
      "format_version", "checksum_fnv1a64", "config", "step",
      "params/w",       "adam_m/w",         "a/b/c",  "params"};
  if (in.ConsumeBool()) return names[in.ConsumeIntegralInRange<size_t>(0, names.size() - 1)];
  std::string name = in.ConsumeRandomLengthString(12);
  return name.empty() ? "x" : name;
}

// Writes input bytes as the values of a fixed-size type, or text for a variable-length string.
void fill(FuzzedDataProvider& in, hid_t type, hid_t space,
          herr_t (*write)(hid_t, hid_t, const void*), hid_t object) {
  hssize_t points = H5Sget_simple_extent_npoints(space);
  if (points <= 0 || points > 64) return;
  if (H5Tis_variable_str(type) > 0) {
    std::vector<std::string> texts;
    std::vector<const char*> chars;
    for (hssize_t i = 0; i < points; ++i) texts.push_back(in.ConsumeRandomLengthString(32));
    for (const std::string& text : texts) chars.push_back(text.c_str());
    write(object, type, chars.data());
    return;
  }
  if (H5Tdetect_class(type, H5T_VLEN) > 0 || H5Tget_class(type) == H5T_REFERENCE) return;
  std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(H5Tget_size(type) * points);
  bytes.resize(H5Tget_size(type) * points);
  write(object, type, bytes.data());
}

herr_t write_attribute(hid_t attribute, hid_t type, const void* data) {
  return H5Awrite(attribute, type, data);
}

herr_t write_dataset(hid_t dataset, hid_t type, const void* data) {
  return H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
}

void add_attribute(FuzzedDataProvider& in, hid_t file) {
  Owned root(H5Gopen2(file, "/", H5P_DEFAULT), H5Gclose);
  std::string name = pick_name(in);
  if (name == "format_version" && in.ConsumeBool()) {  // mostly the version the loader reads
    Owned space(H5Screate(H5S_SCALAR), H5Sclose);
    Owned attribute(
        H5Acreate2(root, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT),
        H5Aclose);
    int64_t version = ssa::kCheckpointFormatVersion;
    H5Awrite(attribute, H5T_NATIVE_INT64, &version);
    return;
  }
  Owned type(pick_type(in), H5Tclose);
  Owned space(pick_space(in, false), H5Sclose);
  Owned attribute(H5Acreate2(root, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (attribute >= 0) fill(in, type, space, write_attribute, attribute);
}

// Contiguous, compact or chunked (and then maybe compressed) storage.
hid_t pick_layout(FuzzedDataProvider& in, hid_t space) {
  hid_t properties = H5Pcreate(H5P_DATASET_CREATE);
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  bool chunkable = rank > 0;
  for (hsize_t dim : dims) chunkable = chunkable && dim > 0 && dim < 1024;
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 1:
      H5Pset_layout(properties, H5D_COMPACT);
      break;
    case 2:
      if (!chunkable) break;
      H5Pset_chunk(properties, rank, dims.data());
      if (in.ConsumeBool()) H5Pset_deflate(properties, 1);
      break;
    default:
      break;
  }
  return properties;
}

void add_dataset(FuzzedDataProvider& in, hid_t file, hid_t link_properties) {
  Owned type(pick_type(in), H5Tclose);
  Owned space(pick_space(in, true), H5Sclose);
  Owned layout(pick_layout(in, space), H5Pclose);
  Owned dataset(
      H5Dcreate2(file, pick_name(in).c_str(), type, space, link_properties, layout, H5P_DEFAULT),
      H5Dclose);
  if (dataset >= 0) fill(in, type, space, write_dataset, dataset);
}

void add_link(FuzzedDataProvider& in, hid_t file, hid_t link_properties) {
  std::string target = pick_name(in), name = pick_name(in);
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      H5Lcreate_soft(target.c_str(), file, name.c_str(), link_properties, H5P_DEFAULT);
      break;
    case 1:
      H5Lcreate_hard(file, target.c_str(), file, name.c_str(), link_properties, H5P_DEFAULT);
      break;
    default:
      H5Lcreate_external("absent.h5", target.c_str(), file, name.c_str(), link_properties,
                         H5P_DEFAULT);
  }
}

void build_file(FuzzedDataProvider& in, const std::string& path) {
  Owned file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (file < 0) std::abort();
  Owned link_properties(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(link_properties, 1);
  for (int steps = 0; steps < 16 && in.remaining_bytes() > 0; ++steps) {
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0:
      case 1:
        add_attribute(in, file);
        break;
      case 2:
      case 3:
        add_dataset(in, file, link_properties);
        break;
      default:
        add_link(in, file, link_properties);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the builder's refused calls are expected
  const std::string& path = ssa::fuzz::scratch_file().path();
  FuzzedDataProvider in(data, size);
  build_file(in, path);
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) std::abort();
  try {
    ssa::read_checkpoint(path);
  } catch (const ssa::Error&) {
  }
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) std::abort();
  return 0;
}
