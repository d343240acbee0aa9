#pragma once
// The communication watchdog: a thread that watches the collective in progress and, when one
// has not finished timeout_s after it began, calls `expire` with a message naming the rank, the
// collective and the step (the communicators pass a function that ends the whole job).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ssa {

class Watchdog {
 public:
  using Expire = std::function<void(const std::string& message)>;
  Watchdog(int rank, double timeout_s, Expire expire);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_step(int64_t step);
  // `collective` is watched from begin() until end().
  void begin(const char* collective);
  void end();

  // Watches a blocking collective for its scope.
  class Scope {
   public:
    Scope(Watchdog& watchdog, const char* collective) : watchdog_(watchdog) {
      watchdog_.begin(collective);
    }
    ~Scope() { watchdog_.end(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Watchdog& watchdog_;
  };

 private:
  void watch();

  const int rank_;
  const std::chrono::duration<double> timeout_;
  const Expire expire_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  const char* running_ = nullptr;  // the collective in progress, or null
  std::chrono::steady_clock::time_point started_;
  int64_t step_ = 0;
  std::thread thread_;
};

}  // namespace ssa
