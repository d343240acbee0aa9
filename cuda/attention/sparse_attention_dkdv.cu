// dK and dV of the block-sparse attention (sparse_attention_dkdv.cuh), without atomics: the
// selection entries are sorted by (batch, KV head, block), stably, so each block's list holds
// its queries in ascending order; the lists are cut into units of kMinUnitRows to kMaxUnitRows
// rows (query × head); a warp takes one unit and 16 keys of its block. A block with one unit
// gets its dK/dV written by that warp; otherwise the units write fp32 partial sums that a last
// pass adds up in unit order.
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "cuda/attention/flash_attention_tiles.cuh"
#include "cuda/attention/sparse_attention_dkdv.cuh"

namespace ssa::cuda::sparse {
namespace {

// Rows (query × head) per dK/dV unit: at least kMinUnitRows, more once the lists hold over
// kTargetUnits units of that size.
constexpr int64_t kMinUnitRows = 512, kMaxUnitRows = 4096, kTargetUnits = 8192;
// Query rows per dK/dV step: a tile row of at most 128 bytes allows 32 within the warp's
// shared-memory share.
template <typename T, int D>
constexpr int kQueryStep = sizeof(T) * D <= 128 ? 32 : 16;

// The key lists: entries (query t of a selection row) sorted by block g = (b·Hkv + kv)·blocks + j.
struct KeyLists {
  const int32_t* query;            // [entries], sorted by block, queries ascending within a block
  const int* entry_start;          // [groups + 1]: the block's first entry
  const int* unit_start;           // [groups + 1]: the block's first unit (exclusive scan)
  const int* partial_start;        // [groups + 1]: its first partial slot (blocks of ≥ 2 units)
  const int* unit_block;           // [units]: the block a unit belongs to
  float *partial_dk, *partial_dv;  // [slots][block_size / 16][16][D]
  int groups, blocks, unit_entries;
};

// A CTA is one warp: nine fit an SM by shared memory (CTAs of four warps fit twice: eight).
// Its shared memory: K [16][P], V [16][P], Q [2][NQ][P], dO [2][NQ][P]; per stage and row its
// [B, Tq, H] row (int64), position (int), lse·log2e and delta (floats); fp32 scratch.
template <typename T, int D>
constexpr size_t kDkdvWarpBytes = sizeof(T) * (2 * kRows + 4 * kQueryStep<T, D>)*kPitch<T, D> +
                                  2 * kQueryStep<T, D>*(sizeof(int64_t) + sizeof(int) +
                                                        2 * sizeof(float)) +
                                  sizeof(float) * kScratchFloats<T>;

// dK, dV of 16 keys (sub-chunk `sub` of block g) from one unit of g's list. Steps of NQ rows:
// Pᵀ = exp2(K·Qᵀ·scale_log2 − lse·log2e), dSᵀ = Pᵀ ∘ (V·dOᵀ − delta), dV += Pᵀ·dO, dK += dSᵀ·Q
// (times scale when written). Grid: (upper bound on units) · (block_size / 16) one-warp CTAs.
template <typename T, int D>
__global__ void __launch_bounds__(32)
    dkdv_kernel(Geometry geo, BackwardPointers<T> ptr, KeyLists lists) {
  constexpr int P = kPitch<T, D>, NQ = kQueryStep<T, D>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int lane = threadIdx.x;
  const int subs = geo.block_size / kRows;
  const int64_t task = blockIdx.x;
  const int64_t unit = task / subs;
  const int sub = static_cast<int>(task % subs);
  if (unit >= lists.unit_start[lists.groups]) return;
  const int g = lists.unit_block[unit];
  const int units = lists.unit_start[g + 1] - lists.unit_start[g];
  const int chunk = static_cast<int>(unit - lists.unit_start[g]);
  const int first_entry = lists.entry_start[g] + chunk * lists.unit_entries;
  const int entries = min(lists.entry_start[g + 1] - first_entry, lists.unit_entries);
  const int b = g / (lists.blocks * geo.kv_heads), kv = g / lists.blocks % geo.kv_heads;
  const int key0 = g % lists.blocks * geo.block_size + sub * kRows;
  if (key0 >= geo.k_len) return;  // the block's last keys lie past the end

  T* k_tile = reinterpret_cast<T*>(smem_raw);
  T* v_tile = k_tile + kRows * P;
  T* q_tiles = v_tile + kRows * P;
  T* do_tiles = q_tiles + 2 * NQ * P;
  int64_t* step_rows = reinterpret_cast<int64_t*>(do_tiles + 2 * NQ * P);  // [2][NQ]
  int* step_positions = reinterpret_cast<int*>(step_rows + 2 * NQ);        // [2][NQ]
  float* step_lse = reinterpret_cast<float*>(step_positions + 2 * NQ);     // [2][NQ]
  float* step_delta = step_lse + 2 * NQ;                                   // [2][NQ]
  float* scratch = step_delta + 2 * NQ;
  const int g_heads = geo.group(), rows = entries * g_heads, steps = ceil_div(rows, NQ);

  // Row r of the unit: entry first_entry + r / G, head kv·G + r % G. Lane r < NQ loads row r
  // of each step, its query read a step ahead so the read's latency hides behind a step.
  auto query_at = [&](int step) {
    const int unit_row = step * NQ + lane;
    return lane < NQ && unit_row < rows ? lists.query[first_entry + unit_row / g_heads] : 0;
  };
  int query = query_at(0);
  auto issue = [&](int step, int stage) {
    const int t = query;
    query = query_at(step + 1);
    if (lane < NQ) {
      const int unit_row = step * NQ + lane;
      const bool inside = unit_row < rows;
      const int64_t row = inside ? geo.q_row(b, t, kv * g_heads + unit_row % g_heads) : -1;
      step_rows[stage * NQ + lane] = row;
      step_positions[stage * NQ + lane] = inside ? geo.position(t) : -1;
      cp_async_4(step_lse + stage * NQ + lane, inside ? ptr.lse + row : ptr.lse, inside);
      cp_async_4(step_delta + stage * NQ + lane, inside ? ptr.delta + row : ptr.delta, inside);
    }
    __syncwarp();
    const int64_t* row_of = step_rows + stage * NQ;
    load_rows<T, D, NQ>([&](int r) { return row_of[r]; },
                        TileSource<T>{q_tiles + stage * NQ * P, ptr.q},
                        TileSource<T>{do_tiles + stage * NQ * P, ptr.d_out});
  };

  load_keys<T, D>({k_tile, ptr.k}, {v_tile, ptr.v}, geo, b, kv, key0);
  issue(0, 0);
  cp_async_commit();

  float dk[1][D / 8][4] = {}, dv[1][D / 8][4] = {};
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    if (step + 1 < steps) {
      issue(step + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const T* q_tile = q_tiles + stage * NQ * P;
    const T* do_tile = do_tiles + stage * NQ * P;
    const int* positions = step_positions + stage * NQ;
    const float* lse = step_lse + stage * NQ;
    const float* delta = step_delta + stage * NQ;
    float pt[1][NQ / 8][4] = {}, dst[1][NQ / 8][4] = {};
    tile_a_bt<D / 16, NQ / 8, P>(pt, k_tile, q_tile);
    tile_a_bt<D / 16, NQ / 8, P>(dst, v_tile, do_tile);
    flash::backward_probabilities(pt[0], dst[0], lse, delta, geo.scale_log2,
                                  [&](int r, int c) { return key0 + r <= positions[c]; });
    tile_s_b<NQ / 16, D / 8, P>(dv, pt, do_tile, scratch);
    tile_s_b<NQ / 16, D / 8, P>(dk, dst, q_tile, scratch);
    __syncwarp();  // the stage is refilled next step
  }

  if (units == 1) {  // the block's only unit: the final values
    auto key_row = [&](int r) {
      return key0 + r < geo.k_len ? geo.kv_row(b, key0 + r, kv) : int64_t{-1};
    };
    store_rows<D>(ptr.dk, dk[0], geo.scale, key_row);
    store_rows<D>(ptr.dv, dv[0], 1.f, key_row);
    return;
  }
  const int64_t slot = (int64_t{lists.partial_start[g]} + chunk) * subs + sub;
  auto partial_row = [&](int r) { return slot * kRows + r; };
  store_rows<D>(lists.partial_dk, dk[0], 1.f, partial_row);
  store_rows<D>(lists.partial_dv, dv[0], 1.f, partial_row);
}

// Entry e of the selection: key (b·Hkv + kv)·blocks + block, or `none` for −1 padding; value t.
struct ListEntry {
  const int32_t* selection;
  uint32_t* keys;
  int32_t* queries;
  int64_t q_len, kv_heads, width, blocks;
  uint32_t none;
  __device__ void operator()(int64_t e) const {
    const int64_t row = e / width, kv = row % kv_heads, t = row / kv_heads % q_len;
    const int64_t b = row / (kv_heads * q_len);
    const int32_t block = selection[e];
    keys[e] = block >= 0 ? static_cast<uint32_t>((b * kv_heads + kv) * blocks + block) : none;
    queries[e] = static_cast<int32_t>(t);
  }
};

// For block g ≤ groups: its first sorted entry, units and partial slots (g = groups: the end).
struct ListBounds {
  const uint32_t* sorted_keys;
  int entries, groups, unit_entries;
  int *entry_start, *unit_count, *partial_count;
  __device__ int lower_bound(uint32_t key) const {
    int low = 0, high = entries;
    while (low < high) {
      const int mid = (low + high) / 2;
      if (sorted_keys[mid] < key)
        low = mid + 1;
      else
        high = mid;
    }
    return low;
  }
  __device__ void operator()(int64_t i) const {
    const int g = static_cast<int>(i), start = lower_bound(g);
    const int units = g < groups ? ceil_div(lower_bound(g + 1) - start, unit_entries) : 0;
    entry_start[g] = start;
    unit_count[g] = units;
    partial_count[g] = units >= 2 ? units : 0;
  }
};

// Each unit's block: block g's units are unit_start[g] .. unit_start[g + 1] − 1.
struct UnitBlocks {
  const int* unit_start;
  int* unit_block;
  __device__ void operator()(int64_t g) const {
    for (int u = unit_start[g]; u < unit_start[g + 1]; ++u) unit_block[u] = static_cast<int>(g);
  }
};

// dK, dV of blocks with no unit (zeros) or several (their partial sums, in unit order).
template <typename T>
struct SumPartials {
  KeyLists lists;
  T *dk, *dv;
  int64_t k_len, kv_heads, block_size, head_dim;
  float scale;
  __device__ void operator()(int64_t i) const {
    const int64_t x = i % head_dim, key_row = i / head_dim;  // key_row = (b·Tk + key)·Hkv + kv
    const int64_t kv = key_row % kv_heads, key = key_row / kv_heads % k_len;
    const int64_t b = key_row / (kv_heads * k_len);
    const int64_t g = (b * kv_heads + kv) * lists.blocks + key / block_size;
    const int units = lists.unit_start[g + 1] - lists.unit_start[g];
    if (units == 1) return;  // written by its unit
    const int64_t subs = block_size / kRows, in_block = key % block_size;
    const int64_t stride = subs * kRows * head_dim;  // between a block's consecutive slots
    const int64_t first = (lists.partial_start[g] * subs + in_block / kRows) * kRows * head_dim +
                          in_block % kRows * head_dim + x;
    float sum_k = 0.f, sum_v = 0.f;
    for (int c = 0; c < units; ++c) {
      sum_k += lists.partial_dk[first + c * stride];
      sum_v += lists.partial_dv[first + c * stride];
    }
    dk[i] = from_float<T>(sum_k * scale);
    dv[i] = from_float<T>(sum_v);
  }
};

// Device memory of the key lists for one backward call.
struct KeyListStorage {
  int64_t entries, groups, unit_entries, slot_floats, max_slots, max_units;
  DeviceScratch keys, sorted_keys, queries, sorted_queries, bounds, unit_blocks, partials;

  KeyListStorage(int64_t entries_, int64_t groups_, int64_t unit_entries_, int64_t slot_floats_)
      : entries(entries_),
        groups(groups_),
        unit_entries(unit_entries_),
        slot_floats(slot_floats_),
        max_slots(2 * ceil_div64(entries_, unit_entries_) + 1),
        max_units(max_slots / 2 + groups_),  // a block's units ≤ its entries / unit + 1
        keys(entries_ * sizeof(uint32_t)),
        sorted_keys(entries_ * sizeof(uint32_t)),
        queries(entries_ * sizeof(int32_t)),
        sorted_queries(entries_ * sizeof(int32_t)),
        bounds(5 * (groups_ + 1) * sizeof(int)),
        unit_blocks(max_units * sizeof(int)),
        partials(2 * max_slots * slot_floats_ * sizeof(float)) {}
  static int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }
  int* bound(int which) const { return bounds.as<int>() + which * (groups + 1); }
};

int bits_for(int64_t value) {
  int bits = 1;
  while ((int64_t{1} << bits) <= value) ++bits;
  return bits;
}

// cub's two-phase calls: the first asks for the temporary bytes (a null buffer would ask again).
template <typename Call>
void with_cub_temp(Call call) {
  size_t bytes = 0;
  CUDA_CHECK(call(nullptr, bytes));
  bytes = std::max<size_t>(bytes, 16);
  DeviceScratch temp(bytes);
  CUDA_CHECK(call(temp.as<void>(), bytes));
}

// Sorts the selection entries into per-block lists and cuts them into units.
KeyLists build_key_lists(const SparseDims& dims, const int32_t* selection,
                         const KeyListStorage& storage) {
  const int entries = static_cast<int>(storage.entries), groups = static_cast<int>(storage.groups);
  const int64_t blocks = ceil_div(static_cast<int>(dims.k_len), static_cast<int>(dims.block_size));
  for_each(entries,
           ListEntry{selection, storage.keys.as<uint32_t>(), storage.queries.as<int32_t>(),
                     dims.q_len, dims.kv_heads, dims.width, blocks, static_cast<uint32_t>(groups)});
  const int bits = bits_for(groups);
  with_cub_temp([&](void* temp, size_t& bytes) {
    return cub::DeviceRadixSort::SortPairs(
        temp, bytes, storage.keys.as<uint32_t>(), storage.sorted_keys.as<uint32_t>(),
        storage.queries.as<int32_t>(), storage.sorted_queries.as<int32_t>(), entries, 0, bits,
        compute_stream());
  });
  for_each(groups + 1, ListBounds{storage.sorted_keys.as<uint32_t>(), entries, groups,
                                  static_cast<int>(storage.unit_entries), storage.bound(0),
                                  storage.bound(1), storage.bound(2)});
  for (int which = 1; which <= 2; ++which) {
    with_cub_temp([&](void* temp, size_t& bytes) {
      return cub::DeviceScan::ExclusiveSum(temp, bytes, storage.bound(which),
                                           storage.bound(which + 2), groups + 1, compute_stream());
    });
  }
  for_each(groups, UnitBlocks{storage.bound(3), storage.unit_blocks.as<int>()});
  float* partials = storage.partials.as<float>();
  return {storage.sorted_queries.as<int32_t>(),
          storage.bound(0),
          storage.bound(3),
          storage.bound(4),
          storage.unit_blocks.as<int>(),
          partials,
          partials + storage.max_slots * storage.slot_floats,
          groups,
          static_cast<int>(blocks),
          static_cast<int>(storage.unit_entries)};
}

// Query rows per dK/dV unit, as entries of a block list (each entry is G rows).
int64_t unit_entries(int64_t entries, int64_t group) {
  const int64_t rows = std::clamp(entries * group / kTargetUnits, kMinUnitRows, kMaxUnitRows);
  return std::max<int64_t>(1, rows / group);
}

}  // namespace

template <typename T, int D>
void dkdv(const SparseDims& dims, const Geometry& geo, const BackwardPointers<T>& ptr) {
  const int64_t entries = dims.batch * dims.q_len * dims.kv_heads * dims.width;
  const int64_t blocks = (dims.k_len + dims.block_size - 1) / dims.block_size;
  const int64_t groups = dims.batch * dims.kv_heads * blocks;
  const int64_t subs = dims.block_size / kRows;
  const KeyListStorage storage(entries, groups, unit_entries(entries, geo.group()),
                               subs * kRows * D);
  const KeyLists lists = build_key_lists(dims, ptr.selection, storage);
  const int64_t tasks = storage.max_units * subs;
  launch(dkdv_kernel<T, D>, dim3(static_cast<unsigned>(tasks)), 32, kDkdvWarpBytes<T, D>, geo, ptr,
         lists);
  for_each(dims.batch * dims.k_len * dims.kv_heads * D,
           SumPartials<T>{lists, ptr.dk, ptr.dv, dims.k_len, dims.kv_heads, dims.block_size, D,
                          geo.scale});
}

template void dkdv<float, 64>(const SparseDims&, const Geometry&, const BackwardPointers<float>&);
template void dkdv<float, 128>(const SparseDims&, const Geometry&, const BackwardPointers<float>&);
template void dkdv<bf16_t, 64>(const SparseDims&, const Geometry&, const BackwardPointers<bf16_t>&);
template void dkdv<bf16_t, 128>(const SparseDims&, const Geometry&,
                                const BackwardPointers<bf16_t>&);

}  // namespace ssa::cuda::sparse
