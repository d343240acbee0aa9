// Tokenizer::train: count distinct chunks, then merge with incrementally maintained pair counts.
#include <algorithm>
#include <atomic>
#include <queue>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/threads.h"
#include "data/tokenizer.h"

namespace ssa {

namespace {

using ChunkCounts = std::unordered_map<std::string_view, int64_t>;

ChunkCounts count_chunks_of(const std::vector<std::string>& documents,
                            std::atomic<size_t>& next_document) {
  ChunkCounts counts;
  for (size_t d; (d = next_document.fetch_add(1)) < documents.size();) {
    std::string_view text = documents[d];
    for (size_t start = 0, end; start < text.size(); start = end) {
      end = chunk_end(text, start);
      ++counts[text.substr(start, end - start)];
    }
  }
  return counts;
}

ChunkCounts count_chunks(const std::vector<std::string>& documents, int threads) {
  std::vector<ChunkCounts> partial(threads);
  std::atomic<size_t> next_document{0};
  run_on_threads(threads, [&](int t) { partial[t] = count_chunks_of(documents, next_document); });
  ChunkCounts total = std::move(partial[0]);
  for (int t = 1; t < threads; ++t)
    for (const auto& [chunk, count] : partial[t]) total[chunk] += count;
  return total;
}

// Every distinct chunk is a word: a run of symbols in symbols_, weighted by its frequency.
// pair_counts_ holds the weighted count of every adjacent pair (pairs at 0 are erased);
// words_with_pair_ lists, per pair, words that held it when it appeared (a superset: stale
// entries are harmless, a merge simply finds nothing in them). heap_ orders (count, pair)
// with lazy deletion: an entry whose count is no longer the pair's count is skipped.
class BpeTrainer {
 public:
  explicit BpeTrainer(const ChunkCounts& chunks);
  std::vector<Tokenizer::Pair> learn(int64_t merge_count);

 private:
  struct Word {
    size_t offset;
    uint32_t length;
    int64_t frequency;
  };
  struct Ranked {
    int64_t count;
    uint64_t pair;
    // Higher count first; among equal counts, the lower (left, right) ids.
    bool operator<(const Ranked& other) const {
      return count != other.count ? count < other.count : pair > other.pair;
    }
  };

  bool pop_best(uint64_t& pair);
  // The bytes of the token that merging `pair` would make.
  uint64_t merged_bytes(uint64_t pair) const {
    return token_bytes_[pair >> 32] + token_bytes_[static_cast<uint32_t>(pair)];
  }
  void merge(uint64_t pair, uint32_t new_id);
  void merge_in_word(uint32_t word, uint32_t left, uint32_t right, uint32_t new_id);
  void change(uint32_t left, uint32_t right, int64_t delta) {
    changes_[Tokenizer::pair_key(left, right)] += delta;
  }
  void note_word(uint32_t left, uint32_t right, uint32_t word);
  void apply_changes();

