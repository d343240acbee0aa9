#include "data/chunk_cache.h"

#include <cstring>

#include "core/error.h"

namespace ssa {

uint64_t ChunkCache::hash_of(std::string_view chunk) {
  return std::hash<std::string_view>{}(chunk);
}

// The slot holding `chunk`, or the empty slot where it would go.
size_t ChunkCache::slot_of(std::string_view chunk, uint64_t hash) const {
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.bytes_count == 0) return i;
    if (slot.hash == hash && slot.bytes_count == chunk.size() &&
        std::memcmp(bytes_.data() + slot.bytes_offset, chunk.data(), chunk.size()) == 0)
      return i;
  }
}

std::span<const uint32_t> ChunkCache::find(std::string_view chunk) const {
  const Slot& slot = slots_[slot_of(chunk, hash_of(chunk))];
  return {ids_.data() + slot.ids_offset, slot.ids_count};
}

void ChunkCache::insert(std::string_view chunk, std::span<const uint32_t> ids) {
  SSA_CHECK(!chunk.empty() && chunk.size() <= kMaxChunkBytes && ids.size() <= chunk.size(),
            "cannot cache a chunk of {} bytes with {} ids", chunk.size(), ids.size());
  if (2 * (used_ + 1) > slots_.size()) grow();
  uint64_t hash = hash_of(chunk);
  Slot& slot = slots_[slot_of(chunk, hash)];
  SSA_CHECK(slot.bytes_count == 0, "chunk cached twice");
  slot = {hash, static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(ids_.size()),
          static_cast<uint8_t>(chunk.size()), static_cast<uint8_t>(ids.size())};
  bytes_.append(chunk);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  ++used_;
}

void ChunkCache::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(2 * old.size(), Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.bytes_count == 0) continue;
    size_t i = slot.hash & mask;
    while (slots_[i].bytes_count != 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void ChunkCache::clear() {
  slots_.assign(1024, Slot{});
  bytes_.clear();
  ids_.clear();
  used_ = 0;
}

}  // namespace ssa
