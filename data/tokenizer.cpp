#include "data/tokenizer.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <unordered_map>

#include "core/error.h"
#include "core/files.h"

namespace ssa {

static_assert(std::endian::native == std::endian::little, "tokenizer files are little-endian");

namespace {

enum ByteClass : uint8_t { kSpace, kLetter, kDigit, kOther };

constexpr std::array<uint8_t, 256> make_byte_classes() {
  std::array<uint8_t, 256> classes{};
  for (int b = 0; b < 256; ++b) {
    bool letter = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_' || b >= 0x80;
    bool space = b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f';
    classes[b] = space ? kSpace : letter ? kLetter : (b >= '0' && b <= '9') ? kDigit : kOther;
  }
  return classes;
}

constexpr std::array<uint8_t, 256> kByteClass = make_byte_classes();

uint8_t byte_class(char c) { return kByteClass[static_cast<uint8_t>(c)]; }

constexpr const char* kEndOfTextText = "<|endoftext|>";
constexpr size_t kHeaderInts = 3;
// Chunks up to this length are cached; the cache is emptied when it holds this many.
constexpr size_t kMaxCachedChunk = 64;
constexpr size_t kMaxCacheEntries = 1 << 19;

void check_merges(const std::vector<Tokenizer::Pair>& merges, const std::string& source) {
  std::unordered_map<uint64_t, size_t> seen;
  std::vector<uint64_t> token_bytes(Tokenizer::kFirstMerge, 1);  // by id
  uint64_t total_bytes = Tokenizer::kFirstMerge;
  for (size_t r = 0; r < merges.size(); ++r) {
    auto [left, right] = merges[r];
    uint32_t id = Tokenizer::kFirstMerge + static_cast<uint32_t>(r);
    if (left >= id || right >= id || left == Tokenizer::kEndOfText ||
        right == Tokenizer::kEndOfText)
      fail(
          "{}: merge {} joins ({}, {}); both ids must be below its own id {} and not "
          "<|endoftext|> (256)",
          source, r, left, right, id);
    auto [earlier, fresh] = seen.emplace(Tokenizer::pair_key(left, right), r);
    if (!fresh)
      fail("{}: merge {} repeats merge {} ({}, {})", source, r, earlier->second, left, right);
    token_bytes.push_back(token_bytes[left] + token_bytes[right]);
    if (token_bytes.back() > Tokenizer::kMaxTokenBytes)
      fail("{}: merge {} joins ({}, {}) into a token of {} bytes; at most {} are allowed", source,
           r, left, right, token_bytes.back(), Tokenizer::kMaxTokenBytes);
    total_bytes += token_bytes.back();
    if (total_bytes > Tokenizer::kMaxTotalTokenBytes)
      fail("{}: the tokens up to merge {} take {} bytes in all; at most {} are allowed", source, r,
           total_bytes, Tokenizer::kMaxTotalTokenBytes);
  }
}

}  // namespace

size_t chunk_end(std::string_view text, size_t start) {
  size_t i = start, n = text.size();
  while (i < n && byte_class(text[i]) == kSpace) ++i;
  if (i == n) return n;
  uint8_t run_class = byte_class(text[i]);
  while (i < n && byte_class(text[i]) == run_class) ++i;
  return i;
}

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> chunks;
  for (size_t start = 0, end; start < text.size(); start = end) {
    end = chunk_end(text, start);
    chunks.push_back(text.substr(start, end - start));
  }
  return chunks;
}

Tokenizer::Tokenizer(std::vector<Pair> merges, const std::string& source)
    : merges_(std::move(merges)) {
  check_merges(merges_, source);
  rank_slots_.assign(std::bit_ceil(2 * merges_.size() + 2), RankSlot{kNoPair, 0});
  token_bytes_.reserve(vocab_size());
  for (int b = 0; b < 256; ++b) token_bytes_.emplace_back(1, static_cast<char>(b));
  token_bytes_.emplace_back(kEndOfTextText);
  for (size_t r = 0; r < merges_.size(); ++r) {
    auto [left, right] = merges_[r];
    token_bytes_.push_back(token_bytes_[left] + token_bytes_[right]);
    size_t i = slot_of(pair_key(left, right));
    while (rank_slots_[i].key != kNoPair) i = (i + 1) & (rank_slots_.size() - 1);
    rank_slots_[i] = {pair_key(left, right), static_cast<uint32_t>(r)};
  }
}

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string bytes = read_regular_file(path, "tokenizer file", kMaxFileBytes);
  int32_t header[kHeaderInts] = {};
  if (bytes.size() < sizeof(header))
    fail("tokenizer file {} is truncated: {} bytes, shorter than its {}-byte header", path,
         bytes.size(), sizeof(header));
  std::memcpy(header, bytes.data(), sizeof(header));
  if (header[0] != kFileMagic)
    fail("tokenizer file {} has bad magic {:#x}, expected {:#x} (not an ssa tokenizer?)", path,
         static_cast<uint32_t>(header[0]), kFileMagic);
  if (header[1] != kFileVersion)
    fail("tokenizer file {} has unknown version {}, expected {}", path, header[1], kFileVersion);
  int64_t vocab = header[2];
  if (vocab < kFirstMerge)
    fail("tokenizer file {} has vocab size {}, expected at least {}", path, vocab, kFirstMerge);
  size_t merge_count = static_cast<size_t>(vocab - kFirstMerge);
  size_t expected_bytes = sizeof(header) + merge_count * sizeof(Pair);
  if (bytes.size() != expected_bytes)
    fail(
        "tokenizer file {} is truncated or corrupt: {} bytes, expected {} ({}-byte header + {} "
        "merges x 8 bytes)",
        path, bytes.size(), expected_bytes, sizeof(header), merge_count);
  std::vector<Pair> merges(merge_count);
  for (size_t r = 0; r < merge_count; ++r) {
    uint32_t pair[2];
    std::memcpy(pair, bytes.data() + sizeof(header) + r * sizeof(pair), sizeof(pair));
    merges[r] = {pair[0], pair[1]};
  }
  return Tokenizer(std::move(merges), "tokenizer file " + path);
}

