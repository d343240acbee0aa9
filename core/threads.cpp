#include "core/threads.h"

#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"

namespace ssa {

void run_on_threads(int count, const std::function<void(int)>& work) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(count));
  std::string refused;
  for (int t = 0; t < count && refused.empty(); ++t) {
    try {
      threads.emplace_back(work, t);
    } catch (const std::system_error& error) {
      refused = error.what();
    }
  }
  for (std::thread& thread : threads) thread.join();
  if (!refused.empty())
    fail("cannot start thread {} of {}: {}; use fewer threads", threads.size() + 1, count, refused);
}

}  // namespace ssa