  std::vector<uint32_t> symbols_;
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> words_with_pair_;
  std::priority_queue<Ranked> heap_;
  std::unordered_map<uint64_t, int64_t> changes_;  // pending count changes of one merge
  std::vector<uint64_t> token_bytes_ = std::vector<uint64_t>(Tokenizer::kFirstMerge, 1);  // by id
};

BpeTrainer::BpeTrainer(const ChunkCounts& chunks) {
  for (const auto& [chunk, frequency] : chunks) {
    if (chunk.size() < 2) continue;
    uint32_t word = static_cast<uint32_t>(words_.size());
    words_.push_back({symbols_.size(), static_cast<uint32_t>(chunk.size()), frequency});
    for (char byte : chunk) symbols_.push_back(static_cast<uint8_t>(byte));
    const uint32_t* symbols = symbols_.data() + words_.back().offset;
    for (size_t i = 0; i + 1 < chunk.size(); ++i) {
      pair_counts_[Tokenizer::pair_key(symbols[i], symbols[i + 1])] += frequency;
      note_word(symbols[i], symbols[i + 1], word);
    }
  }
  std::vector<Ranked> ranked;
  ranked.reserve(pair_counts_.size());
  for (const auto& [pair, count] : pair_counts_) ranked.push_back({count, pair});
  heap_ = std::priority_queue<Ranked>(std::less<Ranked>(), std::move(ranked));
}

std::vector<Tokenizer::Pair> BpeTrainer::learn(int64_t merge_count) {
  std::vector<Tokenizer::Pair> merges;
  uint64_t best;
  while (static_cast<int64_t>(merges.size()) < merge_count && pop_best(best)) {
    uint32_t new_id = Tokenizer::kFirstMerge + static_cast<uint32_t>(merges.size());
    merges.emplace_back(static_cast<uint32_t>(best >> 32), static_cast<uint32_t>(best));
    token_bytes_.push_back(merged_bytes(best));
    merge(best, new_id);
  }
  return merges;
}

bool BpeTrainer::pop_best(uint64_t& pair) {
  while (!heap_.empty()) {
    Ranked top = heap_.top();
    heap_.pop();
    auto current = pair_counts_.find(top.pair);
    // A pair whose token would be longer than a tokenizer may hold is never merged.
    if (current != pair_counts_.end() && current->second == top.count &&
        merged_bytes(top.pair) <= Tokenizer::kMaxTokenBytes) {
      pair = top.pair;
      return true;
    }
  }
  return false;
}

void BpeTrainer::merge(uint64_t pair, uint32_t new_id) {
  std::vector<uint32_t> words = std::move(words_with_pair_.extract(pair).mapped());
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  uint32_t left = static_cast<uint32_t>(pair >> 32), right = static_cast<uint32_t>(pair);
  for (uint32_t word : words) merge_in_word(word, left, right, new_id);
  apply_changes();
}

// Rewrites the word in place, left to right, non-overlapping. Each merge at i turns
// (prev, left, right, next) into (prev, new, next); prev is read after earlier merges in this
// word, so runs like "a b a b" or "a a a" are counted right.
void BpeTrainer::merge_in_word(uint32_t word, uint32_t left, uint32_t right, uint32_t new_id) {
  Word& w = words_[word];
  uint32_t* s = symbols_.data() + w.offset;
  int64_t f = w.frequency;
  uint32_t out = 0;
  for (uint32_t i = 0; i < w.length;) {
    if (i + 1 < w.length && s[i] == left && s[i + 1] == right) {
      if (out > 0) {
        change(s[out - 1], left, -f);
        change(s[out - 1], new_id, f);
        note_word(s[out - 1], new_id, word);
      }
      if (i + 2 < w.length) {
        change(right, s[i + 2], -f);
        change(new_id, s[i + 2], f);
        note_word(new_id, s[i + 2], word);
      }
      change(left, right, -f);
      s[out++] = new_id;
      i += 2;
    } else {
      s[out++] = s[i++];
    }
  }
  w.length = out;
}

void BpeTrainer::note_word(uint32_t left, uint32_t right, uint32_t word) {
  std::vector<uint32_t>& words = words_with_pair_[Tokenizer::pair_key(left, right)];
  if (words.empty() || words.back() != word) words.push_back(word);
}

void BpeTrainer::apply_changes() {
  for (const auto& [pair, delta] : changes_) {
    if (delta == 0) continue;
    auto entry = pair_counts_.try_emplace(pair, 0).first;
    entry->second += delta;
    SSA_CHECK(entry->second >= 0, "pair count fell to {}", entry->second);
    if (entry->second == 0) {
      pair_counts_.erase(entry);
    } else {
      heap_.push({entry->second, pair});
    }
  }
  changes_.clear();
}

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string>& documents, int64_t vocab_size,
                           int threads) {
  if (vocab_size < kFirstMerge)
    fail("vocab size {} is too small: the 256 bytes and <|endoftext|> already take {} ids",
         vocab_size, kFirstMerge);
  if (vocab_size > INT32_MAX)
    fail("vocab size {} is too large (at most {})", vocab_size, INT32_MAX);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ChunkCounts chunks = count_chunks(documents, threads);
  BpeTrainer trainer(chunks);
  return Tokenizer(trainer.learn(vocab_size - kFirstMerge), "trained merges");
}

}  // namespace ssa