Tokenizer Tokenizer::load_for_model(const std::string& path, int64_t vocab_size) {
  Tokenizer tokenizer = load(path);
  if (tokenizer.vocab_size() > vocab_size)
    fail("tokenizer {} has {} ids, more than the model's vocab_size {}", path,
         tokenizer.vocab_size(), vocab_size);
  return tokenizer;
}

void Tokenizer::save(const std::string& path) const {
  std::vector<uint32_t> words = {static_cast<uint32_t>(kFileMagic), kFileVersion,
                                 static_cast<uint32_t>(vocab_size())};
  for (auto [left, right] : merges_) words.insert(words.end(), {left, right});
  write_file_replacing(path, {std::as_bytes(std::span(words))});
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  Encoder(*this).encode(text, ids);
  return ids;
}

std::string_view Tokenizer::token_bytes(uint32_t id) const {
  if (id >= token_bytes_.size())
    fail("cannot decode token id {}: the tokenizer's vocab size is {}", id, vocab_size());
  return token_bytes_[id];
}

std::string Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string text;
  for (uint32_t id : ids) text += token_bytes(id);
  return text;
}

void Encoder::encode(std::string_view text, std::vector<uint32_t>& out) {
  for (size_t start = 0, end; start < text.size(); start = end) {
    end = chunk_end(text, start);
    encode_chunk(text.substr(start, end - start), out);
  }
}

void Encoder::encode_chunk(std::string_view chunk, std::vector<uint32_t>& out) {
  if (chunk.size() == 1) {
    out.push_back(static_cast<uint8_t>(chunk[0]));
    return;
  }
  if (chunk.size() > kMaxCachedChunk) {
    merge_bytes(chunk, out);
    return;
  }
  if (std::span<const uint32_t> cached = cache_.find(chunk); !cached.empty()) {
    out.insert(out.end(), cached.begin(), cached.end());
    return;
  }
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  size_t first_new = out.size();
  merge_bytes(chunk, out);
  cache_.insert(chunk, {out.data() + first_new, out.size() - first_new});
}

// Applies merges lowest rank first (leftmost among equals), which is the order training
// applied them in: a merge only creates pairs that contain its new id, whose ranks are higher.
void Encoder::merge_bytes(std::string_view chunk, std::vector<uint32_t>& out) {
  int32_t n = static_cast<int32_t>(chunk.size());
  symbols_.resize(n);
  for (int32_t i = 0; i < n; ++i)
    symbols_[i] = {static_cast<uint8_t>(chunk[i]), i - 1, i + 1 < n ? i + 1 : -1};
  candidates_.clear();
  for (int32_t i = 0; i + 1 < n; ++i) push_candidate(i);
  while (!candidates_.empty()) {
    std::pop_heap(candidates_.begin(), candidates_.end(), std::greater<>{});
    Candidate best = candidates_.back();
    candidates_.pop_back();
    Symbol& left = symbols_[best.left];
    if (left.next < 0) continue;  // merged away, or now the last symbol
    Symbol& right = symbols_[left.next];
    if (tokenizer_.merges()[best.rank] != Tokenizer::Pair{left.id, right.id}) continue;  // stale
    left.id = Tokenizer::kFirstMerge + best.rank;
    left.next = right.next;
    if (right.next >= 0) symbols_[right.next].prev = best.left;
    right.next = -1;
    if (left.prev >= 0) push_candidate(left.prev);
    push_candidate(best.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols_[i].next) out.push_back(symbols_[i].id);
}

void Encoder::push_candidate(int32_t left) {
  const Symbol& symbol = symbols_[left];
  if (symbol.next < 0) return;
  int64_t rank = tokenizer_.merge_rank(symbol.id, symbols_[symbol.next].id);
  if (rank < 0) return;
  candidates_.push_back({static_cast<uint32_t>(rank), left});
  std::push_heap(candidates_.begin(), candidates_.end(), std::greater<>{});
}

}  // namespace ssa
