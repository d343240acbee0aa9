#pragma once
// Stopping a run cleanly: cluster schedulers send SIGTERM (and users press Ctrl-C, SIGINT) a
// while before they kill a job. While a StopSignals lives, the first of these signals is only
// recorded, for the training loop to finish its step, write a checkpoint and return; a second
// one ends the process at once (the signal's default action).
#include <string>
#include <vector>

namespace ssa {

class StopSignals {
 public:
  StopSignals();   // installs the handlers (one StopSignals at a time)
  ~StopSignals();  // restores the previous ones
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first signal received since construction (SIGTERM or SIGINT), or 0.
  int received() const;
};

// "SIGTERM" or "SIGINT".
const char* stop_signal_name(int signal);

// The shell command that continues a run started with `command_line` (the program as invoked,
// then its arguments): its --resume (and value) dropped and "--resume auto" appended, each
// argument quoted where the shell would split or expand it.
std::string resume_command(const std::vector<std::string>& command_line);

}  // namespace ssa
