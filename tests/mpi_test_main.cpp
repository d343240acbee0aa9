// The doctest main of the tests that run under mpirun (label mpi): MPI is up for the whole run,
// every rank runs every test case in the same order.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "train/dist/communicator.h"

int main(int argc, char** argv) {
  ssa::Job job(argc, argv);
  doctest::Context context(argc, argv);
  return context.run();
}
