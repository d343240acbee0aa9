#include "train/stop_signals.h"

#include <signal.h>

#include <csignal>
#include <iterator>
#include <string_view>

#include "core/error.h"

namespace ssa {
namespace {

constexpr int kStopSignals[] = {SIGTERM, SIGINT};

volatile std::sig_atomic_t first_signal = 0;
struct sigaction previous_actions[std::size(kStopSignals)];

void on_stop_signal(int signal) {
  if (first_signal == 0) {
    first_signal = signal;
    return;
  }
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(signal, &default_action, nullptr);
  ::raise(signal);  // blocked in this handler: delivered, with its default action, on return
}

// `arg` as the shell reads it back: as it is when every character is safe, else single-quoted.
std::string shell_quoted(std::string_view arg) {
  constexpr std::string_view kSafe =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-";
  if (!arg.empty() && arg.find_first_not_of(kSafe) == std::string_view::npos)
    return std::string(arg);
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

StopSignals::StopSignals() {
  first_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  action.sa_flags = SA_RESTART;  // system calls in progress carry on
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < std::size(kStopSignals); ++i)
    if (::sigaction(kStopSignals[i], &action, &previous_actions[i]) != 0)
      fail("cannot install the handler of {}", stop_signal_name(kStopSignals[i]));
}

StopSignals::~StopSignals() {
  for (size_t i = 0; i < std::size(kStopSignals); ++i)
    ::sigaction(kStopSignals[i], &previous_actions[i], nullptr);
}

int StopSignals::received() const { return first_signal; }

const char* stop_signal_name(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

std::string resume_command(const std::vector<std::string>& command_line) {
  std::string command;
  for (size_t i = 0; i < command_line.size(); ++i) {
    const std::string& arg = command_line[i];
    if (arg == "--resume") {
      ++i;  // and its value
      continue;
    }
    if (!arg.starts_with("--resume=")) command += shell_quoted(arg) + " ";
  }
  return command + "--resume auto";
}

}  // namespace ssa
