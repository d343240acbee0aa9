#include "train/dist/watchdog.h"

#include <fmt/format.h>

namespace ssa {

Watchdog::Watchdog(int rank, double timeout_s, Expire expire)
    : rank_(rank), timeout_(timeout_s), expire_(std::move(expire)), thread_([this] { watch(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Watchdog::set_step(int64_t step) {
  std::lock_guard lock(mutex_);
  step_ = step;
}

void Watchdog::begin(const char* collective) {
  {
    std::lock_guard lock(mutex_);
    running_ = collective;
    started_ = std::chrono::steady_clock::now();
  }
  changed_.notify_all();
}

void Watchdog::end() {
  {
    std::lock_guard lock(mutex_);
    running_ = nullptr;
  }
  changed_.notify_all();
}

void Watchdog::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (running_ == nullptr) {
      changed_.wait(lock);
      continue;
    }
    const auto deadline =
        started_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    const char* watched = running_;
    const auto watched_start = started_;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && running_ == watched &&
        started_ == watched_start) {
      expire_(
          fmt::format("rank {}: {} at step {} did not finish within {} s "
                      "(train.comm_timeout_s); another rank failed or hangs",
                      rank_, watched, step_, timeout_.count()));
      running_ = nullptr;
    }
  }
}

}  // namespace ssa
