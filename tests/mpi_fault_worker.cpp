// A job for the fault tests of test_mpi_launch, started with mpirun -np 2: trains the run the
// config file describes, and before step 3 rank 1 either raises (`raise`) or stops taking part
// in the collectives (`hang`). Errors go the way of ssa-train's (run_job).
#include <chrono>
#include <thread>

#include "train/settings.h"
#include "train/trainer.h"

using namespace ssa;

int main(int argc, char** argv) {
  return run_job(argc, argv, "mpi_fault_worker", [&](const Job& job) {
    if (argc != 3) fail("usage: mpi_fault_worker raise|hang CONFIG");
    const std::string fault = argv[1];
    Config config = default_train_config();
    config.load_file(argv[2]);
    TrainSettings settings = train_settings_from(config);
    Trainer trainer(settings, job.communicator(settings.run.device, settings.run.comm_timeout_s));
    while (trainer.step() < settings.run.steps) {
      if (job.rank() == 1 && trainer.step() == 2) {
        if (fault == "raise") fail("injected failure at step 3");
        std::this_thread::sleep_for(std::chrono::minutes(2));
      }
      trainer.train_step();
    }
    return 0;
  });
}
