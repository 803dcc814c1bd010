// A plain-C facade over the MPI calls gift needs. No MPI type or macro crosses this header,
// so Swift never imports mpi.h.
#ifndef GIFT_MPI_H
#define GIFT_MPI_H
#include <stddef.h>

// Returns 1 when this process was started by an MPI launcher (mpirun, srun with PMIx).
int gift_mpi_launched(void);
// MPI_Init_thread with MPI_THREAD_SERIALIZED: only one thread calls MPI at a time (the caller
// guarantees it), which Open MPI supports without the cost of full MPI_THREAD_MULTIPLE.
// Returns 0 on success.
int gift_mpi_init(void);
int gift_mpi_finalize(void);
int gift_mpi_rank(void);
int gift_mpi_size(void);
// Counts and offsets are size_t. `limit` (0 or above INT_MAX: INT_MAX) is the largest int any MPI call
// made for them gets, as a count or a displacement; larger transfers go in rounds, the same elements
// summed over the same ranks, so results do not depend on `limit` except through MPI's own choice of
// algorithm for a message size. Each returns 0 or an MPI error code (-1: out of memory for staging).
// In-place sum of `count` floats across all ranks, in pieces of at most `piece` floats.
int gift_mpi_allreduce_sum_f32(float *buf, size_t count, size_t piece, size_t limit);
int gift_mpi_allreduce_sum_f64(double *buf, size_t count, size_t limit);
// Sum of `send` (all ranks' full vectors) scattered: rank r receives counts[r] floats starting at
// displacement sum(counts[0..<r]). `counts` has one entry per rank.
int gift_mpi_reduce_scatter_sum_f32(const float *send, float *recv, const size_t *counts, size_t limit);
// The same sum with bf16 on the wire (--grad-reduce-dtype bf16: half the bytes): every rank's values are
// rounded to bf16 (nearest even) and sent to the rank that owns them (all-to-all), which adds the ranks'
// contributions in fp32 in rank order 0, 1, ... (so the result does not depend on MPI's algorithm).
int gift_mpi_reduce_scatter_sum_bf16(const float *send, float *recv, const size_t *counts, size_t limit);
// Every rank's slice (counts[r] floats at displs[r] of buf) gathered in place into every rank's buf.
int gift_mpi_allgather_f32(float *buf, const size_t *counts, const size_t *displs, size_t limit);
// The same gather with bf16 on the wire: every rank's slice rounded to bf16 (nearest even) and every slice,
// this rank's included, decoded back into buf: all ranks end with the same (rounded) values.
int gift_mpi_allgather_bf16(float *buf, const size_t *counts, const size_t *displs, size_t limit);
int gift_mpi_broadcast_bytes(void *buf, size_t count, int root, size_t limit);
// Values per rank per round of the staged bf16 collectives (always in rounds through a staging buffer of
// ranks × this many values) for `limit` on `ranks` ranks: what `gift mpi-check` reports. Calls no MPI.
size_t gift_mpi_bf16_round(size_t limit, int ranks);
// MPI collective calls this process has made (each round of a large transfer counts).
long gift_mpi_calls(void);
int gift_mpi_barrier(void);
void gift_mpi_abort(int code);
double gift_mpi_wtime(void);
#endif
