#pragma once
// Byte-level BPE. Ids 0..255 are the bytes, 256 is <|endoftext|>, and id 257 + r is merge r,
// which joins the pair merges()[r]; vocab_size = 257 + number of merges.
//
// Pre-tokenisation cuts text into chunks; merges never cross a chunk boundary. A chunk is a
// (possibly empty) run of whitespace followed by a maximal run of one class: letters (A-Z, a-z,
// '_' and every byte >= 0x80, so UTF-8 words and identifiers stay whole), digits, or any other
// bytes. Whitespace at the very end of the text is a chunk of its own.
//
// File (little-endian): int32 magic, int32 version, int32 vocab size, then uint32 pairs
// (left, right) for each merge in training order.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/chunk_cache.h"

namespace ssa {

// Where the chunk that starts at `start` ends (one past its last byte).
size_t chunk_end(std::string_view text, size_t start);
std::vector<std::string_view> pretokenize(std::string_view text);

class Tokenizer {
 public:
  using Pair = std::pair<uint32_t, uint32_t>;
  static constexpr uint32_t kEndOfText = 256;
  static constexpr uint32_t kFirstMerge = 257;
  static constexpr int32_t kFileMagic = 0x4b4f5453;  // "STOK"
  static constexpr int32_t kFileVersion = 1;
  // The longest token a merge may make: a few merges that each join a token with itself would
  // otherwise ask for 2^merges bytes.
  static constexpr uint64_t kMaxTokenBytes = 1 << 16;
  // All tokens' bytes together, which the tokenizer keeps: a small file of long merges could
  // otherwise ask for gigabytes.
  static constexpr uint64_t kMaxTotalTokenBytes = uint64_t{1} << 28;
  // The largest tokenizer file read (2^27 merges).
  static constexpr size_t kMaxFileBytes = size_t{1} << 30;

  // `source` names where the merges came from, for the error about an invalid merge (an id not
  // below its own, <|endoftext|>, a pair twice, a token longer than kMaxTokenBytes, tokens of more
  // than kMaxTotalTokenBytes in all).
  explicit Tokenizer(std::vector<Pair> merges = {}, const std::string& source = "merge list");

  // Learns vocab_size - 257 merges (fewer if the text runs out of pairs). The most frequent
  // pair wins; ties go to the lower (left, right) ids, so the result depends on the text only.
  // threads = 0: one per core.
  static Tokenizer train(const std::vector<std::string>& documents, int64_t vocab_size,
                         int threads = 0);
  static Tokenizer load(const std::string& path);
  // load(path) for a model of vocab_size ids; one with more ids (ids the model never produces,
  // so another vocabulary) is refused.
  static Tokenizer load_for_model(const std::string& path, int64_t vocab_size);
  // Writes `path` + ".tmp", then renames it to `path`.
  void save(const std::string& path) const;

  int64_t vocab_size() const { return kFirstMerge + static_cast<int64_t>(merges_.size()); }
  const std::vector<Pair>& merges() const { return merges_; }
  // The rank of the merge joining (left, right), or -1 when there is none.
  int64_t merge_rank(uint32_t left, uint32_t right) const {
    uint64_t key = pair_key(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & (rank_slots_.size() - 1)) {
      if (rank_slots_[i].key == key) return rank_slots_[i].rank;
      if (rank_slots_[i].key == kNoPair) return -1;
    }
  }

  // Text is data: encode never yields kEndOfText (callers add it between documents).
  // For many calls, or one per thread, use an Encoder: it keeps its cache.
  std::vector<uint32_t> encode(std::string_view text) const;
  std::string decode(std::span<const uint32_t> ids) const;
  std::string_view token_bytes(uint32_t id) const;

  static uint64_t pair_key(uint32_t left, uint32_t right) {
    return static_cast<uint64_t>(left) << 32 | right;
  }

 private:
  // pair_key -> rank, open addressing with linear probing; at most half the slots are used.
  struct RankSlot {
    uint64_t key;
    uint32_t rank;
  };
  static constexpr uint64_t kNoPair = UINT64_MAX;  // no merge joins id 2^32 - 1 with itself
  size_t slot_of(uint64_t key) const {
    return (key * 0x9e3779b97f4a7c15ull >> 32) & (rank_slots_.size() - 1);
  }

  std::vector<Pair> merges_;
  std::vector<std::string> token_bytes_;
  std::vector<RankSlot> rank_slots_;
};

// Encodes with a cache of chunk -> ids. Not thread-safe: one per thread, sharing the Tokenizer.
class Encoder {
 public:
  explicit Encoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Appends the ids of `text` to `out`.
  void encode(std::string_view text, std::vector<uint32_t>& out);

 private:
  struct Symbol {
    uint32_t id;
    int32_t prev, next;  // neighbours in the chunk, -1 at the ends
  };
  struct Candidate {
    uint32_t rank;
    int32_t left;  // index of the pair's left symbol
    friend bool operator>(const Candidate& x, const Candidate& y) {
      return x.rank != y.rank ? x.rank > y.rank : x.left > y.left;
    }
  };

  void encode_chunk(std::string_view chunk, std::vector<uint32_t>& out);
  void merge_bytes(std::string_view chunk, std::vector<uint32_t>& out);
  void push_candidate(int32_t left);

  const Tokenizer& tokenizer_;
  ChunkCache cache_;
  std::vector<Symbol> symbols_;
  std::vector<Candidate> candidates_;  // a min-heap on (rank, left)
};

}  // namespace ssa
