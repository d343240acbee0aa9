#pragma once
// The NCCL backend (built where SSA_HAVE_NCCL): collectives on GPU tensors, one process per GPU.
#include <memory>

#include "train/dist/communicator.h"

namespace ssa {

// Selects GPU local_rank modulo the visible GPUs, creates the NCCL communicator of
// MPI_COMM_WORLD (rank 0 makes the id, MPI broadcasts it) and its communication stream.
std::unique_ptr<Communicator> make_nccl_communicator(int local_rank, double timeout_s);

}  // namespace ssa
