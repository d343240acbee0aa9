#pragma once
// Work on several std::threads, with one clear error where the system refuses a thread.
#include <functional>

namespace ssa {

// Runs work(0) ... work(count - 1) on `count` threads and joins them all. When the system
// cannot start one (a process limit), joins those started and fails naming the count. `work`
// must not throw.
void run_on_threads(int count, const std::function<void(int)>& work);

}  // namespace ssa
